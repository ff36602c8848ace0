"""The sandbox interface: a small typed contract with swappable backends (local, docker).

A sandbox holds a private copy of a git repository. The agent reads, writes and runs
commands only through it; the user's own working tree is never touched.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CommandResult:
    output: str  # stdout and stderr interleaved, as a terminal would show them
    exit_code: int  # -1 when the command was killed (timeout, OOM)
    duration: float  # seconds
    timed_out: bool = False
    oom_killed: bool = False  # the container (or process) was killed by the memory limit
    redacted: list[str] = field(default_factory=list)  # kinds of secrets removed from the output (expagent.redact)


class Sandbox(abc.ABC):
    """A private, disposable copy of a repository in which commands run.

    Use as a context manager: ``with make_sandbox(...) as sb: sb.run("pytest")``.
    ``close()`` must be safe to call more than once and on every exit path.
    """

    #: name of the backend ("local", "docker")
    kind: str = "abstract"
    #: absolute path of the repository copy as seen by commands inside the sandbox
    workdir: str
    #: the commit the copy was made from; ``diff()`` is taken against it
    base_commit: str
    #: the git repository the copy was made from (only its committed state is copied)
    repo_path: Path

    @property
    def host_workdir(self) -> Path | None:
        """``workdir`` as a directory on this machine, when it is one (None: it lives elsewhere, e.g. in a
        container; ``view.CheckoutView`` then mirrors it)."""
        return None

    #: kinds of secrets the last ``diff()`` held (they are redacted in what it returned)
    patch_secrets: list[str] = []

    @abc.abstractmethod
    def start(self) -> None:
        """Create the private copy and whatever runs commands. Idempotent."""

    @abc.abstractmethod
    def run(self, command: str, timeout: float | None = None, cwd: str | None = None,
            redact: bool = True) -> CommandResult:
        """Run ``command`` with bash inside the sandbox (cwd defaults to ``workdir``).

        A command that outlives ``timeout`` is killed together with every process it started. The output is
        redacted (``expagent.redact``); ``redact=False`` is for a caller that reads the output as data and
        redacts whatever of it it stores or shows itself (the grader: a test id such as
        ``test_auth[http://user:pass@host]`` must reach the test-output parser whole).
        """

    @abc.abstractmethod
    def read_file(self, path: str) -> str:
        """Read a file; ``path`` is relative to ``workdir`` or absolute inside the sandbox."""

    @abc.abstractmethod
    def write_file(self, path: str, content: str) -> None:
        """Write a file (parents created); ``path`` as for ``read_file``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Remove everything the sandbox created. Safe to call twice."""

    def diff(self) -> str:
        """The repair so far as a patch against ``base_commit`` (new files included)."""
        self.run("git add -A", timeout=60)
        # stderr is dropped so that a git warning can never end up inside the patch
        result = self.run(
            f"git -c core.quotepath=off diff --cached --no-color --binary {self.base_commit} 2>/dev/null", timeout=60
        )
        if result.exit_code != 0:
            raise RuntimeError(f"git diff failed in sandbox: {result.output[-500:]}")
        self.patch_secrets = list(result.redacted)
        return result.output

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
