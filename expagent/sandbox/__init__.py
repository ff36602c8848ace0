"""Sandboxes: where the agent's commands run. See ``base.Sandbox`` for the interface.

``make_sandbox`` picks a backend by name: ``local`` (a private clone, bubblewrap when
available), ``docker`` (a container per task), or ``auto`` (Docker when a daemon answers,
else local with a one-line notice).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from expagent.errors import SandboxUnavailable
from expagent.sandbox.base import CommandResult, Sandbox

__all__ = ["CommandResult", "Sandbox", "make_sandbox", "resolve_kind"]


def resolve_kind(kind: str, notice: Callable[[str], None] | None = None) -> str:
    """Turn ``auto`` into a concrete backend name; check that an explicit ``docker`` can work."""
    notice = notice or (lambda msg: print(msg, file=sys.stderr))
    if kind == "local":
        return "local"
    try:
        from expagent.sandbox.docker import docker_available
    except ImportError:  # the backend module is optional at import time
        docker_available = None
    if kind == "docker":
        if docker_available is None:
            raise SandboxUnavailable("the Docker backend is not available in this installation")
        return "docker"
    if kind == "auto":
        if docker_available is not None and docker_available():
            return "docker"
        notice("notice: no Docker daemon answered; using the local sandbox (see 'expagent sandbox doctor')")
        return "local"
    raise SandboxUnavailable(f"unknown sandbox backend {kind!r} (choose docker, local or auto)")


def make_sandbox(
    kind: str,
    repo_path: str | Path,
    settings=None,
    *,
    base_commit: str | None = None,
    image: str | None = None,
    setup: list[str] | None = None,
    notice: Callable[[str], None] | None = None,
    ro_paths: list[str] | None = None,
    command_prefix: str = "",
) -> Sandbox:
    """Create (not start) a sandbox of backend ``kind`` holding ``repo_path`` at ``base_commit`` (default HEAD)."""
    from expagent.config import Settings

    settings = settings or Settings()
    concrete = resolve_kind(kind, notice)
    if concrete == "docker":
        from expagent.sandbox.docker import DockerSandbox

        return DockerSandbox(repo_path=repo_path, settings=settings, base_commit=base_commit, image=image, setup=setup)
    from expagent.sandbox.local import LocalSandbox

    return LocalSandbox(repo_path, base_commit=base_commit, setup=setup, warn=notice, ro_paths=ro_paths,
                        command_prefix=command_prefix)
