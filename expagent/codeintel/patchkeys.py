"""Which files and symbols a patch changes.

``files_and_symbols_from_patch`` is a pure function used as retrieval keys for memory:
two episodes that touched ``Model.save`` are related even when their issue texts share no words.

Without an index the symbols come from the diff alone:

* the hunk's section header (``@@ -528,9 +524,9 @@ def is_public_member(key):``), which git fills with the
  nearest definition line *above* the hunk,
* def/class lines seen inside the hunk (context or changed), tracked with an indentation stack so that
  changed lines are attributed to the innermost definition the hunk shows, qualified as ``Class.method``
  when the class line is visible.

With an index of the repository at the base commit (``expagent.codeintel.index.SymbolIndex`` or anything with
a ``definitions(path)`` method returning objects with ``qualname``, ``start_line`` and ``end_line``), the changed
line ranges of modified files are resolved to the innermost enclosing definitions exactly; the diff heuristic is
still used for files the index does not know (added files, languages without a grammar).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

# Definition lines in the languages we care about; group "name" is the symbol, group "kind" says class or not.
_DEF_PATTERNS = [
    # Python
    re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?P<kind>def|class)\s+(?P<name>[A-Za-z_]\w*)"),
    # JavaScript / TypeScript
    re.compile(r"^(?P<indent>\s*)(?:export\s+)?(?:default\s+)?(?:async\s+)?(?P<kind>function\*?|class|interface)\s+(?P<name>[A-Za-z_$][\w$]*)"),
    # Go: func Name( / func (r *Recv) Name(
    re.compile(r"^(?P<indent>\s*)(?P<kind>func)\s+(?:\([^)]*\)\s*)?(?P<name>[A-Za-z_]\w*)\s*[\[(]"),
    # Rust
    re.compile(r"^(?P<indent>\s*)(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?(?P<kind>fn|struct|enum|trait|impl)\s+(?:<[^>]*>\s*)?(?P<name>[A-Za-z_]\w*)"),
    # Java / C#-ish class declarations
    re.compile(r"^(?P<indent>\s*)(?:(?:public|private|protected|abstract|final|static)\s+)*(?P<kind>class|interface|enum)\s+(?P<name>[A-Za-z_]\w*)"),
]

_CLASS_KINDS = {"class", "interface", "struct", "enum", "trait", "impl"}


@dataclass
class _Scope:
    name: str
    indent: int  # -1 when unknown (a hunk header: git strips the indentation)
    is_class: bool


def match_definition(line: str) -> tuple[int, str, bool] | None:
    """``(indent, name, is_class)`` when ``line`` looks like a definition line, else None."""
    for pattern in _DEF_PATTERNS:
        m = pattern.match(line)
        if m:
            indent = len(m.group("indent").expandtabs(4))
            return indent, m.group("name"), m.group("kind") in _CLASS_KINDS
    return None


def _indent_of(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip()) if line.strip() else -1


def _qualify(stack: list[_Scope], name: str | None = None) -> str | None:
    """``Outer.Inner.name`` from the scope stack.

    Classes nest; the first function ends the path, so a change inside a nested helper is keyed by the
    method that contains it (``Class.method``), which is what other patches and issues mention.
    """
    parts: list[str] = []
    for scope in stack:
        parts.append(scope.name)
        if not scope.is_class:
            return ".".join(parts)
    if name:
        parts.append(name)
    return ".".join(parts) if parts else None


def _add(symbols: list[str], seen: set[str], name: str | None) -> None:
    if name and name not in seen:
        seen.add(name)
        symbols.append(name)


def _pop_to(stack: list[_Scope], indent: int) -> None:
    """Leave every scope that a line at ``indent`` is not inside of."""
    while stack:
        top = stack[-1]
        if top.indent == -1:
            # header scope of unknown depth: only a line at column 0 surely leaves it
            if indent == 0:
                stack.pop()
                continue
            break
        if indent <= top.indent:
            stack.pop()
            continue
        break


def _symbols_from_hunk_lines(header: str, lines: list[tuple[str, str]], symbols: list[str], seen: set[str]) -> None:
    """Walk one hunk (``(type, text)`` with type in ``' '``, ``'+'``, ``'-'``) and collect changed symbols."""
    stack: list[_Scope] = []
    header_def = match_definition(header.strip()) if header else None
    if header_def:
        stack.append(_Scope(header_def[1], -1, header_def[2]))
    # The old and new sides are walked as one sequence: a removed def opens a scope just like an added one.
    for i, (kind, text) in enumerate(lines):
        text = text.rstrip("\n")
        if not text.strip():
            continue
        indent = _indent_of(text)
        stripped = text.strip()
        found = match_definition(text)
        if found:
            d_indent, name, is_class = found
            _pop_to(stack, d_indent)
            # a class header of unknown depth owns an indented def that follows it
            if stack and stack[-1].indent == -1 and not stack[-1].is_class and d_indent > 0:
                # header was a function; an indented def after it is more likely a sibling method: unknown owner
                stack.pop()
            if kind in "+-":
                _add(symbols, seen, _qualify(stack, name))
            stack.append(_Scope(name, d_indent, is_class))
            continue
        if stripped.startswith(("#", "//")) and kind == " ":
            continue
        if kind == " ":
            if not stripped.startswith(("@", ")", "]", "}")):
                _pop_to(stack, indent)
            continue
        # a changed line
        if stripped.startswith("@"):
            # a decorator belongs to the next definition in the hunk
            nxt = _next_definition(lines, i + 1)
            if nxt is not None:
                _pop_to(stack, nxt[0])
                _add(symbols, seen, _qualify(stack, nxt[1]))
                continue
        if not stripped.startswith((")", "]", "}", "#", "//")):
            _pop_to(stack, indent)
        _add(symbols, seen, _qualify(stack))


def _next_definition(lines: list[tuple[str, str]], start: int) -> tuple[int, str, bool] | None:
    for _kind, text in lines[start:]:
        stripped = text.strip()
        if not stripped or stripped.startswith("@"):
            continue
        return match_definition(text.rstrip("\n"))
    return None


def _strip_prefix(path: str | None) -> str | None:
    if not path or path == "/dev/null":
        return None
    if path.startswith(("a/", "b/")):
        return path[2:]
    return path


@dataclass
class _FilePatch:
    path: str
    source_path: str | None  # None for an added file
    hunks: list[tuple[str, list[tuple[str, str, int | None, int | None]]]]  # header, (type, text, old_no, new_no)


def _parse_with_unidiff(patch_text: str) -> list[_FilePatch]:
    from unidiff import PatchSet

    out = []
    for pf in PatchSet(patch_text):
        source = None if pf.is_added_file else _strip_prefix(pf.source_file)
        target = None if pf.is_removed_file else _strip_prefix(pf.target_file)
        path = target or source or pf.path
        hunks = []
        for hunk in pf:
            lines = [(ln.line_type, ln.value, ln.source_line_no, ln.target_line_no) for ln in hunk
                     if ln.line_type in (" ", "+", "-")]
            hunks.append((hunk.section_header or "", lines))
        out.append(_FilePatch(path, source, hunks))
    return out


_DIFF_GIT = re.compile(r"^diff --git a/(.*?) b/(.*)$")
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@ ?(.*)$")


def _parse_leniently(patch_text: str) -> list[_FilePatch]:
    """A forgiving parser for patches unidiff refuses (truncated hunks, wrong counts)."""
    files: list[_FilePatch] = []
    current: _FilePatch | None = None
    old_no = new_no = 0
    for raw in patch_text.splitlines():
        m = _DIFF_GIT.match(raw)
        if m:
            current = _FilePatch(m.group(2), m.group(1), [])
            files.append(current)
            continue
        if raw.startswith("--- "):
            src = _strip_prefix(raw[4:].split("\t")[0].strip())
            if current is None or current.hunks:
                current = _FilePatch(src or "", src, [])
                files.append(current)
            else:
                current.source_path = src
            continue
        if raw.startswith("+++ ") and current is not None and not current.hunks:
            tgt = _strip_prefix(raw[4:].split("\t")[0].strip())
            if tgt:
                current.path = tgt
            continue
        m = _HUNK.match(raw)
        if m and current is not None:
            old_no, new_no = int(m.group(1)), int(m.group(2))
            current.hunks.append((m.group(3), []))
            continue
        if current is None or not current.hunks or not raw or raw[0] not in " +-":
            continue
        kind = raw[0]
        current.hunks[-1][1].append((kind, raw[1:], old_no if kind != "+" else None, new_no if kind != "-" else None))
        if kind != "+":
            old_no += 1
        if kind != "-":
            new_no += 1
    return [f for f in files if f.path]


def _added_definition_lines(lines) -> set[int]:
    """Positions of ``+`` lines that belong to a definition the patch adds (its def line and its body).

    Those lines are keyed by the new definition's own name, not by whatever encloses the insertion point.
    """
    out: set[int] = set()
    block_indent: int | None = None
    for i, (kind, text, _o, _n) in enumerate(lines):
        text = text.rstrip("\n")
        if kind != "+":
            if text.strip():
                block_indent = None
            continue
        if not text.strip():
            if block_indent is not None:
                out.add(i)
            continue
        indent = _indent_of(text)
        if block_indent is not None and indent > block_indent:
            out.add(i)
            continue
        found = match_definition(text)
        stripped = text.strip()
        if found or stripped.startswith("@"):
            block_indent = found[0] if found else indent
            out.add(i)
        else:
            block_indent = None
    return out


def _changed_old_lines(lines: list[tuple[str, str, int | None, int | None]], skip: set[int] = frozenset()
                       ) -> list[int]:
    """Line numbers in the old file that a hunk changes; an insertion counts as the line it follows."""
    out: list[int] = []
    last_old = None
    for i, (kind, text, old_no, _new_no) in enumerate(lines):
        if i in skip:
            if old_no:
                last_old = old_no
            continue
        if kind == " ":
            last_old = old_no
        elif kind == "-":
            last_old = old_no
            if text.strip():
                out.append(old_no)
        elif kind == "+" and text.strip():
            # an inserted line sits between last_old and last_old + 1: attribute it to the line after
            # when the hunk starts with an insertion, and to the preceding line otherwise
            out.append(last_old if last_old is not None else _first_old(lines))
    return [n for n in out if n]


def _first_old(lines: list[tuple[str, str, int | None, int | None]]) -> int | None:
    for _kind, _text, old_no, _new_no in lines:
        if old_no:
            return old_no
    return None


def _innermost(definitions: Iterable[Any], line: int) -> str | None:
    best = None
    for d in definitions:
        if getattr(d, "local", False):
            continue  # a helper nested in a function is keyed by that function, as the diff heuristic does
        if d.start_line <= line <= d.end_line:
            if best is None or (d.end_line - d.start_line) <= (best.end_line - best.start_line):
                best = d
    return best.qualname if best is not None else None


def _index_definitions(index: Any, path: str) -> list[Any] | None:
    try:
        defs = index.definitions(path)
    except Exception:  # an index that cannot answer for this file: fall back to the diff heuristic
        return None
    return list(defs) if defs is not None else None


def files_and_symbols_from_patch(patch_text: str, index: Any = None) -> tuple[list[str], list[str]]:
    """Files a unified diff changes (new paths; added and deleted files included) and the symbols it touches.

    Symbols are qualified (``Class.method``) when the diff or the index allows it. Both lists keep patch order
    and have no duplicates. A malformed patch yields whatever could be read from it; this never raises.
    """
    per_file = symbols_by_file_from_patch(patch_text, index)
    symbols: list[str] = []
    seen: set[str] = set()
    for names in per_file.values():
        for name in names:
            _add(symbols, seen, name)
    return list(per_file), symbols


def symbols_by_file_from_patch(patch_text: str, index: Any = None) -> dict[str, list[str]]:
    """Like :func:`files_and_symbols_from_patch`, but keeps which file each symbol belongs to (patch order)."""
    if not patch_text or not patch_text.strip():
        return {}
    try:
        file_patches = _parse_with_unidiff(patch_text)
    except Exception:  # unidiff is strict about hunk counts; real-world patches are not
        file_patches = _parse_leniently(patch_text)
    if not file_patches:
        file_patches = _parse_leniently(patch_text)

    out: dict[str, list[str]] = {}
    for fp in file_patches:
        definitions = _index_definitions(index, fp.source_path) if (index is not None and fp.source_path) else None
        file_symbols: list[str] = []
        file_seen: set[str] = set()
        for header, lines in fp.hunks:
            if definitions:
                _symbols_from_index(definitions, lines, file_symbols, file_seen)
            else:
                _symbols_from_hunk_lines(header, [(k, t) for k, t, _o, _n in lines], file_symbols, file_seen)
        merged = out.setdefault(fp.path, [])
        for name in _merge_unqualified(file_symbols):
            if name not in merged:
                merged.append(name)
    return out


def _merge_unqualified(names: list[str]) -> list[str]:
    """Drop ``method`` when the same file's patch also shows ``Class.method``.

    A hunk header carries no indentation, so a method seen only in a header is unqualified; another hunk of the
    same file often shows its class, and one key per symbol keeps retrieval scores honest.
    """
    qualified_tails = {n.rsplit(".", 1)[1] for n in names if "." in n}
    return [n for n in names if "." in n or n not in qualified_tails]


def _symbols_from_index(definitions: list[Any], lines, symbols: list[str], seen: set[str]) -> None:
    for line_no in _changed_old_lines(lines, skip=_added_definition_lines(lines)):
        _add(symbols, seen, _innermost(definitions, line_no))
    # definitions the patch adds do not exist at the base commit: take their names from the diff and place
    # them by indentation among the definitions that enclose the insertion point
    unit = _indent_unit(lines)
    last_old = None
    for kind, text, old_no, _new_no in lines:
        if old_no:
            last_old = old_no
        if kind != "+":
            continue
        found = match_definition(text.rstrip("\n"))
        if not found:
            continue
        indent, name, _is_class = found
        depth = indent // unit
        chain = _enclosing_chain(definitions, last_old) if last_old else []
        if depth == 0 or not chain:
            _add(symbols, seen, name)
            continue
        owners = chain[:depth]
        if len(owners) < depth or any(getattr(d, "kind", "class") != "class" for d in owners):
            continue  # a helper nested in a function: the function is already keyed by its changed lines
        _add(symbols, seen, f"{owners[-1].qualname}.{name}")


def _enclosing_chain(definitions: list[Any], line: int) -> list[Any]:
    """Non-local definitions containing ``line``, outermost first."""
    around = [d for d in definitions if not getattr(d, "local", False) and d.start_line <= line <= d.end_line]
    return sorted(around, key=lambda d: (d.start_line, -d.end_line))


def _indent_unit(lines) -> int:
    """The indentation step of the file, guessed from the hunk (4 when nothing is indented)."""
    indents = {_indent_of(text.rstrip("\n")) for _k, text, _o, _n in lines}
    positive = [i for i in indents if i > 0]
    # continuation lines are aligned arbitrarily, so only a step below 4 (2-space code) is believed
    return min(positive) if positive and min(positive) < 4 else 4
