"""The repository copy a sandbox holds: a shallow clone of one commit, as a tar stream.

Only committed state is copied (never the user's uncommitted changes), and ``git diff
<base_commit>`` keeps working inside the copy because the commit itself is there.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from expagent import gitutil
from expagent.errors import SandboxError


def git(repo: Path, *args: str) -> str:
    return gitutil.git(repo, *args, error=SandboxError).strip()


def resolve_commit(repo: Path, commit: str | None) -> str:
    if not (repo / ".git").exists() and not (repo / "HEAD").is_file():  # a work tree or a bare repository
        raise SandboxError(f"{repo} is not a git repository")
    try:
        return git(repo, "rev-parse", "--verify", f"{commit or 'HEAD'}^{{commit}}")
    except SandboxError:
        raise SandboxError(f"commit {commit or 'HEAD'} not found in {repo}") from None


def export_repo(repo: Path, commit: str, dest: Path) -> None:
    """A shallow clone of ``repo`` at ``commit`` (committed state only) in ``dest``."""
    dest.mkdir(parents=True)
    git(dest, "init", "--quiet")
    # protocol v2 lets a local fetch ask for any reachable commit by id; depth 1 keeps it small
    git(dest, "-c", "protocol.version=2", "fetch", "--quiet", "--depth", "1", f"file://{repo.resolve()}", commit)
    git(dest, "checkout", "--quiet", "--detach", commit)


def tar_directory(source: Path, arcname: str) -> Any:
    """``source`` as a tar stream in a temporary file (files owned by root inside the sandbox)."""
    spool = tempfile.TemporaryFile()
    result = subprocess.run(
        ["tar", "-C", str(source.parent), "--owner=0", "--group=0", "--numeric-owner", "-cf", "-",
         f"--transform=s,^{source.name},{arcname},", source.name],
        stdout=spool,
        stderr=subprocess.PIPE,
    )
    if result.returncode != 0:
        spool.close()
        raise SandboxError(f"cannot archive repository copy: {result.stderr.decode(errors='replace').strip()[-200:]}")
    spool.seek(0)
    return spool


def single_file_tar(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class BackgroundExport:
    """``export_repo`` + tar in a worker thread; ``result()`` is the tar stream (or the error)."""

    def __init__(self, repo: Path, commit: str, arcname: str):
        self._archive: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(repo, commit, arcname), daemon=True)
        self._thread.start()

    def _work(self, repo: Path, commit: str, arcname: str) -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="expagent-copy-") as tmp:
                clone = Path(tmp) / "repo"
                export_repo(repo, commit, clone)
                self._archive = tar_directory(clone, arcname)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._archive

    def discard(self) -> None:
        self._thread.join()
        if self._archive is not None:
            self._archive.close()
            self._archive = None
