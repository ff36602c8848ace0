"""Where expagent keeps its files. Everything lives under one home directory."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The expagent home: ``$EXPAGENT_HOME`` or ``~/.expagent``."""
    env = os.environ.get("EXPAGENT_HOME")
    return Path(env).expanduser() if env else Path.home() / ".expagent"


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
