"""``expagent sandbox doctor``: what works, what does not, and what to do about it."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from expagent.sandbox import images


def _check(name: str, status: str, detail: str, fix: str = "") -> dict[str, str]:
    return {"name": name, "status": status, "detail": detail, "fix": fix}


def _docker_checks() -> tuple[list[dict[str, str]], bool]:
    """Checks of the Docker side; returns them and whether a Docker sandbox can start."""
    from expagent.sandbox.docker_client import endpoint, make_client, short_reason

    checks = []
    try:
        import docker  # noqa: F401
    except ImportError:
        return [_check("docker package", "fail", "the 'docker' Python package is missing", "pip install docker")], False
    try:
        client = make_client(timeout=3)
        version = client.version()
    except Exception as exc:
        reason = short_reason(exc)
        fix = ("start the daemon (sudo systemctl start docker, or sudo dockerd &), or point DOCKER_HOST at one "
               "(e.g. DOCKER_HOST=ssh://user@bigger-machine)")
        checks.append(_check("docker daemon", "fail", f"not reachable at {endpoint()}: {reason}", fix))
        return checks, False
    try:
        checks.append(_check(
            "docker daemon", "ok",
            f"{endpoint()} answers: Docker {version.get('Version')} ({version.get('Os')}/{version.get('Arch')})",
        ))
        usable = True
        default = images.find_default_image(client)
        if default:
            checks.append(_check("agent image", "ok", f"{default} present"))
        else:
            wanted = ", ".join(images.default_image_candidates())
            checks.append(_check("agent image", "fail", f"not built (looked for {wanted})",
                                 f"run '{images.BUILD_COMMAND}' (or 'expagent sandbox build' with registry access)"))
            usable = False
        offline = images.offline_base_tag()
        if images.image_exists(client, offline):
            checks.append(_check("offline base image", "ok", f"{offline} present"))
        else:
            checks.append(_check("offline base image", "warn", f"{offline} not built (only needed without registry access)",
                                 f"'{images.BUILD_COMMAND}' builds it"))
        from expagent.sandbox.prune import leftover_containers

        leftovers = leftover_containers(client)
        if leftovers:
            checks.append(_check("leftover containers", "warn", f"{len(leftovers)} sandbox container(s) from ended runs",
                                 "expagent sandbox prune"))
        else:
            checks.append(_check("leftover containers", "ok", "none"))
        return checks, usable
    finally:
        client.close()


def _bwrap_check() -> dict[str, str]:
    path = shutil.which("bwrap")
    if not path:
        return _check("bubblewrap", "warn", "bwrap not installed: the local sandbox runs commands without isolation",
                      "apt-get install bubblewrap")
    probe = subprocess.run(
        [path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--die-with-parent", "true"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        return _check("bubblewrap", "warn", f"bwrap cannot create a sandbox here: {probe.stderr.strip()[:140]}",
                      "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or use Docker")
    return _check("bubblewrap", "ok", f"{path} works (local sandbox without network)")


def _tool_check(tool: str, purpose: str, package: str) -> dict[str, str]:
    if shutil.which(tool):
        return _check(tool, "ok", f"available ({purpose})")
    return _check(tool, "warn", f"not installed ({purpose})", f"apt-get install {package}")


def run_checks() -> dict[str, Any]:
    checks, docker_usable = _docker_checks()
    checks.append(_bwrap_check())
    checks.append(_tool_check("git", "copies the repository into sandboxes", "git"))
    checks.append(_tool_check("debootstrap", "needed by 'expagent sandbox build --offline'", "debootstrap"))
    local_usable = shutil.which("git") is not None
    daemon_up = any(c["name"] == "docker daemon" and c["status"] == "ok" for c in checks)
    return {
        "checks": checks,
        "docker_usable": docker_usable,
        "local_usable": local_usable,
        "auto": "docker" if daemon_up else "local",
        "usable": docker_usable or local_usable,
    }
