"""What the units of work are, and the one loop that drives any executor over them.

Memory may only see earlier tasks, so the order of work is fixed before anything runs:

- **streams** (default): the tasks of one repository form a queue run in chronological order, one task in flight
  per queue; the next task of a queue is submitted when the previous one's result (and memory write) is in, and
  preferably to the same machine. Queues run in parallel up to the executor's capacity.
- **epochs** (``--epochs N``): all tasks in chronological order, cut into N consecutive epochs (never between two
  tasks with the same ``created_at``). The tasks of an epoch run all in parallel against the memory as it was at
  the epoch's start; their memory is written by the driver at the epoch's end, in chronological order. Nothing an
  epoch's task sees depends on timing, at the price of not seeing the epoch's earlier tasks (docs/scale.md).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Sequence

from expagent.executors.base import TaskOutput, TaskSpec

#: seconds between two looks at unfinished units (also how soon Ctrl-C is noticed)
POLL = 0.5


def chronological(tasks: Sequence[Any]) -> list[Any]:
    """Tasks by ``created_at``, ties in their given order."""
    return sorted(tasks, key=lambda t: t.created_at or "")


def split_epochs(tasks: Sequence[Any], n: int) -> list[list[Any]]:
    """``tasks`` (chronological) cut into at most ``n`` consecutive epochs of near-equal size; tasks with the
    same ``created_at`` always share an epoch (neither may see the other)."""
    ordered = chronological(tasks)
    if n < 1:
        raise ValueError("epochs must be at least 1")
    epochs: list[list[Any]] = []
    start = 0
    for i in range(1, n + 1):
        end = max(start, round(i * len(ordered) / n))
        while 0 < end < len(ordered) and ordered[end].created_at == ordered[end - 1].created_at:
            end += 1
        if end > start:
            epochs.append(list(ordered[start:end]))
            start = end
    return epochs


def drive(executor: Any, queues: Sequence[Sequence[TaskSpec]], on_output: Callable[[TaskOutput], None]) -> None:
    """Run every queue's units in order (one in flight per queue, at most ``executor.capacity`` in all), calling
    ``on_output`` on the driver as each finishes. A failed unit stops new submissions; the units in flight
    finish and are recorded, then its error is raised. Ctrl-C cancels the units in flight."""
    pending = [deque(q) for q in queues]
    ready = deque(i for i, q in enumerate(pending) if q)
    inflight: dict[Any, int] = {}
    near: dict[int, str] = {}
    error: BaseException | None = None
    try:
        while True:
            while error is None and ready and (executor.capacity is None or len(inflight) < executor.capacity):
                q = ready.popleft()
                inflight[executor.submit(pending[q].popleft(), near.get(q))] = q
            if not inflight:
                break
            for handle in executor.wait(list(inflight), timeout=POLL):
                q = inflight.pop(handle)
                try:
                    output = executor.result(handle)
                except Exception as exc:  # noqa: BLE001 - raised below, once the others are in
                    error = error or exc
                    continue
                if output.node:
                    near[q] = output.node
                on_output(output)
                if pending[q]:
                    ready.appendleft(q)  # a stream goes on before a new one starts (the sequential order)
    except BaseException:
        executor.cancel(list(inflight))
        raise
    if error is not None:
        raise error
