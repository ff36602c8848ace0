"""What an executor runs and hands back: one replay task as a picklable unit of work.

A unit (``TaskSpec``) names one task of the suite and everything a worker needs to run it; the worker's
answer (``TaskOutput``) carries the results row, the messages to show, and, when the worker does not share the
driver's run directory, the task's directory as an archive. Only the driver writes ``results.jsonl``.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Any, Protocol, Sequence

#: the unit of work, ``work(spec, suite, runtime) -> TaskOutput``: the caller's (replay's ``run_task``), handed in
#: so that executors never import their caller; a module-level function, so Ray pickles it by reference
Work = Callable[["TaskSpec", Any, "Runtime"], "TaskOutput"]


@dataclass
class TaskSpec:
    """One task for a worker: picklable (no console, store or lock in it)."""

    instance_id: str
    settings: Any  # expagent.config.Settings
    run_name: str  # the run directory's name: episode keys are "<run_name>:<instance_id>"
    run_dir: str  # the driver's run directory; paths recorded in memory point there whatever the worker
    repos_dir: str | None = None
    #: write the task's memory on the worker right after it (streams); False when the driver writes it later
    #: in chronological order (epochs, whose tasks all run against the memory frozen at the epoch's start)
    remember: bool = True
    sandbox: Any = None  # the driver's sandbox config (expagent.sandbox.config); a worker re-resolves ``auto``


@dataclass
class Deferred:
    """What the driver needs to remember a task whose memory write was deferred (epochs)."""

    result: Any  # expagent.agent.loop.AgentResult
    verdict: Any  # expagent.session.Verdict


@dataclass
class TaskOutput:
    instance_id: str
    row: Any  # expagent.tasks.results.ResultRow
    messages: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # memory records the worker wrote
    node: str = ""  # where it ran ("" for the local executor)
    archive: bytes | None = None  # tasks/<id>/ as a tar.gz, when the worker ran it in its own directory
    deferred: Deferred | None = None


@dataclass
class Runtime:
    """Where a task runs: its run directory root, the memory store and distiller it uses, a write lock."""

    root: Path  # tasks/<id>/ is made under it
    store: Any  # MemoryStore or None
    distiller: Any
    lock: Any = field(default_factory=threading.Lock)
    sandbox: Any = None  # this machine's sandbox config, when it chose its own (else the spec's)


class Executor(Protocol):
    """Runs units of work somewhere; results come back as they finish."""

    name: str
    #: units in flight at most (None: as many as the cluster takes)
    capacity: int | None

    def start(self, suite: Any, runtime: Runtime, work: "Work") -> None: ...
    def submit(self, spec: TaskSpec, near: str | None = None) -> Any: ...
    def wait(self, handles: Sequence[Any], timeout: float | None = None) -> list[Any]: ...
    def result(self, handle: Any) -> TaskOutput: ...
    def cancel(self, handles: Sequence[Any]) -> None: ...
    def close(self) -> None: ...


def pack_dir(path: Path) -> bytes:
    """``path`` as a gzip'd tar (members relative to it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=".")
    return buffer.getvalue()


def unpack_dir(data: bytes, dest: Path) -> None:
    """Replace ``dest`` with the archive's contents (links and absolute paths refused by the data filter)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
