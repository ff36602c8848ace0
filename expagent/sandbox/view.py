"""What the agent sees, as a directory on this machine: the source of every piece of run context.

The repo map, issue keys and code-intelligence tools read the sandbox's checkout, never the caller's working
tree (whose untracked and ignored files the agent cannot see and must never reach a prompt). A sandbox whose
checkout is a host directory (``host_workdir``) is read in place; for any other (a container) the view is a
private clone of the committed ``base_commit`` with the sandbox's current patch applied, refreshed on demand.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from expagent.errors import SandboxError
from expagent.sandbox.base import Sandbox


class CheckoutView:
    """``path()`` is a host directory holding the sandbox checkout's current content. Close it when done."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self._mirror: Path | None = None
        self._applied: str | None = None

    def path(self, refresh: bool = True) -> Path:
        live = self.sandbox.host_workdir
        if live is not None:
            return live
        if self._mirror is None:
            self._mirror = self._clone()
            self._applied = ""
        if refresh:
            self._sync()
        return self._mirror / "repo"

    __call__ = path

    def _clone(self) -> Path:
        root = Path(tempfile.mkdtemp(prefix="expagent-view-"))
        repo = root / "repo"
        try:
            # --shared: the objects stay in the source repository (read-only here); a large repository costs no copy
            _git(None, "clone", "--quiet", "--shared", "--no-checkout", str(self.sandbox.repo_path), str(repo))
            _git(repo, "checkout", "--quiet", "--detach", self.sandbox.base_commit)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return root

    def _sync(self) -> None:
        patch = self.sandbox.diff()
        if patch == self._applied:
            return
        repo = self._mirror / "repo"
        _git(repo, "reset", "--quiet", "--hard", self.sandbox.base_commit)
        _git(repo, "clean", "-qfdx")
        if patch.strip():
            _git(repo, "apply", "--whitespace=nowarn", "--binary", "-", input=patch)
        self._applied = patch

    def close(self) -> None:
        mirror, self._mirror = self._mirror, None
        if mirror is not None:
            shutil.rmtree(mirror, ignore_errors=True)

    def __enter__(self) -> "CheckoutView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _git(repo: Path | None, *args: str, input: str | None = None) -> None:
    argv = ["git", *(["-C", str(repo)] if repo is not None else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, input=input)
    if proc.returncode != 0:
        raise SandboxError(f"git {args[0]} failed for the checkout view: {proc.stderr.strip()[-300:]}")
