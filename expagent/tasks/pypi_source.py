"""Repositories made from PyPI source distributions.

A suite may name its repository as ``pypi = "toolz==1.2.0"``: the sdist (which carries the
project's tests) is downloaded once with pip, unpacked, and committed deterministically, so the
pristine commit has the same sha on every machine. Synthesized tasks' buggy-state commits are then
rebuilt on top of it (see ``synth_git.ensure_task_commits``).
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Iterable

from expagent import paths
from expagent.errors import ExpagentError
from expagent.tasks import synth_git

_SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9][A-Za-z0-9._+!-]*)\s*$")


class PypiSourceError(ExpagentError):
    pass


def parse_spec(spec: str) -> tuple[str, str]:
    """``"name==version"`` -> ``(name, version)``; the version must be pinned exactly."""
    match = _SPEC.match(spec or "")
    if not match:
        raise PypiSourceError(f"bad PyPI source {spec!r}: write it as name==version (an exact pin)")
    return match.group(1), match.group(2)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def sdist_cache() -> Path:
    return paths.cache_dir() / "sdists"


def _is_sdist_of(filename: str, name: str, version: str) -> bool:
    """Whether ``filename`` is the source archive of ``name==version`` (names compared normalized)."""
    for suffix in (".tar.gz", ".tgz", ".zip", ".tar.bz2"):
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            break
    else:
        return False
    project, _, found = stem.rpartition("-")
    return _normalized(project) == _normalized(name) and found.lower() == version.lower()


def _find_cached(name: str, version: str, where: Path) -> Path | None:
    if not where.is_dir():
        return None
    return next((path for path in sorted(where.iterdir()) if _is_sdist_of(path.name, name, version)), None)


def index_url() -> str:
    """The package index pip uses (``PIP_INDEX_URL``, else pip's configured ``index-url``, else PyPI)."""
    configured = os.environ.get("PIP_INDEX_URL")
    if not configured:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                              capture_output=True, text=True)
        configured = proc.stdout.strip() if proc.returncode == 0 else ""
    return (configured or "https://pypi.org/simple").rstrip("/")


def _download_from_index(name: str, version: str, dest: Path) -> Path | None:
    """The sdist of ``name==version`` fetched straight from the index's simple page (PEP 503) into ``dest``,
    its sha256 checked when the page gives one; None when the page lists no such file or cannot be read."""
    page_url = f"{index_url()}/{_normalized(name).replace('_', '-')}/"  # PEP 503's name
    try:
        with urllib.request.urlopen(page_url, timeout=60) as response:
            page = response.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    for href in re.findall(r'href="([^"]+)"', page):
        url, _, fragment = html.unescape(href).partition("#")
        filename = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        if not _is_sdist_of(filename, name, version):
            continue
        try:
            with urllib.request.urlopen(urllib.parse.urljoin(page_url, url), timeout=600) as response:
                data = response.read()
        except (OSError, ValueError):
            return None
        algo, _, digest = fragment.partition("=")
        if algo == "sha256" and hashlib.sha256(data).hexdigest() != digest:
            return None
        target = dest / filename
        target.write_bytes(data)
        return target
    return None


def download_sdist(spec: str) -> Path:
    """The sdist of ``name==version``, from the cache or downloaded with pip (no dependencies, no wheels)."""
    name, version = parse_spec(spec)
    cache = sdist_cache()
    cached = _find_cached(name, version, cache)
    if cached:
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="expagent-sdist-", dir=cache) as tmp:
        proc = subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                "--disable-pip-version-check", "-q", "-d", tmp, f"{name}=={version}",
            ],
            capture_output=True,
            text=True,
        )
        got = _find_cached(name, version, Path(tmp))
        if proc.returncode != 0 or got is None:
            lines = [l for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
            reason = lines[-1].strip() if lines else "pip found no source distribution"
            # pip prepares the metadata of what it downloads, which builds an sdist whose build needs more
            # than pip can install here (scikit-learn 1.3: "Failed to build ... build dependencies"); the
            # archive itself is one file on the index
            got = _download_from_index(name, version, Path(tmp))
            if got is None:
                raise PypiSourceError(f"cannot download the sdist of {name}=={version} from PyPI: {reason}")
        final = cache / got.name
        got.replace(final)  # same filesystem: an atomic rename, so a half-downloaded file is never cached
        return final


def _unpack(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, dropping the single top-level directory sdists have."""
    with tempfile.TemporaryDirectory(prefix="expagent-unpack-") as tmp:
        tmp_path = Path(tmp)
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    target = (tmp_path / member).resolve()
                    if not str(target).startswith(str(tmp_path.resolve())):
                        raise PypiSourceError(f"{archive.name}: unsafe path {member!r} in archive")
                zf.extractall(tmp_path)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp_path, filter="data")
        entries = [p for p in tmp_path.iterdir()]
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp_path
        dest.mkdir(parents=True, exist_ok=True)
        for entry in top.iterdir():
            shutil.move(str(entry), str(dest / entry.name))


def pristine_message(spec: str) -> str:
    name, version = parse_spec(spec)
    return f"{name} {version} (PyPI sdist)"


def materialize(spec: str, dest: Path, tasks: Iterable[Any] = ()) -> str:
    """Make ``dest`` a git repository holding the sdist of ``spec``; return the pristine commit's sha.

    ``dest`` must not exist or be empty. The pristine commit is deterministic (same sdist, same sha).
    For each of ``tasks`` (``Task`` objects or SWE-bench dicts of a synthesized suite) whose base
    commit is missing, the buggy-state commit is rebuilt on top of it and tagged ``synth/<instance_id>``;
    the working tree stays at the pristine commit.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise PypiSourceError(f"cannot materialize {spec} into {dest}: the directory is not empty")
    archive = download_sdist(spec)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # built beside ``dest`` and renamed into place: an interrupted build never leaves a half repository
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        build = Path(tmp) / "repo"
        _unpack(archive, build)
        if (build / ".git").exists():
            raise PypiSourceError(f"the sdist of {spec} contains a .git directory; refusing to use it")
        sha = synth_git.commit_worktree(build, pristine_message(spec))
        tasks = list(tasks)
        if tasks:
            synth_git.ensure_task_commits(build, tasks, pristine=sha)
        if dest.exists():
            dest.rmdir()
        build.rename(dest)
    return sha
