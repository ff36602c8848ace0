"""Running git: the one wrapper every module uses (argument lists, never a shell), and the few questions asked
of a repository often enough to be written once (its top level, its HEAD, its ``owner/name``).

Failures become one-line errors: ``GitError`` (a runtime failure, exit code 1) unless the caller names its own
``ExpagentError`` subclass (a sandbox error, a usage error). Each command is logged at debug level (``-v``).
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Mapping

from expagent.errors import ExpagentError, RuntimeFailure, UsageError

log = logging.getLogger(__name__)


class GitError(RuntimeFailure):
    """A git command failed."""


def git_env(extra: Mapping[str, str] | None = None, *, isolated: bool = False) -> dict[str, str]:
    """The environment for git: never prompts for credentials; ``isolated`` also drops the user's git config and
    every ``GIT_*`` variable of the calling shell (except ``GIT_INDEX_FILE``), for commands whose result must not
    depend on this machine (signing, line endings, hooks paths)."""
    env = dict(os.environ)
    if isolated:
        for key in [k for k in env if k.startswith("GIT_") and k != "GIT_INDEX_FILE"]:
            env.pop(key)
        env.update({"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.update(extra or {})
    return env


def identity_env(name: str, email: str, date: str | None = None) -> dict[str, str]:
    """``GIT_AUTHOR_*`` and ``GIT_COMMITTER_*`` for commits made by expagent (and by tests)."""
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
           "GIT_COMMITTER_EMAIL": email}
    if date:
        env.update({"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    return env


def _command(args: tuple[str, ...]) -> str:
    """The git subcommand and its first argument, for messages (``-c key=value`` options skipped)."""
    rest = list(args)
    while len(rest) >= 2 and rest[0] == "-c":
        rest = rest[2:]
    return " ".join(rest[:2])


def run_git(repo: str | os.PathLike | None, *args: str, input: str | None = None,
            env: Mapping[str, str] | None = None, timeout: float | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """``git [-C repo] ARGS``; with ``check`` a non-zero exit raises :class:`GitError` naming the command and
    git's last line. ``env`` replaces the environment (build it with :func:`git_env`)."""
    argv = ["git", *(["-C", str(repo)] if repo is not None else []), *args]
    log.debug("git %s%s", " ".join(args)[:300], f" (in {repo})" if repo is not None else "")
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, errors="surrogateescape",
                              timeout=timeout,
                              env=dict(env) if env is not None else git_env())
    except subprocess.TimeoutExpired:
        raise GitError(f"git {_command(args)} timed out after {timeout:.0f}s"
                       + (f" in {repo}" if repo is not None else "")) from None
    except OSError as exc:  # no git on PATH
        raise GitError(f"cannot run git: {exc}") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        where = f" in {repo}" if repo is not None else ""
        raise GitError(f"git {_command(args)} failed{where}: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc


def git(repo: str | os.PathLike | None, *args: str, error: type[ExpagentError] = GitError, **kwargs) -> str:
    """stdout of ``git -C repo ARGS``, unchanged (a diff keeps its last newline); failures raise ``error``."""
    try:
        return run_git(repo, *args, **kwargs).stdout
    except GitError as exc:
        if error is GitError:
            raise
        raise error(str(exc)) from None


def toplevel(path: str | os.PathLike) -> Path:
    """The work tree holding ``path``, which must have a commit (a usage error otherwise)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such directory: {path}")
    proc = run_git(path, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0:
        raise UsageError(f"not a git repository: {path.resolve()} (run expagent fix inside one, or pass --repo)")
    top = Path(proc.stdout.strip())
    if run_git(top, "rev-parse", "--verify", "HEAD", check=False).returncode != 0:
        raise UsageError(f"the repository at {top} has no commits yet; commit something first")
    return top


def head_commit(repo: str | os.PathLike, rev: str = "HEAD", error: type[ExpagentError] = GitError) -> str:
    """The full sha of ``rev`` (a commit) in ``repo``."""
    return git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}", error=error).strip()


def read_head(root: str | os.PathLike) -> str:
    """The commit checked out at ``root`` ("" outside git or when HEAD names no commit), read from git's files
    at the top of a work tree without starting git: it is asked on every memory search, where a ``git rev-parse``
    costs more than the search. Anything else (a subdirectory, a symbolic ref outside ``refs/``) asks git."""
    dotgit = Path(root) / ".git"
    try:
        if dotgit.is_file():  # a linked work tree or a submodule: "gitdir: <path>"
            text = dotgit.read_text(encoding="utf-8").strip()
            if not text.startswith("gitdir:"):
                return ""
            gitdir = (Path(root) / text[len("gitdir:"):].strip()).resolve()
        elif dotgit.is_dir():
            gitdir = dotgit
        else:
            return _rev_parse_head(root)
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
        if _is_sha(head):
            return head
        if not head.startswith("ref: refs/"):
            return _rev_parse_head(root)
        ref = head[len("ref: "):]
        common = gitdir
        if (gitdir / "commondir").is_file():
            common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
        for base in (gitdir, common):
            loose = base / ref
            if loose.is_file():
                sha = loose.read_text(encoding="utf-8").strip()
                return sha if _is_sha(sha) else _rev_parse_head(root)
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                sha, _, name = line.partition(" ")
                if name == ref and _is_sha(sha):
                    return sha
        return _rev_parse_head(root)
    except (OSError, UnicodeDecodeError):
        return _rev_parse_head(root)


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def _rev_parse_head(root: str | os.PathLike) -> str:
    try:
        proc = run_git(root, "rev-parse", "--verify", "HEAD^{commit}", check=False, timeout=10)
    except GitError:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def origin_name(repo: str | os.PathLike) -> str | None:
    """``owner/name`` of the ``origin`` remote (https or ssh URL), or None without one."""
    proc = run_git(repo, "remote", "get-url", "origin", check=False)
    url = proc.stdout.strip()
    if proc.returncode != 0 or not url:
        return None
    tail = url.rstrip("/").removesuffix(".git").replace(":", "/").split("/")
    return f"{tail[-2]}/{tail[-1]}" if len(tail) >= 2 and tail[-1] else None


def dirty_paths(repo: str | os.PathLike, paths: list[str] | None = None) -> list[str]:
    """Paths (all, or among ``paths``) with uncommitted changes or untracked, as ``git status`` names them."""
    out = git(repo, "status", "--porcelain", "--", *(paths or []))
    return [line[3:] for line in out.splitlines() if line.strip()]  # "XY name": the status columns come first
