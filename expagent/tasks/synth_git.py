"""Deterministic git commits for synthesized suites.

A synthesized suite names its tasks by commit sha: the pristine source is one commit, and each
task's buggy state (the mutation) is a commit on top of it. For a suite to be rebuilt on any
machine, from the PyPI sdist and the records alone, those shas must not depend on who runs the
build or when: author, committer, dates and messages are fixed, and the user's git configuration
(hooks, signing, line-ending conversion, global ignores) is kept out of it.

Commits are made with plumbing (``write-tree`` / ``commit-tree``) on a private index, so making a
task commit never touches the working tree.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable

from expagent import gitutil
from expagent.errors import ExpagentError
from expagent.gitutil import identity_env

SYNTH_NAME = "expagent synth"
SYNTH_EMAIL = "synth@expagent.invalid"
SYNTH_DATE = "2000-01-01T00:00:00+0000"
#: where task commits are kept reachable (a clone copies tags)
TASK_REF_PREFIX = "refs/tags/synth/"


class SynthGitError(ExpagentError):
    pass


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every git command here: fixed identity and dates, no user/system config."""
    # isolated: a user's ~/.gitconfig could sign commits, convert line endings or ignore files
    return gitutil.git_env({**identity_env(SYNTH_NAME, SYNTH_EMAIL, SYNTH_DATE), **(extra or {})}, isolated=True)


def git(repo: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run git in ``repo``; return stdout; raise a one-line ``SynthGitError`` on failure."""
    return gitutil.git(repo, "-c", "core.autocrlf=false", "-c", "core.safecrlf=false", *args, input=input,
                       env=env or git_env(), error=SynthGitError)
    return proc.stdout


def commit_worktree(repo: Path, message: str, branch: str = "main") -> str:
    """Initialise ``repo`` if needed and commit every file in it (ignored ones included) as one root commit.

    The same files always give the same sha.
    """
    if not (repo / ".git").exists():
        git(repo, "init", "-q")
    git(repo, "add", "-A", "-f", ".")
    tree = git(repo, "write-tree").strip()
    sha = git(repo, "commit-tree", tree, "-m", message).strip()
    git(repo, "update-ref", f"refs/heads/{branch}", sha)
    git(repo, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    return sha


def task_commit_message(instance_id: str) -> str:
    return f"synth: {instance_id}"


def commit_patch(repo: Path, parent: str, patch: str, message: str, reverse: bool = False) -> str:
    """The commit ``parent`` + ``patch`` (reversed if asked), made on a private index; the worktree is untouched."""
    with tempfile.TemporaryDirectory(prefix="expagent-synth-index-") as tmp:
        env = git_env({"GIT_INDEX_FILE": str(Path(tmp) / "index")})
        git(repo, "read-tree", parent, env=env)
        args = ["apply", "--cached", "--whitespace=nowarn"] + (["-R"] if reverse else [])
        git(repo, *args, "-", input=patch, env=env)
        tree = git(repo, "write-tree", env=env).strip()
        return git(repo, "commit-tree", tree, "-p", parent, "-m", message, env=env).strip()


def commit_exists(repo: Path, sha: str) -> bool:
    return gitutil.run_git(repo, "cat-file", "-e", f"{sha}^{{commit}}", env=git_env(), check=False).returncode == 0


def _field(task: Any, name: str) -> Any:
    return task.get(name) if isinstance(task, dict) else getattr(task, name, None)


def ensure_task_commits(repo: Path, tasks: Iterable[Any], pristine: str | None = None) -> list[str]:
    """Recreate the buggy-state commit of each synthesized task that ``repo`` lacks; return the shas made.

    A synthesized task's gold patch reverts its mutation, so its base commit is ``pristine`` with the
    gold patch applied in reverse, committed deterministically. ``pristine`` defaults to ``HEAD``.
    Tasks whose base commit already exists are left alone; a rebuilt sha that differs from the
    record's ``base_commit`` is an error (the source is not the one the suite was made from).
    ``tasks`` may be ``Task`` objects or SWE-bench dicts.
    """
    repo = Path(repo)
    pristine = pristine or git(repo, "rev-parse", "HEAD").strip()
    made = []
    for task in tasks:
        base = str(_field(task, "base_commit") or "")
        instance_id = str(_field(task, "instance_id"))
        if base and commit_exists(repo, base):
            continue
        patch = _field(task, "patch")
        if not patch:
            raise SynthGitError(f"task {instance_id}: base commit {base[:12]} is missing and there is no gold patch to rebuild it")
        sha = commit_patch(repo, pristine, patch, task_commit_message(instance_id), reverse=True)
        if base and sha != base:
            raise SynthGitError(
                f"task {instance_id}: rebuilt base commit {sha[:12]} differs from the record's {base[:12]} "
                "(the source differs from the one the suite was made from)"
            )
        git(repo, "update-ref", TASK_REF_PREFIX + instance_id, sha)
        made.append(sha)
    return made


def diff(repo: Path, a: str, b: str, path: str | None = None) -> str:
    """``git diff a b`` (optionally limited to ``path``), as a patch ``git apply`` accepts."""
    args = ["diff", "--no-color", "--no-ext-diff", "--no-renames", a, b]
    if path:
        args += ["--", path]
    return git(repo, *args)
