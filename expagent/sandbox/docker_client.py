"""Talking to a Docker daemon: connecting (any DOCKER_HOST), limits, labels, removal.

The ``docker`` package is imported lazily, inside the functions.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from expagent.config import Settings
from expagent.errors import SandboxError, SandboxUnavailable
from expagent.sandbox import images


def endpoint() -> str:
    """The Docker endpoint in use, for messages."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def make_client(timeout: float = 60.0) -> Any:
    """A docker SDK client for ``DOCKER_HOST`` (unix, tcp, ssh: whatever the SDK accepts).

    ``ssh://`` goes through paramiko, which reads ``~/.ssh/config`` and ``known_hosts``; it was
    about twice as fast per API call as shelling out to the ``ssh`` binary when measured.
    """
    import docker

    if endpoint().startswith("ssh://"):
        try:
            import paramiko  # noqa: F401
        except ImportError:
            raise SandboxUnavailable(
                f"DOCKER_HOST={endpoint()} needs the paramiko package (pip install 'docker[ssh]')"
            ) from None
    return docker.from_env(timeout=max(1, int(round(timeout))))


def docker_available(timeout: float = 2.0) -> bool:
    """True when a Docker daemon answers a ping within ``timeout`` seconds."""
    try:
        client = make_client(timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no daemon, no socket, no permission, no docker package: all mean "not available"
        return False


_KNOWN_REASONS = (
    ("Connection refused", "connection refused"),
    ("No such file or directory", "no socket there"),
    ("FileNotFoundError", "no socket there"),
    ("Permission denied", "permission denied; add yourself to the docker group"),
    ("timed out", "timed out"),
    ("Name or service not known", "unknown host"),
)


def short_reason(exc: BaseException) -> str:
    """A few words on why the daemon did not answer (the SDK's messages are long nested reprs)."""
    text = str(exc)
    for needle, reason in _KNOWN_REASONS:
        if needle in text:
            return reason
    first = text.splitlines()[0] if text else exc.__class__.__name__
    return first[:100]


def connect(timeout: float = 60.0) -> Any:
    """A client whose daemon answered, or ``SandboxUnavailable`` naming the doctor command."""
    try:
        client = make_client(timeout)
        client.ping()
        return client
    except SandboxUnavailable:
        raise
    except ImportError:
        raise SandboxUnavailable("the 'docker' Python package is missing (pip install docker)") from None
    except Exception as exc:
        raise SandboxUnavailable(
            f"Docker daemon not reachable at {endpoint()} ({short_reason(exc)}); run 'expagent sandbox doctor'"
        ) from None


def container_limits(settings: Settings, client: Any) -> dict[str, Any]:
    """Resource limits for a sandbox container from the settings (swap disabled, CPUs clamped)."""
    limits: dict[str, Any] = {"pids_limit": int(settings.docker_pids)}
    if settings.docker_memory:
        limits["mem_limit"] = settings.docker_memory
        limits["memswap_limit"] = settings.docker_memory  # no swap: a memory hog meets the OOM killer
    if settings.docker_cpus and settings.docker_cpus > 0:
        cpus = min(float(settings.docker_cpus), float(_daemon_cpus(client)))
        limits["nano_cpus"] = int(cpus * 1e9)
    return limits


_CPU_CACHE: dict[str, int] = {}


def _daemon_cpus(client: Any) -> int:
    key = endpoint()
    if key not in _CPU_CACHE:
        try:
            _CPU_CACHE[key] = int(client.info().get("NCPU") or 1)
        except Exception:
            _CPU_CACHE[key] = 1
    return _CPU_CACHE[key]


def sandbox_labels(repo: Path) -> dict[str, str]:
    return {
        images.LABEL: "container",
        "expagent.host": socket.gethostname(),
        "expagent.pid": str(os.getpid()),
        "expagent.repo": str(repo),
        "expagent.created": str(int(time.time())),
    }


def remove_container(client: Any, name: str) -> None:
    """Remove a container (running or not); a container that is already gone is fine."""
    import docker.errors

    for attempt in range(3):
        try:
            client.api.remove_container(name, force=True, v=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if "already in progress" in str(exc):
                return
            if attempt == 2:
                raise SandboxError(f"cannot remove sandbox container {name}: {exc.explanation or exc}") from None
            time.sleep(0.5)
