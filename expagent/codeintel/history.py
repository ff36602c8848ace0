"""What the repository's own history says about a file or symbol, and which past commits look like fixes.

GitPython is the interface to git here: it finds the repository from any path inside it, runs git with argv
lists (no shell), and parses blame output. The log formats are our own, parsed in one pass each.

A shallow clone has no history before its graft point; every answer built from history says so, because
"no earlier commits" and "commits not fetched" look the same otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expagent.codeintel.filekinds import is_code_path, is_test_path
from expagent.errors import ExpagentError

_FIELD = "\x1f"
_RECORD = "\x1e"

# Message words that mark a commit as a fix; a count of these is the message half of the fix score.
# A bare "(#123)" is how squash merges name their pull request, so only "fix/close/issue #123" counts.
_FIX_WORDS = re.compile(
    r"\b(fix(?:e[sd])?|fixing|bug(?:fix)?|crash(?:es|ed)?|regression|broken|incorrect|wrong|"
    r"fail(?:s|ed|ure|ing)?|exception|traceback|error)\b|"
    r"\b(?:fix(?:e[sd])?|close[sd]?|resolve[sd]?|issue)\s+(?:gh-|#)\d+",
    re.I,
)
_ISSUE_LINK = re.compile(r"\b(?:fix(?:e[sd])?|close[sd]?|resolve[sd]?)\s+(?:gh-|#)\d+", re.I)
# Subjects about everything but behaviour: merges, releases, typing, linting, docs, spelling.
_NOT_A_FIX = re.compile(
    r"^(merge|revert|bump|release|prepare release|update changelog|version)\b|"
    r"\b(typos?|type ?hints?|typing|mypy|flake8|lint(?:ing|er)?|pylint|docstrings?|documentation|docs|"
    r"spelling|changelog|readme|ci)\b",
    re.I,
)


def open_repo(root: str | os.PathLike) -> Any:
    """The git repository containing ``root``, or a one-line error."""
    import git

    try:
        return git.Repo(Path(root).expanduser(), search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ExpagentError(f"not inside a git repository: {root}") from None


def is_shallow(repo: Any) -> bool:
    return (Path(repo.git_dir) / "shallow").exists()


def shallow_note(repo: Any) -> str:
    if not is_shallow(repo):
        return ""
    return ("note: this is a shallow clone; history stops at the graft point, older commits are missing "
            "(git fetch --unshallow to get them)")


def _relative(repo: Any, root: str | os.PathLike, path: str) -> str | None:
    """``path`` relative to the work tree when it names a file there (given relative to ``root`` or absolute)."""
    work = Path(repo.working_tree_dir).resolve()
    for candidate in (Path(path), Path(root) / path, work / path):
        try:
            resolved = candidate.expanduser().resolve()
            rel = resolved.relative_to(work)
        except (ValueError, OSError):
            continue
        if resolved.exists() or _tracked(repo, rel.as_posix()):
            return rel.as_posix()
    return None


def _tracked(repo: Any, rel: str) -> bool:
    try:
        return bool(repo.git.ls_files("--", rel).strip())
    except Exception:  # git refused (e.g. path outside the tree): not tracked
        return False


def _log_records(repo: Any, *args: str) -> list[list[str]]:
    fmt = _FIELD.join(["%H", "%h", "%aI", "%an", "%s"]) + _RECORD
    out = repo.git.log(f"--format={fmt}", *args)
    records = []
    for chunk in out.split(_RECORD):
        chunk = chunk.strip("\n")
        if chunk:
            records.append(chunk.split(_FIELD))
    return records


def file_history(root: str | os.PathLike, path_or_symbol: str, max_count: int = 10) -> str:
    """Recent commits that touched a file or a symbol: short sha, date, subject, and the diff stat.

    A symbol (``Class.method`` or ``function``) is looked up in the symbol index and followed through its
    line range with ``git log -L``; a file is followed with ``git log --follow``.
    """
    import git

    repo = open_repo(root)
    if not repo.head.is_valid():
        raise ExpagentError("the repository has no commits yet")
    max_count = max(1, int(max_count))
    rel = _relative(repo, root, path_or_symbol)
    header: str
    try:
        if rel is not None:
            header = f"Recent commits touching {rel}:"
            records = _log_records(repo, f"-n{max_count}", "--follow", "--", rel)
            stats = _numstat(repo, [r[0] for r in records], rel)
        else:
            where = _locate_symbol(Path(repo.working_tree_dir), path_or_symbol)
            if where is None:
                raise ExpagentError(f"no file or symbol named {path_or_symbol!r} in {repo.working_tree_dir}")
            path, start, end, qualname = where
            header = f"Recent commits touching {qualname} ({path}:{start}-{end}):"
            records = _log_records(repo, f"-n{max_count}", "-s", f"-L{start},{end}:{path}")
            stats = _numstat(repo, [r[0] for r in records], path)
    except git.GitCommandError as exc:
        raise ExpagentError(f"git log failed: {_first_line(exc.stderr) or exc}") from None
    lines = [header]
    if not records:
        lines.append("  (no commits)")
    for full, short, date, author, subject in records:
        added, removed = stats.get(full, ("?", "?"))
        lines.append(f"  {short} {date[:10]} {author}: {subject}  (+{added} -{removed})")
    note = shallow_note(repo)
    if note:
        lines.append(note)
    return "\n".join(lines)


def _numstat(repo: Any, shas: list[str], path: str) -> dict[str, tuple[str, str]]:
    """Lines added and removed in ``path`` by each commit (one git call for all of them)."""
    if not shas:
        return {}
    out = repo.git.show("--numstat", f"--format={_RECORD}%H", *shas, "--", path)
    stats: dict[str, tuple[str, str]] = {}
    for chunk in out.split(_RECORD):
        lines = [ln for ln in chunk.splitlines() if ln.strip()]
        if not lines:
            continue
        sha = lines[0].strip()
        added = removed = 0
        for ln in lines[1:]:
            parts = ln.split("\t")
            if len(parts) >= 3:
                added += int(parts[0]) if parts[0].isdigit() else 0
                removed += int(parts[1]) if parts[1].isdigit() else 0
        stats[sha] = (str(added), str(removed))
    return stats


def _locate_symbol(work_tree: Path, symbol: str) -> tuple[str, int, int, str] | None:
    from expagent.codeintel.index import SymbolIndex

    index = SymbolIndex.build(work_tree)
    hits = index.lookup(symbol) or index.lookup(symbol.rsplit(".", 1)[-1])
    if not hits:
        return None
    # prefer the exact qualified name, then public code over tests
    hits.sort(key=lambda h: (h[1].qualname != symbol, is_test_path(h[0]), h[0]))
    path, d = hits[0]
    return path, d.start_line, d.end_line, d.qualname


def blame(root: str | os.PathLike, path: str, start: int, end: int) -> str:
    """Who last changed each line of ``path`` from ``start`` to ``end`` (1-based, inclusive), and in which commit."""
    import git

    repo = open_repo(root)
    rel = _relative(repo, root, path)
    if rel is None:
        raise ExpagentError(f"no such file in the repository: {path}")
    start, end = int(start), int(end)
    if start < 1 or end < start:
        raise ExpagentError(f"bad line range {start}-{end}: need 1 <= start <= end")
    try:
        total = len((Path(repo.working_tree_dir) / rel).read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        total = end
    if start > total:
        raise ExpagentError(f"{rel} has only {total} lines")
    end = min(end, total)
    try:
        entries = repo.blame("HEAD", rel, L=f"{start},{end}")
    except git.GitCommandError as exc:
        raise ExpagentError(f"git blame failed: {_first_line(exc.stderr) or exc}") from None
    lines = [f"Blame for {rel}:{start}-{end}:"]
    number = start
    for commit, texts in entries or []:
        date = commit.committed_datetime.date().isoformat()
        subject = commit.summary[:60]
        for text in texts:
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
            lines.append(f"  {number:>5} {commit.hexsha[:8]} {date} {commit.author.name}: {text}")
            number += 1
        lines.append(f"        ^ {commit.hexsha[:8]}: {subject}")
    note = shallow_note(repo)
    if note:
        lines.append(note + "; lines older than the graft point are attributed to it")
    return "\n".join(lines)


def _first_line(text: Any) -> str:
    text = str(text or "").strip()
    return text.splitlines()[0] if text else ""


# --- fix commits -------------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    sha: str
    parent: str
    date: str
    message: str
    files: list[tuple[str, int, int]]  # path, added, removed


def fix_score(message: str, files: list[tuple[str, int, int]], max_changed_lines: int = 400) -> float:
    """How much a commit looks like a bug fix: message words, plus a small diff touching source (and tests).

    0 means "not a fix candidate". The thresholds are deliberate and simple: a fix names itself in the message
    and changes a little source code; touching tests as well is the strongest sign the change fixed behaviour.
    """
    subject = message.strip().splitlines()[0] if message.strip() else ""
    if not subject or _NOT_A_FIX.search(subject):
        return 0.0
    # the subject says what the commit is; a body mentions errors in passing, so only its issue links count
    body = message.strip()[len(subject):] if message.strip().startswith(subject) else ""
    words = len(_FIX_WORDS.findall(subject)) + len(_ISSUE_LINK.findall(body))
    if words == 0:
        return 0.0
    source = [f for f in files if is_code_path(f[0]) and not is_test_path(f[0])]
    tests = [f for f in files if is_test_path(f[0])]
    if not source:
        return 0.0
    changed = sum(a + r for p, a, r in files if is_code_path(p))
    if changed == 0 or changed > max_changed_lines or len(source) > 10:
        return 0.0
    score = min(words, 3) + (2.0 if tests else 0.0)
    score += 1.0 if changed <= 60 else 0.0
    return score


def find_fix_commits(root: str | os.PathLike, since: str | None = None, max_count: int | None = None,
                     min_score: float = 3.0, scan_limit: int = 5000) -> list[dict[str, Any]]:
    """Past commits that look like bug fixes, as SWE-bench-shaped records, newest first.

    Each record: ``repo``, ``instance_id`` (``git:<shortsha>``), ``base_commit`` (the parent), ``problem_statement``
    (the commit message), ``patch`` (diff of the non-test files), ``test_patch`` (diff of the test files),
    ``created_at`` (commit date, ISO 8601), ``fix_score``. Merge commits and root commits are skipped.
    """
    import git

    repo = open_repo(root)
    if not repo.head.is_valid():
        return []
    args = ["--no-merges", f"-n{int(scan_limit)}", "--numstat",
            f"--format={_RECORD}%H{_FIELD}%P{_FIELD}%aI{_FIELD}%B{_FIELD}"]
    if since:
        args.append(f"--since={since}")
    try:
        out = repo.git.log(*args)
    except git.GitCommandError as exc:
        raise ExpagentError(f"git log failed: {_first_line(exc.stderr) or exc}") from None
    name = repo_name(repo)
    results: list[dict[str, Any]] = []
    for cand in _parse_numstat_log(out):
        if not cand.parent:
            continue
        score = fix_score(cand.message, cand.files)
        if score < min_score:
            continue
        source = [p for p, _a, _r in cand.files if not is_test_path(p)]
        tests = [p for p, _a, _r in cand.files if is_test_path(p)]
        patch = repo.git.diff(cand.parent, cand.sha, "--", *source) + "\n"
        test_patch = (repo.git.diff(cand.parent, cand.sha, "--", *tests) + "\n") if tests else ""
        results.append({
            "repo": name,
            "instance_id": f"git:{cand.sha[:10]}",
            "base_commit": cand.parent,
            "problem_statement": cand.message.strip(),
            "patch": patch,
            "test_patch": test_patch,
            "created_at": cand.date,
            "fix_score": score,
        })
        if max_count is not None and len(results) >= max_count:
            break
    return results


def _parse_numstat_log(out: str) -> list[_Candidate]:
    cands = []
    for chunk in out.split(_RECORD):
        if not chunk.strip():
            continue
        parts = chunk.split(_FIELD)
        if len(parts) < 5:
            continue
        sha, parents, date, message, rest = parts[0].strip(), parts[1].split(), parts[2], parts[3], parts[4]
        files = []
        for line in rest.splitlines():
            cols = line.split("\t")
            if len(cols) == 3:
                added = int(cols[0]) if cols[0].isdigit() else 0
                removed = int(cols[1]) if cols[1].isdigit() else 0
                files.append((_rename_target(cols[2]), added, removed))
        cands.append(_Candidate(sha, parents[0] if len(parents) == 1 else "", date, message, files))
    return cands


def _rename_target(path: str) -> str:
    """numstat writes renames as ``a/{old => new}/b`` or ``old => new``; keep the new path."""
    m = re.match(r"^(.*)\{(.*) => (.*)\}(.*)$", path)
    if m:
        return (m.group(1) + m.group(3) + m.group(4)).replace("//", "/")
    if " => " in path:
        return path.split(" => ", 1)[1]
    return path


def repo_name(repo: Any) -> str:
    """``owner/name`` from the origin remote when there is one, else the work tree's directory name."""
    try:
        url = repo.remotes.origin.url
    except (AttributeError, IndexError, ValueError):
        url = ""
    m = re.search(r"[:/]([^/:]+/[^/]+?)(?:\.git)?/?$", url or "")
    return m.group(1) if m else Path(repo.working_tree_dir).name
