"""Which files and symbols an issue is probably about.

An issue names code in a handful of ways: tracebacks (``File "x/y.py", line 3, in func``), paths and module
names (``astropy/units/core.py``, ``astropy.units.core``), code spans (`` `Quantity.to` ``), identifiers in
prose (``CamelCase``, ``snake_case``), and error types. ``extract_mentions`` finds those with a weight each;
``likely_keys_from_issue`` resolves them against what the repository defines: a ``SymbolIndex`` of the repo at
the issue's commit, or a ``PatchCatalog`` of files and symbols known from earlier patches (when no checkout is
available, as in the retrieval benchmark).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Protocol

# --- mentions -----------------------------------------------------------------------------------------------

_TRACEBACK = re.compile(r'File "([^"]+)", line (\d+)(?:, in ([A-Za-z_<][\w<>.]*))?')
_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.(?:py|pyi|js|jsx|mjs|ts|tsx|go|rs|java|c|h|cc|cpp|rb))\b")
_CODE_SPAN = re.compile(r"`{1,3}([^`\n]{1,200})`{1,3}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_TRACEBACK_HEADER = re.compile(r"Traceback \(most recent call last\):?")
_ERROR_TYPE = re.compile(r"\b([A-Z]\w*(?:Error|Exception|Warning))\b")

# Words that are identifiers in some repository but in prose are just English.
_STOPWORDS = frozenset("""
the and for not but with this that from have has had are was were will would should could can cannot when
then than there their them they what which while where who why how into onto over under about after before
also only just like such some any all each every more most other same both use used using uses get set
one two three new old true false none null self cls return returns import def class raise error errors
issue bug fix fixed fixes test tests expected actual output input value values example examples code
version python file files line lines run running works work working does doesn make makes made call
called calls see seem seems here now may might must need needs want wants way well yes its it's let
""".split())

STRONG = 3.0  # traceback frames, code spans, paths
MEDIUM = 2.0  # identifier-shaped words in prose: snake_case, CamelCase, dotted
WEAK = 0.5  # plain lowercase words: only count if the repository defines exactly that name


@dataclass
class Mentions:
    identifiers: dict[str, float] = field(default_factory=dict)  # name (short or dotted) -> weight
    paths: dict[str, float] = field(default_factory=dict)  # path-like strings -> weight

    def add_identifier(self, name: str, weight: float) -> None:
        if len(name) < 3 or name.lower() in _STOPWORDS:
            return
        self.identifiers[name] = max(self.identifiers.get(name, 0.0), weight)

    def add_path(self, path: str, weight: float) -> None:
        path = path.strip().lstrip("./").replace("\\", "/")
        if path:
            self.paths[path] = max(self.paths.get(path, 0.0), weight)


def _shape_weight(word: str) -> float:
    if "." in word or "_" in word.strip("_") or re.search(r"[a-z][A-Z]|[A-Z]{2,}[a-z]", word) or \
            re.search(r"\d", word) or word.startswith("_"):
        return MEDIUM
    if word[0].isupper() and len(word) > 3 and not word.isupper():
        return MEDIUM * 0.75  # Capitalised: a class name or the first word of a sentence
    return WEAK


def extract_mentions(text: str) -> Mentions:
    """Identifiers and paths an issue text (or a focus string) names, each with a weight."""
    m = Mentions()
    if not text:
        return m
    text = _TRACEBACK_HEADER.sub(" ", text)  # "Traceback (most recent call last):" names no code
    for frame in _TRACEBACK.finditer(text):
        m.add_path(frame.group(1), STRONG)
        if frame.group(3) and not frame.group(3).startswith("<"):
            m.add_identifier(frame.group(3), STRONG)
    for path in _PATH.finditer(text):
        m.add_path(path.group(1), STRONG)
    for span in _CODE_SPAN.finditer(text):
        for ident in _IDENT.findall(span.group(1)):
            _add_dotted(m, ident, STRONG)
    for err in _ERROR_TYPE.finditer(text):
        m.add_identifier(err.group(1), MEDIUM)
    for ident in _IDENT.findall(text):
        _add_dotted(m, ident, _shape_weight(ident))
    return m


def _add_dotted(m: Mentions, ident: str, weight: float) -> None:
    ident = ident.strip(".")
    if not ident:
        return
    parts = ident.split(".")
    if len(parts) > 1:
        if parts[-1] in {"py", "js", "ts", "go", "rs", "java"}:
            return  # a file name, handled as a path
        m.add_path("/".join(parts) + ".py", weight * 0.5)  # a dotted module path: ``pkg.mod``
        m.add_identifier(".".join(parts[-2:]), weight)  # ``Class.method``
        for part in parts:
            m.add_identifier(part, weight * 0.8)
    else:
        m.add_identifier(ident, weight)


# --- what a repository defines ------------------------------------------------------------------------------


class SymbolSource(Protocol):
    def lookup(self, name: str) -> list[tuple[str, Any]]: ...  # (path, object with .qualname)

    def file_paths(self) -> list[str]: ...


@dataclass
class _KnownSymbol:
    qualname: str
    name: str


class PatchCatalog:
    """Files and symbols known from earlier patches: a stand-in for an index when no checkout exists."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[tuple[str, _KnownSymbol]]] = {}
        self._files: dict[str, None] = {}

    def add(self, symbols_by_file: dict[str, list[str]]) -> None:
        for path, names in symbols_by_file.items():
            self._files.setdefault(path, None)
            for qualname in names:
                sym = _KnownSymbol(qualname, qualname.rsplit(".", 1)[-1])
                for key in {sym.name, qualname}:
                    entries = self._by_name.setdefault(key, [])
                    if all(p != path or s.qualname != qualname for p, s in entries):
                        entries.append((path, sym))

    def add_patch(self, patch_text: str) -> None:
        from expagent.codeintel.patchkeys import symbols_by_file_from_patch

        self.add(symbols_by_file_from_patch(patch_text))

    def lookup(self, name: str) -> list[tuple[str, _KnownSymbol]]:
        return self._by_name.get(name, [])

    def file_paths(self) -> list[str]:
        return list(self._files)


def _as_source(root_or_index: Any) -> SymbolSource:
    if isinstance(root_or_index, (str, Path)):
        from expagent.codeintel.index import SymbolIndex

        return SymbolIndex.build(root_or_index)
    return root_or_index


@lru_cache(maxsize=1)
def generic_names() -> frozenset[str]:
    """Names whose references say nothing about which file is meant: builtins and methods of builtin types.

    A reference to ``name`` or ``append`` is almost never a reference to this repository's ``Foo.append``.
    """
    import builtins

    names = set(dir(builtins))
    for t in (str, bytes, list, dict, set, tuple, int, float, object, type):
        names.update(dir(t))
    names.update({"self", "cls", "args", "kwargs", "name", "value", "path", "data", "result", "main", "run"})
    return frozenset(names)


def resolve_paths(mentioned: dict[str, float], known_files: Iterable[str]) -> dict[str, float]:
    """Known files a mentioned path refers to: exact, or by path suffix (``core.py`` -> ``pkg/core.py``)."""
    known = list(known_files)
    by_basename: dict[str, list[str]] = {}
    for f in known:
        by_basename.setdefault(f.rsplit("/", 1)[-1], []).append(f)
    out: dict[str, float] = {}
    for mention, weight in mentioned.items():
        candidates = by_basename.get(mention.rsplit("/", 1)[-1], [])
        if mention.endswith(".py") and not candidates:
            # ``pkg.mod`` may be a package: ``pkg/mod/__init__.py``
            candidates = [f for f in by_basename.get("__init__.py", []) if f.endswith(mention[:-3] + "/__init__.py")]
            mention = mention[:-3] + "/__init__.py"
        hits = [f for f in candidates if f == mention or f.endswith("/" + mention) or mention.endswith("/" + f)]
        if not hits and "/" not in mention:
            hits = candidates
        for f in hits:
            # a bare basename shared by many files says little about each of them
            share = weight / len(hits)
            out[f] = max(out.get(f, 0.0), share)
    return out


def score_keys(mentions: Mentions, source: SymbolSource, max_definitions: int = 8) -> tuple[dict, dict]:
    """Scores for files and symbols (qualified names) from mentions resolved against ``source``."""
    file_scores: dict[str, float] = dict(resolve_paths(mentions.paths, source.file_paths()))
    symbol_scores: dict[str, float] = {}
    generic = generic_names()
    for name, weight in mentions.identifiers.items():
        hits = source.lookup(name)
        if not hits or (weight <= WEAK and len(hits) > 2) or len(hits) > max_definitions * 4:
            continue
        if "." not in name and (name in generic or (name.startswith("__") and name.endswith("__"))):
            weight *= 0.2  # ``__init__``, ``format``, ``add``: named by every other issue, about none of them
        # a name defined in many places points at none of them strongly
        share = weight / math.sqrt(len(hits))
        for path, definition in hits:
            qual = definition.qualname
            symbol_scores[qual] = symbol_scores.get(qual, 0.0) + share
            file_scores[path] = file_scores.get(path, 0.0) + share * 0.5
    return file_scores, symbol_scores


DEFAULT_MIN_SCORE = 1.0


def likely_keys_from_issue(issue_text: str, root_or_index: Any, max_files: int = 10, max_symbols: int = 20,
                           min_score: float = DEFAULT_MIN_SCORE) -> dict[str, list[str]]:
    """``{"files": [...], "symbols": [...]}``: what an issue is probably about, best first.

    ``root_or_index`` is a repository path (indexed, with the cache), a ``SymbolIndex``, or a ``PatchCatalog``.
    Keys scoring below ``min_score`` are dropped: a plain word that happens to name a function (score 0.5) is
    noise; one identifier-shaped mention (2.0), a path (3.0) or two weaker mentions agreeing pass. The default
    was chosen on the retrieval benchmark (``benchmarks/symbol_keys_retrieval.py``): it keeps most of the hits
    and stops most of the false keys that make memory answer when it should abstain.
    """
    source = _as_source(root_or_index)
    file_scores, symbol_scores = score_keys(extract_mentions(issue_text), source)
    files = [f for f, v in sorted(file_scores.items(), key=lambda kv: (-kv[1], kv[0])) if v >= min_score]
    symbols = [s for s, v in sorted(symbol_scores.items(), key=lambda kv: (-kv[1], kv[0])) if v >= min_score]
    return {"files": files[:max_files], "symbols": symbols[:max_symbols]}


def key_overlap(query: dict[str, list[str]], files: Iterable[str], symbols: Iterable[str]) -> float:
    """How much an episode's keys (files and symbols it changed) match an issue's likely keys, in [0, 1].

    Symbols match by qualified name or by their last component (``Model.save`` ~ ``save`` when one side could
    not be qualified); files match exactly. Symbols count twice as much as files: a shared file is common,
    a shared function is specific.
    """
    q_files, q_syms = set(query.get("files", [])), set(query.get("symbols", []))
    e_files, e_syms = set(files), set(symbols)
    if not (q_files or q_syms) or not (e_files or e_syms):
        return 0.0
    e_tails = {s.rsplit(".", 1)[-1] for s in e_syms}
    sym_hits = sum(1 for s in q_syms
                   if s in e_syms or s.rsplit(".", 1)[-1] in e_syms or ("." not in s and s in e_tails))
    file_hits = len(q_files & e_files)
    sym_part = sym_hits / max(1, min(len(q_syms), len(e_syms))) if q_syms and e_syms else 0.0
    file_part = file_hits / max(1, min(len(q_files), len(e_files))) if q_files and e_files else 0.0
    return (2 * sym_part + file_part) / 3
