"""Small file helpers shared by every module that writes user-visible files."""

from __future__ import annotations

from contextlib import contextmanager

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = True) -> None:
    """Write ``text`` so that readers see either the old file or the new one, never a half-written one.

    ``durable=False`` skips the fsync: still atomic for readers, but a power cut may lose the
    latest version (right for files rewritten many times a minute, such as trajectories).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int | None = 2, durable: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False, default=str) + "\n", durable)


@contextmanager
def locked(lock_path: str | os.PathLike):
    """An exclusive advisory lock on ``lock_path`` (created), held by this block: across processes and across
    threads of one process (each holder opens the file itself)."""
    import fcntl

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
