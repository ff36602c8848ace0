"""The local executor: units of work on threads of this process, sharing one memory store (today's ``--workers``)."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Sequence

from expagent.executors.base import Runtime, TaskOutput, TaskSpec, Work


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.capacity = max(1, workers or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._suite: Any = None
        self._runtime: Runtime | None = None
        self._work: Work | None = None

    def start(self, suite: Any, runtime: Runtime, work: Work) -> None:
        self._suite, self._runtime, self._work = suite, runtime, work
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix="expagent-replay")

    def submit(self, spec: TaskSpec, near: str | None = None) -> Future:
        assert self._pool is not None and self._work is not None, "start() first"
        return self._pool.submit(self._work, spec, self._suite, self._runtime)

    def wait(self, handles: Sequence[Future], timeout: float | None = None) -> list[Future]:
        done, _ = wait(list(handles), timeout=timeout, return_when=FIRST_COMPLETED)
        return [h for h in handles if h in done]

    def result(self, handle: Future) -> TaskOutput:
        return handle.result()

    def cancel(self, handles: Sequence[Future]) -> None:
        # a thread cannot be stopped from outside: queued units are dropped, running ones finish
        for handle in handles:
            handle.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
