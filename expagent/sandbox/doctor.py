"""``expagent sandbox doctor``: what works, what does not, and what to do about it."""

from __future__ import annotations

import os
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


def _bwrap_probe(path: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([path, "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib",
                           "/lib", "--symlink", "usr/lib64", "/lib64", "--dev", "/dev", "--proc", "/proc", *flags,
                           "--die-with-parent", "/usr/bin/true"], capture_output=True, text=True)


def local_checks() -> list[dict[str, str]]:
    """The protections of the local sandbox on this machine: which are active, which are missing."""
    from expagent.sandbox.local import CgroupSupport, Limits

    checks = []
    path = shutil.which("bwrap")
    if not path:
        checks.append(_check("bubblewrap", "warn", "bwrap not installed: local sandbox commands can read your files, "
                             "reach host sockets and the network, and are not limited in processes",
                             "apt-get install bubblewrap"))
    else:
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
        userns = _bwrap_probe(path, "--unshare-user", "--unshare-pid")
        if userns.returncode != 0:
            checks.append(_check("bubblewrap", "warn", f"{version}: cannot create a user + pid namespace here: "
                                 f"{userns.stderr.strip()[:140]}",
                                 "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
                                 "user.max_user_namespaces > 0) or use Docker"))
        else:
            checks.append(_check("bubblewrap", "ok", f"{version} at {path}: user, pid, ipc namespaces; only the "
                                 "repository copy, interpreters and system dirs visible"))
        net = _bwrap_probe(path, "--unshare-user", "--unshare-net")
        checks.append(_check("network namespace", "ok", "commands run without network (--unshare-net)")
                      if net.returncode == 0 else
                      _check("network namespace", "warn", f"cannot unshare the network: {net.stderr.strip()[:140]}",
                             "allow network namespaces or use Docker"))
    limits = Limits()
    nproc = ("processes: RLIMIT_NPROC does not bind root, only a cgroup limits them" if os.geteuid() == 0 else
             f"processes {limits.pids} (docker_pids, with bubblewrap)")
    checks.append(_check("rlimits", "ok", f"per command: address space {limits.memory // 1024 ** 2} MB per process "
                         f"(docker_memory, without a cgroup), file size {limits.file_size // 1024 ** 2} MB, CPU time; "
                         f"{nproc}"))
    support = CgroupSupport.detect()
    if support is not None:
        where = ", ".join(f"{c} at {d}" for c, d in support.dirs.items())
        checks.append(_check("cgroups", "ok", f"cgroups {support.version}, writable ({where}): memory (no swap) and "
                             "processes limited per sandbox, out-of-memory kills counted"))
    else:
        checks.append(_check("cgroups", "warn", cgroup_gap(),
                             "run expagent inside a delegated cgroup (e.g. systemd-run --user --scope -p Delegate=yes) "
                             "or use Docker"))
    return checks


def cgroup_gap() -> str:
    """Why no cgroup can be had here (v1 not writable, or v2 without delegation), as one phrase."""
    from pathlib import Path

    root = Path("/sys/fs/cgroup")
    if not (root / "cgroup.controllers").is_file():
        v1 = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        kind = f"cgroups v1 ({', '.join(v1)}) not writable by this user" if v1 else "no cgroup file system"
    else:
        kind = (f"cgroups v2 (controllers: {(root / 'cgroup.controllers').read_text().strip()}) but this process's "
                "group is not writable or does not delegate memory and pids")
    return (f"{kind}: memory is limited per process (RLIMIT_AS), not per sandbox, out-of-memory is recognised "
            "from the command's output, and processes only by RLIMIT_NPROC (which does not bind root)")


def _tool_check(tool: str, purpose: str, package: str) -> dict[str, str]:
    if shutil.which(tool):
        return _check(tool, "ok", f"available ({purpose})")
    return _check(tool, "warn", f"not installed ({purpose})", f"apt-get install {package}")


def run_checks() -> dict[str, Any]:
    checks, docker_usable = _docker_checks()
    checks += local_checks()
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
