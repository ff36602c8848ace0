"""The local sandbox: a private clone of the repository in a temporary directory.

Commands run under bubblewrap when it is installed: no network, a read-only view of the
host, a private /tmp, and only the sandbox directory writable. Without bubblewrap they run
as plain subprocesses (a one-line warning says so). Either way a command that outlives its
timeout is killed together with every process it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from expagent.errors import SandboxError
from expagent.sandbox.base import CommandResult, Sandbox

_warned_no_bwrap = False


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def git_head(repo: str | os.PathLike) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "HEAD^{commit}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SandboxError(f"{repo} has no commit to copy (git: {proc.stderr.strip() or 'no HEAD'})")
    return proc.stdout.strip()


class LocalSandbox(Sandbox):
    kind = "local"

    def __init__(
        self,
        repo_path: str | os.PathLike,
        base_commit: str | None = None,
        *,
        isolate: bool | None = None,
        network: bool = False,
        setup: list[str] | None = None,
        env: dict[str, str] | None = None,
        ro_paths: list[str | os.PathLike] | None = None,
        command_prefix: str = "",
        warn=None,
    ):
        self.repo_path = Path(repo_path).resolve()
        self.base_commit = base_commit or ""
        self.network = network
        self.setup = list(setup or [])
        self.extra_env = dict(env or {})
        # host paths commands may read although they lie under the sandbox's private /tmp (e.g. a test venv)
        self.ro_paths = [Path(p).resolve() for p in (ro_paths or [])]
        # shell text run before every command (e.g. activating a task's virtualenv); "{workdir}" is filled in
        self.command_prefix = command_prefix
        # isolate=None: use bubblewrap when available; True: require it; False: plain subprocesses
        self._bwrap = bwrap_path() if isolate is not False else None
        if isolate is True and not self._bwrap:
            raise SandboxError("bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap)")
        self._warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self.root: Path | None = None
        self.workdir = ""

    # -- life cycle -------------------------------------------------------
    def start(self) -> None:
        if self.root is not None:
            return
        if not self.base_commit:
            self.base_commit = git_head(self.repo_path)
        self.root = Path(tempfile.mkdtemp(prefix="expagent-sb-"))
        repo = self.root / "repo"
        (self.root / "home").mkdir()
        try:
            # a clone holds the committed state only: the user's uncommitted changes never reach the agent,
            # and nothing the agent does can reach the user's working tree
            self._git("clone", "--quiet", "--no-checkout", str(self.repo_path), str(repo))
            self._git("-C", str(repo), "checkout", "--quiet", "--detach", self.base_commit)
            self._git("-C", str(repo), "config", "user.name", "expagent")
            self._git("-C", str(repo), "config", "user.email", "expagent@localhost")
        except BaseException:
            self.close()
            raise
        self.workdir = str(repo)
        if not self._bwrap:
            global _warned_no_bwrap
            if not _warned_no_bwrap:
                self._warn("warning: bubblewrap not found; local sandbox commands run without network isolation")
                _warned_no_bwrap = True
        # set-up commands may install dependencies: like Docker's set-up images, they run with the network on
        network, self.network = self.network, True
        try:
            for command in self.setup:
                result = self.run(command, timeout=1800)
                if result.exit_code != 0:
                    self.close()
                    raise SandboxError(f"sandbox set-up command failed ({command!r}): {result.output.strip()[-300:]}")
        finally:
            self.network = network

    def close(self) -> None:
        root, self.root = self.root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def _git(*args: str) -> None:
        proc = subprocess.run(["git", *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SandboxError(f"git {' '.join(args[:2])} failed: {proc.stderr.strip()[-300:]}")

    @property
    def host_workdir(self) -> Path | None:
        return Path(self.workdir) if self.workdir else None

    # -- commands ---------------------------------------------------------
    def _argv(self, command: str, cwd: str) -> list[str]:
        if not self._bwrap:
            return ["bash", "-c", command]
        argv = [
            self._bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
            *[arg for path in self.ro_paths for arg in ("--ro-bind", str(path), str(path))],
            "--bind", str(self.root), str(self.root),
            "--unshare-pid",
            "--die-with-parent",
            "--new-session",
            "--chdir", cwd,
        ]
        if not self.network:
            argv.append("--unshare-net")
        return [*argv, "bash", "-c", command]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not _looks_secret(k)}
        env.update(
            HOME=str(self.root / "home"),
            GIT_TERMINAL_PROMPT="0",
            PAGER="cat",
            GIT_PAGER="cat",
            PYTHONDONTWRITEBYTECODE="1",
            TERM="dumb",
        )
        env.update(self.extra_env)
        return env

    def run(self, command: str, timeout: float | None = None, cwd: str | None = None) -> CommandResult:
        if self.root is None:
            raise SandboxError("sandbox is not started")
        cwd = str(self._resolve(cwd)) if cwd else self.workdir
        if self.command_prefix:
            command = self.command_prefix.replace("{workdir}", self.workdir) + command
        started = time.monotonic()
        proc = subprocess.Popen(
            self._argv(command, cwd),
            cwd=cwd,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout can kill every descendant
        )
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            out, _ = proc.communicate()
        except BaseException:
            _kill_group(proc)
            proc.communicate()
            raise
        return CommandResult(
            output=out.decode("utf-8", errors="replace"),
            exit_code=-1 if timed_out else proc.returncode,
            duration=time.monotonic() - started,
            timed_out=timed_out,
        )

    # -- files ------------------------------------------------------------
    def _resolve(self, path: str) -> Path:
        if self.root is None:
            raise SandboxError("sandbox is not started")
        full = Path(path) if os.path.isabs(path) else Path(self.workdir) / path
        full = Path(os.path.normpath(full))
        # the host file system is outside the sandbox: refuse to read or write it through the sandbox,
        # also by way of a symbolic link (a tool reports this to the model as an error message)
        root = self.root.resolve()
        if not (full.resolve() == root or root in full.resolve().parents):
            raise PermissionError(f"path {path!r} is outside the sandbox")
        return full

    def read_file(self, path: str) -> str:
        full = self._resolve(path)
        try:
            return full.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {path}") from None

    def write_file(self, path: str, content: str) -> None:
        full = self._resolve(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(content, encoding="utf-8")

    def to_sandbox_path(self, path: str) -> str:
        return str(self._resolve(path))


def _looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in ("API_KEY", "TOKEN", "SECRET", "PASSWORD"))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
