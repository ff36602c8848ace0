"""Sandbox images: names that carry a content hash, and building them with progress.

Two images matter for the default Docker sandbox:

* a *base* image: a normal public image (``python:3.11-slim-bookworm``), or, on machines that
  cannot pull from a registry, an offline base assembled by ``sandbox/build_offline_base.sh``
  (debootstrap + ``docker import``);
* the *agent* image built from ``sandbox/Dockerfile`` on top of the base.

Tags are ``expagent-base:bookworm-<hash>`` and ``expagent-agent:<hash>`` where the hash covers
everything the image is made from (the script, the Dockerfile, the base). A changed Dockerfile
therefore gets a new tag and is rebuilt, and an unchanged one is found and reused.

The ``docker`` package is imported lazily by the callers that need a client.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Callable, Iterable

from expagent.errors import SandboxError, SandboxUnavailable

PUBLIC_BASE = "python:3.11-slim-bookworm"
DEFAULT_SUITE = "bookworm"
DEFAULT_OFFLINE_PACKAGES = "python3,python3-venv,python3-pip,git,ca-certificates"
AGENT_REPO = "expagent-agent"
BASE_REPO = "expagent-base"
SETUP_REPO = "expagent-setup"
#: label put on every image and container expagent creates (value: what it is)
LABEL = "expagent.sandbox"
BUILD_COMMAND = "expagent sandbox build --offline"

Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


def assets_dir() -> Path:
    """The ``sandbox/`` directory holding the Dockerfile and the offline-base script."""
    override = os.environ.get("EXPAGENT_SANDBOX_ASSETS")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[2] / "sandbox")
    for candidate in candidates:
        if (candidate / "Dockerfile").is_file():
            return candidate
    raise SandboxError(
        "sandbox assets (Dockerfile, build_offline_base.sh) not found; set EXPAGENT_SANDBOX_ASSETS to the sandbox/ directory"
    )


def content_hash(*parts: bytes | str) -> str:
    """A short, stable hash of ``parts`` (order matters; parts are length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:12]


def offline_suite() -> str:
    return os.environ.get("EXPAGENT_DEBIAN_SUITE", DEFAULT_SUITE)


def offline_packages() -> str:
    return os.environ.get("EXPAGENT_BASE_PACKAGES", DEFAULT_OFFLINE_PACKAGES)


def offline_base_tag() -> str:
    script = (assets_dir() / "build_offline_base.sh").read_bytes()
    return f"{BASE_REPO}:{offline_suite()}-{content_hash(script, offline_suite(), offline_packages())}"


def agent_image_tag(base: str) -> str:
    dockerfile = (assets_dir() / "Dockerfile").read_bytes()
    return f"{AGENT_REPO}:{content_hash(dockerfile, base)}"


def default_image_candidates() -> list[str]:
    """Agent image tags a default sandbox may use, in order of preference."""
    return [agent_image_tag(PUBLIC_BASE), agent_image_tag(offline_base_tag())]


#: files whose content decides what a set-up installs; a commit that changes none of them reuses the image
DEPENDENCY_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "Pipfile", "Pipfile.lock", "poetry.lock",
                    "uv.lock", "package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "Cargo.toml",
                    "Cargo.lock", "go.mod", "go.sum", "Gemfile", "Gemfile.lock", "environment.yml")
DEPENDENCY_PATTERNS = ("requirements", "constraints")  # requirements*.txt, requirements/*.txt, constraints*.txt


def dependency_blobs(repo: Path, commit: str) -> list[str]:
    """``path blob-id`` of every dependency file at ``commit`` (top level and requirements/), sorted."""
    proc = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--full-tree", commit],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"cannot list the files of {commit[:12]} in {repo}: {proc.stderr.strip()[-200:]}")
    found = []
    for line in proc.stdout.splitlines():
        meta, _, path = line.partition("\t")
        parts = path.split("/")
        name = parts[-1]
        top = len(parts) == 1
        in_req_dir = len(parts) == 2 and parts[0].startswith(DEPENDENCY_PATTERNS)
        if (top and (name in DEPENDENCY_FILES or (name.startswith(DEPENDENCY_PATTERNS) and name.endswith(".txt")))) \
                or (in_req_dir and name.endswith((".txt", ".in"))):
            found.append(f"{path} {meta.split()[-1]}")
    return sorted(found)


def setup_image_tag(parent_image_id: str, setup: Iterable[str], dependencies: Iterable[str]) -> str:
    """Tag of a set-up image: the parent image with a repository set up by ``setup``, keyed by the set-up
    commands and the dependency files' contents, not by the commit (see ``DEPENDENCY_FILES``)."""
    return f"{SETUP_REPO}:{content_hash(parent_image_id, *setup, '--dependencies--', *dependencies)}"


def image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def find_default_image(client: Any) -> str | None:
    for tag in default_image_candidates():
        if image_exists(client, tag):
            return tag
    return None


def host_ca_bundle() -> bytes:
    """The CA bundle this machine trusts, so that pip inside the image works behind a TLS proxy."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "PIP_CERT"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value).read_bytes()
    default = Path("/etc/ssl/certs/ca-certificates.crt")
    return default.read_bytes() if default.is_file() else b""


def _build_context(include_host_ca: bool) -> io.BytesIO:
    """The agent image's build context, in memory: the Dockerfile and the host CA bundle."""
    buffer = io.BytesIO()
    files = {
        "Dockerfile": (assets_dir() / "Dockerfile").read_bytes(),
        "host-ca.crt": host_ca_bundle() if include_host_ca else b"",
    }
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build_offline_base(tag: str | None = None, progress: Progress = _quiet, mirror: str | None = None) -> str:
    """Run ``build_offline_base.sh``: debootstrap a minimal Debian and ``docker import`` it."""
    tag = tag or offline_base_tag()
    script = assets_dir() / "build_offline_base.sh"
    argv = ["bash", str(script), tag] + ([mirror] if mirror else [])
    progress(f"building offline base image {tag} (debootstrap; takes a few minutes)")
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as exc:
        raise SandboxError(f"cannot run {script}: {exc.strerror}") from None
    tail: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-5:]
            progress(line)
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    if code != 0:
        last = next((line for line in reversed(tail) if line.strip()), "")
        raise SandboxError(f"offline base image build failed (exit {code}): {last}")
    return tag


def build_agent_image(
    client: Any, base: str, tag: str | None = None, progress: Progress = _quiet, include_host_ca: bool = True
) -> str:
    """Build ``sandbox/Dockerfile`` on ``base``; the build may use the network (apt, pip)."""
    import docker.errors

    tag = tag or agent_image_tag(base)
    progress(f"building agent image {tag} on {base}")
    try:
        stream = client.api.build(
            fileobj=_build_context(include_host_ca),
            custom_context=True,
            tag=tag,
            buildargs={"BASE_IMAGE": base},
            labels={LABEL: "agent"},
            network_mode="bridge",
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                detail = str(chunk.get("error", "")).strip().splitlines()
                raise SandboxError(f"agent image build failed: {detail[-1] if detail else 'unknown error'}")
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in str(text).splitlines():
                if line.strip():
                    progress(line.rstrip())
    except docker.errors.APIError as exc:
        raise SandboxError(f"agent image build failed: {exc.explanation or exc}") from None
    return tag


def build_default_image(
    client: Any, offline: bool, force: bool = False, progress: Progress = _quiet, include_host_ca: bool = True
) -> str:
    """Build (or find) the default agent image; with ``offline`` the base comes from debootstrap."""
    if offline:
        base = offline_base_tag()
        if force or not image_exists(client, base):
            build_offline_base(base, progress)
        else:
            progress(f"offline base image {base} present")
    else:
        base = PUBLIC_BASE
        if not image_exists(client, base):
            progress(f"pulling {base}")
            try:
                client.images.pull(base)
            except Exception as exc:  # docker.errors.APIError and connection errors alike
                reason = str(getattr(exc, "explanation", None) or exc).splitlines()[0][:120]
                raise SandboxUnavailable(
                    f"cannot pull {base} ({reason}); build an offline base with '{BUILD_COMMAND}'"
                ) from None
    tag = agent_image_tag(base)
    if not force and image_exists(client, tag):
        progress(f"agent image {tag} present")
        return tag
    return build_agent_image(client, base, tag, progress, include_host_ca)
