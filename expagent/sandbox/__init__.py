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


def _docker_image_present(settings) -> bool:
    """Whether the image a docker sandbox would use is already built (auto never starts a build)."""
    from expagent.sandbox import images
    from expagent.sandbox.docker_client import make_client

    candidates = [settings.docker_image] if settings is not None and settings.docker_image else \
        images.default_image_candidates()
    try:
        client = make_client(10)
        try:
            return any(images.image_exists(client, tag) for tag in candidates)
        finally:
            client.close()
    except Exception:  # the daemon went away between the ping and now: same as no image
        return False


def resolve_kind(kind: str, notice: Callable[[str], None] | None = None, settings=None) -> str:
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
            if _docker_image_present(settings):
                return "docker"
            notice("notice: Docker answers but the sandbox image is not built ('expagent sandbox build'); "
                   "using the local sandbox")
            return "local"
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
    concrete = resolve_kind(kind, notice, settings)
    if concrete == "docker":
        from expagent.sandbox.docker import DockerSandbox

        return DockerSandbox(repo_path=repo_path, settings=settings, base_commit=base_commit, image=image, setup=setup)
    from expagent.sandbox.local import LocalSandbox

    return LocalSandbox(repo_path, base_commit=base_commit, setup=setup, warn=notice, ro_paths=ro_paths,
                        command_prefix=command_prefix, settings=settings)
