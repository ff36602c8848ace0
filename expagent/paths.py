"""Where expagent keeps its files. Everything lives under one home directory."""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path
from typing import Iterator

# a home chosen on the command line (``--home``) for the duration of one command, instead of rewriting
# $EXPAGENT_HOME in the process environment
_HOME_OVERRIDE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("expagent_home", default=None)


def home() -> Path:
    """The expagent home: the one chosen with :func:`using_home`, else ``$EXPAGENT_HOME``, else ``~/.expagent``."""
    chosen = _HOME_OVERRIDE.get()
    if chosen is not None:
        return chosen
    env = os.environ.get("EXPAGENT_HOME")
    return Path(env).expanduser() if env else Path.home() / ".expagent"


@contextlib.contextmanager
def using_home(path: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, :func:`home` (and so settings, runs, caches and memory) is ``path``; None changes nothing."""
    if path is None:
        yield
        return
    token = _HOME_OVERRIDE.set(Path(path).expanduser())
    try:
        yield
    finally:
        _HOME_OVERRIDE.reset(token)


def select_home(path: str | os.PathLike | None) -> None:
    """Make ``path`` the home for the rest of the current command (the CLI runs each command in its own
    ``contextvars`` context, so the choice ends with it); None changes nothing."""
    if path is not None:
        _HOME_OVERRIDE.set(Path(path).expanduser())


def runs_dir() -> Path:
    return home() / "runs"


def memory_dir() -> Path:
    return home() / "memory"


def cache_dir() -> Path:
    return home() / "cache"


def prompts_dir() -> Path:
    """The prompt templates. ``expagent/prompts`` links to the project's ``prompts/`` in a checkout and is a real
    directory in an installed wheel, so both editable and normal installs find them."""
    return Path(__file__).parent / "prompts"
