"""Docker sandbox behaviour that needs no daemon: image naming by content hash, a daemon that is down."""

from __future__ import annotations

import json
import shutil
import time

from conftest import run_cli, write_script

from expagent.config import Settings
from expagent.errors import SandboxUnavailable
from expagent.sandbox import images

import pytest

DEAD_ENDPOINT = "unix:///nonexistent/docker.sock"


def test_image_tags_follow_the_content_hash(tmp_path, monkeypatch):
    assets = tmp_path / "sandbox"
    shutil.copytree(images.assets_dir(), assets)
    monkeypatch.setenv("EXPAGENT_SANDBOX_ASSETS", str(assets))
    agent = images.agent_image_tag(images.PUBLIC_BASE)
    base = images.offline_base_tag()
    assert agent.startswith("expagent-agent:") and base.startswith("expagent-base:bookworm-")
    assert images.agent_image_tag(images.PUBLIC_BASE) == agent  # stable
    assert images.agent_image_tag(base) != agent  # the base is part of the hash

    (assets / "Dockerfile").write_text((assets / "Dockerfile").read_text() + "RUN true\n")
    assert images.agent_image_tag(images.PUBLIC_BASE) != agent  # a changed Dockerfile gets a new tag
    (assets / "build_offline_base.sh").write_text((assets / "build_offline_base.sh").read_text() + "\n# x\n")
    assert images.offline_base_tag() != base
    monkeypatch.setenv("EXPAGENT_BASE_PACKAGES", "python3,git")
    assert images.offline_base_tag() != base


def test_daemon_down_is_a_clear_error(buggy_repo, monkeypatch, tmp_path):
    from expagent.sandbox.docker import DockerSandbox, docker_available

    monkeypatch.setenv("DOCKER_HOST", DEAD_ENDPOINT)
    started = time.monotonic()
    assert docker_available() is False
    assert time.monotonic() - started < 3
    sandbox = DockerSandbox(buggy_repo, Settings())
    with pytest.raises(SandboxUnavailable, match=r"not reachable at unix:///nonexistent.*expagent sandbox doctor"):
        sandbox.start()
    sandbox.close()

    proc = run_cli("fix", "x", "--model", f"scripted:{write_script(tmp_path / 's.json', [{'tool_calls': [{'name': 'submit'}]}])}", "--sandbox", "docker", cwd=buggy_repo,
                   env={"DOCKER_HOST": DEAD_ENDPOINT})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # a runtime failure (docs/agent.md)
    assert "Docker daemon not reachable" in proc.stderr and "expagent sandbox doctor" in proc.stderr

    build = run_cli("sandbox", "build", env={"DOCKER_HOST": DEAD_ENDPOINT})
    assert build.returncode == 1 and build.stderr.count("\n") == 1 and "sandbox doctor" in build.stderr


def test_doctor_reports_a_down_daemon_and_what_to_do():
    proc = run_cli("sandbox", "doctor", "--json", env={"DOCKER_HOST": DEAD_ENDPOINT})
    report = json.loads(proc.stdout)
    daemon = next(c for c in report["checks"] if c["name"] == "docker daemon")
    assert daemon["status"] == "fail" and DEAD_ENDPOINT in daemon["detail"]
    assert "DOCKER_HOST" in daemon["fix"] and "dockerd" in daemon["fix"]
    assert report["auto"] == "local" and report["docker_usable"] is False
    # the local backend still works, so the doctor exits 0
    assert proc.returncode == (0 if report["local_usable"] else 1)


def test_not_a_git_repo_is_refused(tmp_path):
    from expagent.errors import SandboxError
    from expagent.sandbox.docker import DockerSandbox

    with pytest.raises(SandboxError, match="not a git repository"):
        DockerSandbox(tmp_path, Settings())
