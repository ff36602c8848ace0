"""Where replay's units of work run: threads of this process (``local``) or a Ray cluster (``ray``).

``make_executor`` picks one; ``expagent.executors.schedule`` decides what the units are (per-repository streams,
or chronological epochs) and drives any executor the same way, so results never depend on which ran them.
"""

from __future__ import annotations

from expagent.errors import ExecutorError

EXECUTORS = ("local", "ray")
RAY_MISSING = "the ray executor needs Ray, which is not installed: pip install 'expagent[ray]'"


def make_executor(name: str, *, address: str | None = None, workers: int | None = None):
    if name == "local":
        if address:
            raise ExecutorError("--address names a Ray cluster; it needs --executor ray")
        from expagent.executors.local import LocalExecutor

        return LocalExecutor(workers)
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorError(RAY_MISSING) from None
        from expagent.executors.ray_executor import RayExecutor

        return RayExecutor(address, workers)
    raise ExecutorError(f"unknown executor {name!r} (expected one of: {', '.join(EXECUTORS)})")
