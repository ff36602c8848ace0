"""Where task repositories come from, and private checkouts of them.

``resolve_repo`` returns a git repository (work tree or git dir) that holds the task commits:

1. ``repos_dir`` (``--repos DIR``, or ``$EXPAGENT_REPOS``): a directory of existing clones or bare
   mirrors named ``<owner>__<name>`` or ``<owner>+<name>``; each may be a work tree, a bare repo,
   or a directory holding a ``repo/`` git dir. Suites then run with no network.
2. the suite manifest's source: ``path`` (a local clone), ``url`` (cloned once, as a bare mirror,
   into ``cache_dir()/repos``), or ``pypi`` (a repo materialised from the sdist by
   ``expagent.tasks.pypi_source.materialize``).
3. a plain SWE-bench file: ``https://github.com/<owner>/<name>.git``.

The returned repository is never modified: checkouts are ``git clone``s of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from expagent import paths
from expagent.errors import ExpagentError
from expagent.gitutil import run_git


class RepoUnavailable(ExpagentError):
    pass


def repo_dir_names(repo: str) -> list[str]:
    owner, _, name = repo.partition("/")
    return [f"{owner}__{name}", f"{owner}+{name}", name]


def _git(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_git(None, *args, timeout=timeout, check=False)


def _git_dir_of(path: Path) -> Path | None:
    """``path`` itself when it is a usable git repository (work tree or git dir), else ``None``."""
    for candidate in (path, path / "repo"):
        if not candidate.is_dir():
            continue
        proc = _git("-C", str(candidate), "rev-parse", "--git-dir", timeout=30)
        if proc.returncode == 0:
            git_dir = (candidate / proc.stdout.strip()).resolve()
            # a directory inside some *other* repo (e.g. a plain folder in a checkout) does not count
            if git_dir == (candidate / ".git").resolve() or git_dir == candidate.resolve():
                return candidate.resolve()
    return None


def _from_repos_dir(repo: str, repos_dir: Path) -> Path | None:
    for name in repo_dir_names(repo):
        found = _git_dir_of(repos_dir / name)
        if found is not None:
            return found
    return None


def submodule_mirror(source: Path, url: str) -> Path | None:
    """A local repository for the submodule at ``url`` (``https://github.com/<owner>/<name>``), looked up in the
    directory that holds ``source`` (the ``--repos`` layout) and in ``$EXPAGENT_REPOS``; ``None`` when absent."""
    match = re.match(r"^(?:https?://|git@)github\.com[/:]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", url.strip())
    if not match:
        return None
    source = Path(source).resolve()
    dirs = [source.parent.parent if source.name == "repo" else source.parent]
    if os.environ.get("EXPAGENT_REPOS"):
        dirs.append(Path(os.environ["EXPAGENT_REPOS"]))
    for directory in dirs:
        found = _from_repos_dir(f"{match.group(1)}/{match.group(2)}", directory)
        if found is not None and found != source:
            return found
    return None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


def _clone_url(repo: str, url: str) -> Path:
    dest = paths.cache_dir() / "repos" / f"{_safe_name(repo.replace('/', '__'))}.git"
    if (dest / "HEAD").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        proc = _git("clone", "--quiet", "--mirror", url, str(tmp / "mirror"), timeout=3600)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["git clone failed"])[-1]
            raise RepoUnavailable(
                f"repository {repo} is not available: cloning {url} failed ({tail}); "
                f"without network, pass --repos DIR holding a clone named {repo_dir_names(repo)[0]}"
            )
        os.replace(tmp / "mirror", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _materialize_pypi(repo: str, spec: str, tasks=()) -> Path:
    try:
        from expagent.tasks.pypi_source import materialize
    except ImportError:
        raise RepoUnavailable(
            f"repository {repo} comes from PyPI ({spec}) but expagent.tasks.pypi_source is not available"
        ) from None
    dest = paths.cache_dir() / "repos" / "pypi" / _safe_name(spec)
    from expagent.fsutil import locked

    # graders running in parallel (eval --predictions --workers) make the same repository once
    with locked(dest.parent / f".{dest.name}.lock"):
        if _git_dir_of(dest) is None:
            materialize(spec, dest)
    # synthesized tasks' base commits (pristine + one mutation) are rebuilt deterministically on top
    from expagent.tasks.synth_git import ensure_task_commits

    ensure_task_commits(dest, [t for t in tasks if not has_commit(dest, t.base_commit)])
    return dest


def resolve_repo(suite, repo: str, repos_dir: str | Path | None = None) -> Path:
    """A git repository holding ``repo``'s history (see the module docstring for the order)."""
    repos_dir = repos_dir or os.environ.get("EXPAGENT_REPOS") or None
    if repos_dir:
        repos_dir = Path(repos_dir).expanduser()
        if not repos_dir.is_dir():
            raise RepoUnavailable(f"--repos {repos_dir} is not a directory")
        found = _from_repos_dir(repo, repos_dir)
        if found is not None:
            return found
    source = suite.source(repo)
    if source.path is not None:
        found = _git_dir_of(source.path)
        if found is None:
            raise RepoUnavailable(f"repository {repo}: {source.path} is not a git repository")
        return found
    if source.pypi:
        return _materialize_pypi(repo, source.pypi, [t for t in suite.tasks if t.repo == repo])
    if source.url:
        if repos_dir:
            where = f"{repos_dir}/{repo_dir_names(repo)[0]} not found"
        else:
            where = "no --repos given"
        cached = paths.cache_dir() / "repos" / f"{_safe_name(repo.replace('/', '__'))}.git"
        if (cached / "HEAD").is_file():
            return cached
        try:
            return _clone_url(repo, source.url)
        except RepoUnavailable as exc:
            raise RepoUnavailable(f"{exc} ({where})") from None
    raise RepoUnavailable(f"repository {repo} has no source")


def has_commit(repo_path: Path, commit: str) -> bool:
    return _git("-C", str(repo_path), "cat-file", "-e", f"{commit}^{{commit}}", timeout=30).returncode == 0


def prepare_checkout(task, dest: str | Path, *, repos_dir: str | Path | None = None) -> Path:
    """A private work tree of ``task.repo`` at ``task.base_commit`` in ``dest`` (which must not exist)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ExpagentError(f"checkout destination {dest} exists and is not empty")
    source = resolve_repo(task.suite, task.repo, repos_dir)
    if not has_commit(source, task.base_commit):
        raise RepoUnavailable(f"commit {task.base_commit[:12]} of {task.repo} is not in {source} (update that clone)")
    proc = _git("clone", "--quiet", "--no-checkout", str(source), str(dest))
    if proc.returncode == 0:
        proc = _git("-C", str(dest), "checkout", "--quiet", "--detach", task.base_commit)
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise RepoUnavailable(f"cannot check out {task.repo} at {task.base_commit[:12]}: {proc.stderr.strip()[-300:]}")
    return dest
