"""Sandboxes: where the agent's commands run. See ``base.Sandbox`` for the interface.

Backends are chosen one way, by ``config.resolve_sandbox``: ``local`` (a private clone, bubblewrap when
available), ``docker`` (a container per task), or ``auto`` (Docker when a daemon answers and the image is
built, else local with a one-line notice). The config then opens sandboxes (``config.open``) and gives task
environments (``config.task_env``); ``view.CheckoutView`` is what the agent sees, as a directory on this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from expagent.sandbox.base import CommandResult, Sandbox
from expagent.sandbox.config import (
    BACKENDS,
    DockerSandboxConfig,
    LocalSandboxConfig,
    SandboxConfig,
    TaskEnv,
    resolve_sandbox,
    task_sandbox,
)

__all__ = ["BACKENDS", "CommandResult", "DockerSandboxConfig", "LocalSandboxConfig", "Sandbox", "SandboxConfig",
           "TaskEnv", "make_sandbox", "resolve_kind", "resolve_sandbox", "task_sandbox"]


def resolve_kind(kind: str, notice: Callable[[str], None] | None = None, settings=None) -> str:
    """The concrete backend name ``kind`` stands for (``auto`` resolved)."""
    return resolve_sandbox(kind, settings, notice).kind


def make_sandbox(
    kind: str,
    repo_path: str | Path,
    settings=None,
    *,
    base_commit: str | None = None,
    setup: list[str] | None = None,
    notice: Callable[[str], None] | None = None,
    task_env: TaskEnv | None = None,
) -> Sandbox:
    """Create (not start) a sandbox of backend ``kind`` holding ``repo_path`` at ``base_commit`` (default HEAD),
    with ``task_env`` (as its backend builds it: ``config.task_env``) in front of every command."""
    return resolve_sandbox(kind, settings, notice).open(repo_path, base_commit, task_env, setup=setup)
