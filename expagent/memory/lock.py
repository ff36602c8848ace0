"""The cross-process write lock (``fcntl.flock`` on ``write.lock`` in the memory directory).

Every write op of the store holds this lock from journaling its intent to committing it, so two ``expagent``
processes on one machine take turns and an op is never interleaved with another. The lock is released by the
kernel when a process dies, so a crash never leaves the memory locked (and whoever takes the lock next knows that
any op still pending belongs to a dead writer). The lock is re-entrant within a thread (a repair that opens the
store while holding it does not wait for itself); other threads and processes wait.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from expagent.errors import ExpagentError, RuntimeFailure

_held = threading.local()  # the lock files this thread holds


class LockTimeout(RuntimeFailure):
    """Another process held the memory's write lock too long: exit code 1 (the work failed, the input was fine)."""


@contextmanager
def write_lock(path: Path, timeout: float = 120.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the duration of the block (waits up to ``timeout`` seconds; 0 = do
    not wait)."""
    key = str(Path(path).resolve())
    held: set[str] = getattr(_held, "paths", None) or set()
    _held.paths = held
    if key in held:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"memory is locked by another writer for more than {timeout:.0f}s ({path})") from None
                time.sleep(0.02)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
