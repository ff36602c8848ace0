"""The symbol index of a repository: definitions and references per file, cached and incremental.

The cache lives in ``expagent.paths.cache_dir()/index/<repo-hash>/index.json`` (outside the repository, so
indexing never dirties the work tree). Each file's entry is keyed by its modification time and size; when
those changed the content hash decides whether it must be parsed again. A warm build therefore only lists
the files and stats them.

Files that cannot be indexed are skipped and counted, never fatal: binary files (a NUL byte in the first
8 KiB), files over ``max_file_bytes``, undecodable or unreadable files, and source files of languages without
an installed grammar. Files with syntax errors keep what tree-sitter recovered and are counted as warnings.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from expagent.codeintel.extract import Definition, FileSymbols

CACHE_VERSION = 1
DEFAULT_MAX_FILE_BYTES = 1_000_000
# directories never worth indexing when the repository is not a git work tree
_SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".nox",
              ".mypy_cache", ".pytest_cache", "build", "dist", ".eggs", "site-packages", "target"}


@dataclass
class IndexStats:
    files_seen: int = 0
    indexed: int = 0
    parsed: int = 0  # parsed during this build (the rest came from the cache)
    reused: int = 0
    syntax_errors: int = 0
    skipped_binary: int = 0
    skipped_huge: int = 0
    skipped_unreadable: int = 0
    no_grammar: dict[str, int] = field(default_factory=dict)  # extension -> files
    seconds: float = 0.0

    def warnings(self) -> list[str]:
        """One line per kind of problem, with counts: what a user sees instead of a crash."""
        out = []
        if self.syntax_errors:
            out.append(f"{self.syntax_errors} file(s) had syntax errors (partial symbols kept)")
        if self.skipped_binary:
            out.append(f"{self.skipped_binary} binary file(s) skipped")
        if self.skipped_huge:
            out.append(f"{self.skipped_huge} file(s) over the size limit skipped")
        if self.skipped_unreadable:
            out.append(f"{self.skipped_unreadable} unreadable or undecodable file(s) skipped")
        if self.no_grammar:
            listing = ", ".join(f"{ext} ({n})" for ext, n in sorted(self.no_grammar.items(), key=lambda kv: -kv[1]))
            out.append(f"no grammar installed for: {listing}")
        return out


@dataclass
class FileEntry:
    path: str
    language: str
    symbols: FileSymbols


def repo_cache_dir(root: Path) -> Path:
    from expagent import paths

    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return paths.cache_dir() / "index" / digest


def list_files(root: Path) -> list[str]:
    """Repository-relative POSIX paths: git's view (tracked plus untracked, not ignored) when it is a work tree."""
    if (root / ".git").exists():
        from expagent.gitutil import GitError, run_git

        try:
            proc = run_git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", timeout=60,
                           check=False)
            if proc.returncode == 0:
                return sorted({n for n in proc.stdout.split("\0") if n})
        except GitError:
            pass  # fall back to walking the directory
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            out.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return sorted(out)


class SymbolIndex:
    """Definitions and references of every supported source file under ``root``."""

    def __init__(self, root: Path, files: dict[str, FileEntry], stats: IndexStats):
        self.root = root
        self.files = files
        self.stats = stats
        self._by_name: dict[str, list[tuple[str, Definition]]] | None = None
        self.fingerprint = ""

    # -- building --------------------------------------------------------------------------------------

    @classmethod
    def build(cls, root: str | os.PathLike, *, use_cache: bool = True,
              max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> "SymbolIndex":
        from expagent.codeintel import languages
        from expagent.errors import ExpagentError

        started = time.perf_counter()
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ExpagentError(f"not a directory: {root}")
        root = root.resolve()
        cache_path = repo_cache_dir(root) / "index.json"
        grammars = languages.grammar_versions()
        memo = _MEMO.get(str(cache_path)) if use_cache else None
        if memo is not None and memo.max_file_bytes == max_file_bytes:
            cached = memo.records  # this process built it last time: skip reading and decoding the JSON
        else:
            memo = None
            cached = _load_cache(cache_path, grammars, max_file_bytes) if use_cache else {}

        stats = IndexStats()
        entries: dict[str, FileEntry] = {}
        new_cache: dict[str, dict] = {}
        for rel in list_files(root):
            spec = languages.spec_for_path(rel)
            if spec is None:
                ext = os.path.splitext(rel)[1].lower()
                if ext in languages.CODE_EXTENSIONS_WITHOUT_GRAMMAR:
                    stats.no_grammar[ext] = stats.no_grammar.get(ext, 0) + 1
                continue
            stats.files_seen += 1
            full = root / rel
            try:
                st = full.stat()
            except OSError:
                continue  # listed by git but deleted in the work tree
            if not full.is_file():
                continue
            record = cached.get(rel)
            if record and record["m"] == st.st_mtime_ns and record["s"] == st.st_size:
                stats.reused += 1
            else:
                record = _index_file(full, st, spec, record, max_file_bytes, stats)
            new_cache[rel] = record
            if memo is not None and record is cached.get(rel) and rel in memo.entries:
                _count_and_add(rel, record, entries, stats, reuse=memo.entries[rel])
            else:
                _count_and_add(rel, record, entries, stats)

        if use_cache and new_cache != cached:
            from expagent.fsutil import atomic_write_json

            try:
                atomic_write_json(cache_path, {"version": CACHE_VERSION, "root": str(root), "grammars": grammars,
                                               "max_file_bytes": max_file_bytes, "files": new_cache}, indent=None)
            except OSError:
                pass  # a read-only cache only costs speed next time
        stats.seconds = time.perf_counter() - started
        index = cls(root, entries, stats)
        # identifies this exact content (paths, sizes, mtimes, hashes): derived data may be cached against it
        index.fingerprint = hashlib.sha1(
            json.dumps([[rel, r["m"], r["s"], r.get("h")] for rel, r in sorted(new_cache.items())]).encode()
        ).hexdigest()
        if memo is not None and memo.fingerprint == index.fingerprint:
            index._by_name = memo.by_name
        if use_cache:
            _MEMO.pop(str(cache_path), None)
            while len(_MEMO) >= _MEMO_SIZE:  # a replay visits many repositories: keep the most recent few
                _MEMO.pop(next(iter(_MEMO)))
            _MEMO[str(cache_path)] = _Memo(new_cache, entries, max_file_bytes, index.fingerprint, index)
        return index

    # -- queries ---------------------------------------------------------------------------------------

    def definitions(self, path: str) -> list[Definition] | None:
        """Definitions in one repository-relative file, or None when the file is not indexed."""
        entry = self.files.get(path[2:] if path.startswith("./") else path)
        return entry.symbols.definitions if entry else None

    def lookup(self, name: str) -> list[tuple[str, Definition]]:
        """``(path, definition)`` for every non-local definition whose name or qualified name is ``name``."""
        if self._by_name is None:
            by_name: dict[str, list[tuple[str, Definition]]] = {}
            for path, entry in self.files.items():
                for d in entry.symbols.definitions:
                    if d.local:
                        continue
                    by_name.setdefault(d.name, []).append((path, d))
                    if d.qualname != d.name:
                        by_name.setdefault(d.qualname, []).append((path, d))
            self._by_name = by_name
        return self._by_name.get(name, [])

    def file_paths(self) -> list[str]:
        return list(self.files)

    def enclosing(self, path: str, line: int) -> Definition | None:
        """The innermost non-local definition around ``line`` (1-based) of ``path``."""
        best = None
        for d in self.definitions(path) or []:
            if not d.local and d.start_line <= line <= d.end_line:
                if best is None or d.end_line - d.start_line <= best.end_line - best.start_line:
                    best = d
        return best


class _Memo:
    """The last index this process built for a repository, so the next build need not re-read the cache file."""

    def __init__(self, records: dict, entries: dict, max_file_bytes: int, fingerprint: str, index: "SymbolIndex"):
        self.records = records
        self.entries = entries
        self.max_file_bytes = max_file_bytes
        self.fingerprint = fingerprint
        self._index = index

    @property
    def by_name(self):
        return self._index._by_name


_MEMO: dict[str, _Memo] = {}
_MEMO_SIZE = 4


def _count_and_add(rel: str, record: dict, entries: dict[str, FileEntry], stats: IndexStats,
                   reuse: FileEntry | None = None) -> None:
    skip = record.get("skip")
    if skip == "binary":
        stats.skipped_binary += 1
    elif skip == "huge":
        stats.skipped_huge += 1
    elif skip == "unreadable":
        stats.skipped_unreadable += 1
    elif skip == "no_grammar":
        ext = os.path.splitext(rel)[1].lower()
        stats.no_grammar[ext] = stats.no_grammar.get(ext, 0) + 1
    else:
        if record.get("e"):
            stats.syntax_errors += 1
        stats.indexed += 1
        if reuse is not None:
            entries[rel] = reuse
            return
        entries[rel] = FileEntry(
            rel, record["l"],
            FileSymbols([Definition.from_row(r) for r in record["d"]], record["r"], bool(record.get("e"))),
        )


def _index_file(full: Path, st: os.stat_result, spec, previous: dict | None, max_file_bytes: int,
                stats: IndexStats) -> dict:
    from expagent.codeintel import languages
    from expagent.codeintel.extract import extract

    base = {"m": st.st_mtime_ns, "s": st.st_size}
    if st.st_size > max_file_bytes:
        return {**base, "skip": "huge"}
    try:
        data = full.read_bytes()
    except OSError:
        return {**base, "skip": "unreadable"}
    if b"\0" in data[:8192]:
        return {**base, "skip": "binary"}
    digest = hashlib.sha1(data).hexdigest()
    if previous and previous.get("h") == digest and "skip" not in previous:
        stats.reused += 1  # touched but unchanged: keep the symbols, remember the new mtime
        return {**previous, **base}
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return {**base, "h": digest, "skip": "unreadable"}
    lang = languages.load(spec.name)
    if lang is None:
        return {**base, "h": digest, "skip": "no_grammar"}
    try:
        symbols = extract(data, lang)
    except Exception:  # a grammar bug must not take the whole index down: count the file as unreadable
        return {**base, "h": digest, "skip": "unreadable"}
    stats.parsed += 1
    return {**base, "h": digest, "l": spec.name, "d": [d.to_row() for d in symbols.definitions],
            "r": symbols.references, "e": int(symbols.syntax_errors)}


def _load_cache(path: Path, grammars: dict, max_file_bytes: int) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if (not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data.get("grammars") != grammars
            or data.get("max_file_bytes") != max_file_bytes or not isinstance(data.get("files"), dict)):
        return {}
    return data["files"]
