"""The Ray executor: each unit of work is a Ray remote task on a cluster (``ray start`` on each machine).

A worker runs its task in its own directory (``$EXPAGENT_HOME/remote-runs/<run>/`` of the machine it is on),
builds or finds the task's repository and environment itself, uses the shared memory through the Chroma server
(``--chroma-url``), and returns the results row with the task directory as an archive; the driver writes the
row and unpacks the directory into the run directory. A worker that dies has its task re-executed elsewhere by
Ray (``max_retries``); the episode key is deterministic per run and task, so a retry writes no memory twice, and
the row is written once, by the driver, when the task's result arrives.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from expagent.executors.base import Runtime, TaskOutput, TaskSpec, pack_dir

#: Ray re-executes a task whose worker or node died this many times before giving up
MAX_RETRIES = 3
#: seconds a cancelled task gets to clean up (its sandbox) before its worker is killed
CANCEL_GRACE = 15.0

_remote = None
_worker_runtimes: dict[tuple, Runtime] = {}
_worker_lock = threading.Lock()


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address = address
        self.capacity = workers
        self._suite_ref: Any = None
        self._started_local = False

    # -- driver side --------------------------------------------------------
    def start(self, suite: Any, runtime: Runtime, work: Any) -> None:
        import ray

        self._work = work

        from expagent.errors import ExecutorError

        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                                  "ignore_reinit_error": True}
        if self.address:
            kwargs["address"] = self.address
        else:  # no cluster named: a private one on this machine, sized by --workers
            kwargs.update(num_cpus=self.capacity or os.cpu_count() or 1, include_dashboard=False,
                          object_store_memory=200 * 1024 * 1024)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise ExecutorError(f"cannot connect to {where}: {str(exc).strip().splitlines()[0][:300]}") from None
        self._started_local = not self.address
        self._suite_ref = ray.put(suite)

    def submit(self, spec: TaskSpec, near: str | None = None) -> Any:
        options: dict[str, Any] = {"name": f"expagent:{spec.instance_id}"}
        if near:
            # keep a stream on the machine that ran its previous task (its repository and environment are
            # there); soft: if that machine is gone, anywhere
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=near, soft=True)
        return _remote_task().options(**options).remote(spec, self._suite_ref, self._work)

    def wait(self, handles: Sequence[Any], timeout: float | None = None) -> list[Any]:
        import ray

        handles = list(handles)
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready and len(handles) > 1:  # everything else already finished comes along
            ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)
        return ready

    def result(self, handle: Any) -> TaskOutput:
        import ray
        from ray.exceptions import RayError, RayTaskError

        from expagent.errors import ExecutorError

        try:
            return ray.get(handle)
        except RayTaskError as exc:
            # the task itself failed (not its worker): the same error as on the local executor
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if cause is not None:
                raise cause from None
            raise ExecutorError(f"a remote task failed: {str(exc).strip().splitlines()[0][:300]}") from None
        except RayError as exc:
            raise ExecutorError(f"a remote task failed after {MAX_RETRIES} retries: "
                                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from None

    def cancel(self, handles: Sequence[Any]) -> None:
        """Ctrl-C: interrupt the remote tasks (their sandboxes are removed on the way out), then kill stragglers."""
        import ray

        handles = list(handles)
        if not handles:
            return
        for handle in handles:
            ray.cancel(handle, force=False)
        try:
            _, left = ray.wait(handles, num_returns=len(handles), timeout=CANCEL_GRACE)
        except Exception:  # noqa: BLE001 - best effort on the way out
            left = handles
        for handle in left:
            try:
                ray.cancel(handle, force=True)
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _remote_task():
    global _remote
    if _remote is None:
        import ray

        _remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(run_on_worker)
    return _remote


# -- worker side ------------------------------------------------------------
def worker_dir(run_name: str) -> Path:
    """This machine's directory for a run's tasks and its memory audit log."""
    from expagent import paths

    return paths.home() / "remote-runs" / run_name


def _worker_runtime(spec: TaskSpec) -> Runtime:
    """One per worker process and run: its directory, memory store (the Chroma server), distiller and sandbox."""
    from expagent import experience

    key = (spec.run_name, spec.settings.memory, spec.settings.chroma_url)
    with _worker_lock:
        runtime = _worker_runtimes.get(key)
        if runtime is None:
            root = worker_dir(spec.run_name)
            store = experience.open_memory(spec.settings, home=root)
            distiller = experience.make_distiller(spec.settings) if store is not None and spec.remember else None
            sandbox = None
            if getattr(spec.sandbox, "auto", False):  # `auto` means this machine's choice (Docker if it has it)
                from expagent.sandbox.config import resolve_sandbox

                sandbox = resolve_sandbox("auto", spec.settings, lambda _m: None)
            runtime = _worker_runtimes[key] = Runtime(root=root, store=store, distiller=distiller, sandbox=sandbox)
        return runtime


def run_on_worker(spec: TaskSpec, suite: Any, work: Any) -> TaskOutput:
    """The remote task: run one replay task here (``work``, replay's ``run_task``) and hand back its row and
    directory."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    runtime = _worker_runtime(spec)
    runtime.root.mkdir(parents=True, exist_ok=True)
    # where each attempt ran: a retried task shows up once per machine that tried it
    with open(runtime.root / "attempts.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"instance_id": spec.instance_id, "node": node, "pid": os.getpid(),
                             "started": time.time()}) + "\n")
    output = work(spec, suite, runtime)
    task_dir = runtime.root / "tasks" / spec.instance_id
    output.archive = pack_dir(task_dir)
    shutil.rmtree(task_dir, ignore_errors=True)
    output.node = node
    return output
