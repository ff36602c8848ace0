"""Removing sandbox containers (and cached set-up images) that a run left behind."""

from __future__ import annotations

import os
import socket
from typing import Any

from expagent.sandbox import images


def _owner_alive(labels: dict[str, str]) -> bool:
    """Could the process that created this container still be using it? Unknown owners count as alive."""
    if labels.get("expagent.host") != socket.gethostname():
        return True  # another machine's run (shared DOCKER_HOST): only --all removes it
    try:
        pid = int(labels.get("expagent.pid", ""))
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftover_containers(client: Any, include_alive: bool = False) -> list[dict[str, Any]]:
    """Labelled sandbox containers whose creating process is gone (all of them with ``include_alive``)."""
    found = []
    for info in client.api.containers(all=True, filters={"label": f"{images.LABEL}=container"}):
        labels = info.get("Labels") or {}
        if include_alive or not _owner_alive(labels):
            name = (info.get("Names") or [info["Id"][:12]])[0].lstrip("/")
            found.append({"name": name, "id": info["Id"], "state": info.get("State"), "repo": labels.get("expagent.repo")})
    return found


def stale_images(client: Any) -> list[str]:
    """Cached set-up images, and agent / base images whose hash tag is no longer the current one."""
    current = set(images.default_image_candidates()) | {images.offline_base_tag(), images.PUBLIC_BASE}
    stale = []
    for kind in ("setup", "agent", "base"):
        for image in client.images.list(filters={"label": f"{images.LABEL}={kind}"}):
            for tag in image.tags or [image.id]:
                if kind == "setup" or tag not in current:
                    stale.append(tag)
    # set-up images first: they are children of the agent images
    return stale


def prune_sandboxes(include_alive: bool = False, include_setup_images: bool = False, dry_run: bool = False) -> dict:
    from expagent.sandbox.docker_client import connect, remove_container

    client = connect()
    try:
        containers = leftover_containers(client, include_alive)
        removed_images: list[str] = []
        if not dry_run:
            for container in containers:
                remove_container(client, container["id"])
        if include_setup_images:
            for tag in stale_images(client):
                removed_images.append(tag)
                if not dry_run:
                    client.images.remove(tag, noprune=False)
        return {"containers": [c["name"] for c in containers], "images": removed_images}
    finally:
        client.close()
