"""Unified diffs as git writes them: which files a patch touches, and the patch cut into one piece per file.

Paths come from the ``+++``/``---`` lines when they are there (exact even when a name contains `` b/``), else from
the ``diff --git a/X b/Y`` header (renames, mode changes and binary files have no ``+++`` line); ``/dev/null``
marks an added or a deleted file. Quoted names (``"a/sp ace.py"``) are unquoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^diff --git (\"?a/.*?\"?) (\"?b/.*\"?)$")


@dataclass(frozen=True)
class FileDiff:
    path: str  # the file after the patch (before it, for a deletion)
    old_path: str | None  # None for an added file; differs from ``path`` for a rename
    new_path: str | None  # None for a deleted file
    text: str  # this file's part of the patch, header included


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode(
            "utf-8", "replace")
    return name


def _strip(name: str, prefix: str) -> str | None:
    name = _unquote(name.split("\t")[0])
    if name == "/dev/null":
        return None
    return name[len(prefix):] if name.startswith(prefix) else name


def _parse_chunk(chunk: str) -> FileDiff | None:
    lines = chunk.splitlines()
    old = new = None
    have_old = have_new = False
    header = _HEADER.match(lines[0]) if lines else None
    for line in lines[1:] if header else lines:
        if line.startswith("@@"):
            break
        if line.startswith("--- "):
            old, have_old = _strip(line[4:], "a/"), True
        elif line.startswith("+++ "):
            new, have_new = _strip(line[4:], "b/"), True
        elif line.startswith(("rename from ", "copy from ")):
            old, have_old = line.split(" from ", 1)[1], True
        elif line.startswith(("rename to ", "copy to ")):
            new, have_new = line.split(" to ", 1)[1], True
        elif line.startswith("new file mode"):
            old, have_old = None, True
        elif line.startswith("deleted file mode"):
            new, have_new = None, True
    if header:
        if not have_old:
            old = _strip(header.group(1), "a/")
        if not have_new:
            new = _strip(header.group(2), "b/")
    path = new or old
    return FileDiff(path, old, new, chunk) if path else None


def split_patch_files(patch: str) -> list[FileDiff]:
    """The patch cut into one :class:`FileDiff` per file, in patch order. Text before the first file header
    (a commit message) is dropped; a patch without ``diff --git`` headers is cut at its ``---`` lines."""
    chunks: list[list[str]] = []
    lines = patch.splitlines(keepends=True)
    has_git_headers = any(line.startswith("diff --git ") for line in lines)
    for i, line in enumerate(lines):
        starts = line.startswith("diff --git ") if has_git_headers else (
            line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "))
        if starts:
            chunks.append([])
        if chunks:
            chunks[-1].append(line)
    files = [_parse_chunk("".join(chunk)) for chunk in chunks]
    return [f for f in files if f is not None]


def patch_files(patch: str, *, include_old: bool = False) -> list[str]:
    """Paths every file of ``patch`` has after it (a deleted file: its old path), in order, without duplicates;
    ``include_old`` adds the pre-image path of renames too (all the paths the patch writes or removes)."""
    seen: dict[str, None] = {}
    for diff in split_patch_files(patch):
        seen.setdefault(diff.path, None)
        if include_old and diff.old_path:
            seen.setdefault(diff.old_path, None)
    return list(seen)
