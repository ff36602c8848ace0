"""A cross-process write lock (``fcntl.flock`` on a file in the memory directory).

Chroma's embedded store is not safe against two processes writing at once; every write the store makes holds this
lock, so two ``expagent`` processes on one machine take turns. The lock is released by the kernel when a process
dies, so a crash never leaves the memory locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from expagent.errors import ExpagentError


class LockTimeout(ExpagentError):
    pass


@contextmanager
def write_lock(path: Path, timeout: float = 120.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the duration of the block (waits up to ``timeout`` seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"memory is locked by another writer for more than {timeout:.0f}s ({path})") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
