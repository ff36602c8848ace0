"""Attacks a hostile or confused agent makes from inside the sandbox, on both backends; each must be contained.

Every test runs a scripted command through the real sandbox (bubblewrap locally, a container with Docker) against
something real the test set up on the host first (a Unix socket server, a loopback TCP server, a planted
``~/.aws/credentials``), with limits the test sets (64 processes, 256 MB) so the machine is never at risk.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import make_repo, run_cli, write_script
from expagent.agent.loop import Agent, ExitStatus, Limits
from expagent.agent.prompting import build_messages
from expagent.agent.tools import ToolBox
from expagent.config import Settings, replace
from expagent.models import make_model
from expagent.sandbox import make_sandbox
from expagent.sandbox.local import bwrap_path
from expagent.trajectory import TrajectoryWriter, load_trajectory

SETTINGS = replace(Settings(), docker_memory="256m", docker_pids=64, docker_network=False)
FAKE = {  # fake credentials of the caller: none may reach an artifact
    "AWS_ACCESS_KEY_ID": "AKIAZZZZ7EXAMPLEKEY1",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIzK7MDENGzbPxRfiCYzzEXAMPLEKEY",
    "DATABASE_URL": "postgres://admin:Sup3rS3cretPw@db.internal:5432/prod",
    "MY_APIKEY": "myapikey-0f1e2d3c4b5a69788796",
    "GITHUB_TOKEN": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
}
HOME_SECRET = "homefile-aws-secret-9f8e7d6c5b4a3928"

pytestmark = pytest.mark.skipif(not bwrap_path(), reason="the local backend's containment needs bubblewrap")


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "proj", {"calc.py": "def add(a, b):\n    return a - b\n",
                                         "test_calc.py": "from calc import add\n\n\ndef test_add():\n"
                                                         "    assert add(2, 3) == 5\n"})


@pytest.fixture
def sandbox(repo, sandbox_kind):
    with make_sandbox(sandbox_kind, repo, SETTINGS, notice=lambda _m: None) as sb:
        yield sb


def _python(code: str) -> str:
    """A command running ``code`` with the sandbox's python3 (the code must not contain single quotes)."""
    assert "'" not in code
    return f"python3 -c '{code}'"


class _Server:
    """A server on the host that records whether anything connected."""

    def __init__(self, sock: socket.socket):
        self.sock, self.connections = sock, 0
        sock.listen(8)
        sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


def test_host_unix_sockets_are_unreachable(sandbox, tmp_path):
    path = tmp_path / "host.sock"
    raw = socket.socket(socket.AF_UNIX)
    raw.bind(str(path))
    server = _Server(raw)
    try:
        control = socket.socket(socket.AF_UNIX)
        control.connect(str(path))  # the server works from the host
        control.close()
        time.sleep(0.3)
        assert server.connections == 1
        targets = [str(path)] + (["/var/run/docker.sock"] if os.path.exists("/var/run/docker.sock") else [])
        for target in targets:
            result = sandbox.run(_python(f"import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"{target}\"); "
                                         "print(\"CONNECTED\")"), timeout=30)
            assert result.exit_code != 0 and "CONNECTED" not in result.output, (target, result.output)
            assert "FileNotFoundError" in result.output or "No such file" in result.output, result.output
        time.sleep(0.3)
        assert server.connections == 1
        # no socket of the host at all: /run and /var/run are not there
        listing = sandbox.run("ls /run /var/run 2>/dev/null; find / -xdev -type s 2>/dev/null | head", timeout=30)
        assert "docker.sock" not in listing.output and str(path) not in listing.output
    finally:
        server.close()


def test_loopback_server_on_the_host_is_unreachable(sandbox):
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    port = raw.getsockname()[1]
    server = _Server(raw)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        time.sleep(0.3)
        assert server.connections == 1
        result = sandbox.run(_python(f"import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=3); "
                                     "print(\"CONNECTED\")"), timeout=30)
        assert result.exit_code != 0 and "CONNECTED" not in result.output, result.output
        time.sleep(0.3)
        assert server.connections == 1
    finally:
        server.close()


def test_callers_home_is_not_visible(repo, sandbox_kind, tmp_path, monkeypatch):
    home = tmp_path / "callerhome"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {HOME_SECRET}\n")
    monkeypatch.setenv("HOME", str(home))
    with make_sandbox(sandbox_kind, repo, SETTINGS, notice=lambda _m: None) as sb:
        result = sb.run(f"cat {home}/.aws/credentials; cat ~/.aws/credentials; echo HOME=$HOME; "
                        f"ls -A {Path('/root') if os.geteuid() == 0 else home.parent}", timeout=30)
    assert HOME_SECRET not in result.output
    assert "No such file" in result.output
    assert f"HOME={home}\n" not in result.output


def test_writes_outside_the_repository_copy_do_not_reach_the_host(sandbox, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    marker = f"pwned-{uuid.uuid4().hex[:8]}"
    home_target = Path.home() / marker
    targets = [victim / "x.txt", home_target, Path("/usr") / marker, Path("/tmp") / marker]
    result = sandbox.run("; ".join(f"echo pwned > {t} 2>/dev/null" for t in targets) + "; echo pwned > in-repo.txt",
                         timeout=30)
    try:
        assert not any(t.exists() for t in targets), [str(t) for t in targets if t.exists()]
        assert sandbox.read_file("in-repo.txt") == "pwned\n"  # the repository copy itself is writable
        try:  # the file tools: refused locally, inside the container with Docker; never on the host
            sandbox.write_file(str(victim / "y.txt"), "x")
            assert sandbox.kind == "docker"
        except PermissionError:
            assert sandbox.kind == "local"
        assert not (victim / "y.txt").exists()
    finally:
        for t in targets:
            if t.exists() and t.is_file() and t.parent != Path("/usr"):
                t.unlink()
    assert result.exit_code == 0


def test_fork_bomb_is_held_by_the_process_limit(sandbox):
    code = ("import os, time\nn = 0\nfor i in range(300):\n    try:\n        pid = os.fork()\n    except OSError:\n"
            "        break\n    if pid == 0:\n        time.sleep(2)\n        os._exit(0)\n    n += 1\nprint(\"forked\", n)")
    started = time.monotonic()
    result = sandbox.run(f"python3 -c '{code}'", timeout=30)
    forked = int(result.output.split("forked")[-1].split()[0])
    assert 0 < forked < 64, result.output
    assert time.monotonic() - started < 25
    # the sandbox works again once the bomb's children are gone
    time.sleep(2.5)
    assert sandbox.run("echo alive", timeout=30).output.strip().startswith("alive")


def test_memory_hog_is_stopped_and_reported_and_the_patch_kept(repo, sandbox_kind, tmp_path):
    hog = _python("b = []\nwhile True: b.append(bytearray(16 * 2 ** 20))")
    replies = [
        {"tool_calls": [{"name": "edit", "arguments": {"path": "calc.py", "old": "a - b", "new": "a + b"}}]},
        {"tool_calls": [{"name": "bash", "arguments": {"command": hog}}]},
        {"tool_calls": [{"name": "submit"}]},
    ]
    model = make_model(Settings(model=f"scripted:{write_script(tmp_path / 's.json', replies)}"))
    toolbox = ToolBox(command_timeout=60, output_limit=2000)
    writer = TrajectoryWriter(tmp_path / "traj.json", {"run_id": "t", "protocol": "native"})
    with make_sandbox(sandbox_kind, repo, SETTINGS, notice=lambda _m: None) as sb:
        messages = build_messages("issue", workdir=sb.workdir, protocol="native", tool_schemas=toolbox.schemas())
        result = Agent(model, sb, toolbox, writer, Limits()).run(messages)
    assert result.exit_status is ExitStatus.OUT_OF_MEMORY
    assert "+    return a + b" in result.patch
    traj = load_trajectory(tmp_path / "traj.json")
    assert traj["exit_status"] == "out_of_memory" and "out of memory" in traj["steps"][1]["actions"][0]["output"]


def test_without_a_cgroup_rlimits_stop_a_memory_hog_and_say_so(repo, monkeypatch):
    import expagent.sandbox.local as local

    monkeypatch.setattr(local.CgroupSupport, "detect", classmethod(lambda cls: None))
    with local.LocalSandbox(repo, settings=SETTINGS, warn=lambda _m: None) as sb:
        assert sb.cgroup is None
        result = sb.run(_python("b = []\nwhile True: b.append(bytearray(16 * 2 ** 20))"), timeout=30)
        assert result.oom_killed and result.exit_code == -1 and "out of memory (limit 256 MB)" in result.output
        # an ordinary failure is not mistaken for one
        assert not sb.run("exit 3", timeout=30).oom_killed


@pytest.mark.parametrize("sandbox_kind", ["local", pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])],
                         indirect=True)  # the Docker case runs with the slow set (.ci/run runs both)
def test_a_setsid_escapee_dies_with_its_timed_out_command(sandbox):
    started = time.monotonic()
    result = sandbox.run("setsid bash -c 'sleep 4; echo escaped > escaped.txt' & sleep 60", timeout=1)
    assert result.timed_out and time.monotonic() - started < 4
    time.sleep(max(0.0, started + 5 - time.monotonic()))
    assert sandbox.run("test -e escaped.txt && echo ESCAPED || echo contained", timeout=30).output.strip() == "contained"


@pytest.mark.parametrize("sandbox_kind", ["local", pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])],
                         indirect=True)  # the Docker case runs with the slow set (.ci/run runs both)
def test_a_flood_of_output_is_bounded_and_says_how_much_was_dropped(sandbox):
    """200 MB printed: the caller keeps the head and the tail (8 MB), not everything, on both backends."""
    result = sandbox.run("head -c 200000000 /dev/zero | tr '\\0' x; echo; echo THE-END", timeout=120)
    assert result.exit_code == 0
    assert len(result.output) < 9 * 2 ** 20
    assert "bytes of output dropped" in result.output and result.output.rstrip().endswith("THE-END")
    assert result.output.startswith("xxxx")


def test_tmp_persists_across_commands_and_is_private(sandbox):
    assert sandbox.run("echo helper > /tmp/helper.sh && chmod +x /tmp/helper.sh", timeout=30).exit_code == 0
    assert sandbox.run("cat /tmp/helper.sh", timeout=30).output.strip() == "helper"


def test_a_secret_the_agent_writes_is_reported_and_redacted_in_patch_and_trajectory(repo, tmp_path, monkeypatch):
    from expagent.sandbox.local import LocalSandbox

    monkeypatch.setenv("MY_APIKEY", FAKE["MY_APIKEY"])
    replies = [
        {"tool_calls": [{"name": "create", "arguments": {"path": "keys.py", "content":
                         f'GH = "{FAKE["GITHUB_TOKEN"]}"\nMINE = "{FAKE["MY_APIKEY"]}"\n'}}]},
        {"tool_calls": [{"name": "bash", "arguments": {"command": "cat keys.py"}}]},
        {"tool_calls": [{"name": "submit"}]},
    ]
    model = make_model(Settings(model=f"scripted:{write_script(tmp_path / 's.json', replies)}"))
    toolbox = ToolBox(command_timeout=30, output_limit=2000)
    writer = TrajectoryWriter(tmp_path / "traj.json", {"run_id": "t", "protocol": "native"})
    with LocalSandbox(repo, warn=lambda _m: None) as sb:
        messages = build_messages("issue", workdir=sb.workdir, protocol="native", tool_schemas=toolbox.schemas())
        result = Agent(model, sb, toolbox, writer, Limits()).run(messages)
    assert result.patch_secrets == ["environment value", "github-token"]
    assert "+GH = \"[REDACTED]\"" in result.patch and "+MINE = \"[REDACTED]\"" in result.patch
    text = (tmp_path / "traj.json").read_text()
    assert FAKE["GITHUB_TOKEN"] not in text and FAKE["MY_APIKEY"] not in text
    assert json.loads(text)["patch_secrets"] == result.patch_secrets


@pytest.mark.slow  # a whole `expagent fix` with memory: 30 to 50 s on a loaded machine
def test_secrets_never_reach_an_artifact(repo, sandbox_kind, tmp_path, isolated_home, monkeypatch):
    """Fake secrets in the environment, in a file of the caller's home and written by the agent into its patch:
    none may appear in the trajectory, the patch, the output of the run or the memory."""
    home = tmp_path / "callerhome"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {HOME_SECRET}\n")
    for name, value in FAKE.items():
        monkeypatch.setenv(name, value)
    leaked_in_patch = f'TOKEN = "{FAKE["GITHUB_TOKEN"]}"\nDB = "{FAKE["DATABASE_URL"]}"\n'
    replies = [
        {"tool_calls": [{"name": "bash", "arguments": {"command": f"env; cat {home}/.aws/credentials; "
                                                                  "cat ~/.aws/credentials; echo key=$MY_APIKEY"}}]},
        {"tool_calls": [{"name": "bash", "arguments": {"command": f"echo {FAKE['AWS_ACCESS_KEY_ID']} "
                                                                  f"{FAKE['MY_APIKEY']}"}}]},
        {"tool_calls": [{"name": "edit", "arguments": {"path": "calc.py", "old": "a - b", "new": "a + b"}}]},
        {"tool_calls": [{"name": "create", "arguments": {"path": "settings.py", "content": leaked_in_patch}}]},
        {"tool_calls": [{"name": "submit"}]},
    ]
    script = write_script(tmp_path / "script.json", replies)
    proc = run_cli("fix", "add(2, 3) returns -1", "--model", f"scripted:{script}", "--sandbox", sandbox_kind,
                   cwd=repo, env={"HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert "warning: the patch held secrets" in proc.stderr
    run = next((isolated_home / "runs").iterdir())
    traj = json.loads((run / "trajectory.json").read_text())
    assert "github-token" in traj["patch_secrets"] and "+    return a + b" in traj["patch"]
    assert "[REDACTED]" in (run / "patch.diff").read_text()
    assert "key=\n" in traj["steps"][0]["actions"][0]["output"]  # the variable never entered the sandbox
    artifacts = [p for p in isolated_home.rglob("*") if p.is_file()]
    assert any("chroma" in str(p) or "memory" in str(p) for p in artifacts), "the run wrote no memory"
    secrets = [*FAKE.values(), HOME_SECRET]
    for path in artifacts:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret[:8]}... found in {path}"
    for stream in (proc.stdout, proc.stderr):
        for secret in secrets:
            assert secret not in stream


def test_without_bubblewrap_the_environment_is_still_an_allowlist_and_escapees_still_die(repo, monkeypatch):
    from expagent.sandbox.local import LocalSandbox

    for name, value in FAKE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOME_HARMLESS_SETTING", "visible-only-by-allowlist")
    with LocalSandbox(repo, isolate=False, warn=lambda _m: None) as sb:
        env = sb.run("env", timeout=30).output
        assert not any(name in env for name in [*FAKE, "SOME_HARMLESS_SETTING"]), env
        assert f"HOME={sb.root / 'home'}" in env and f"TMPDIR={sb.root / 'tmp'}" in env
        started = time.monotonic()
        result = sb.run("setsid bash -c 'sleep 3; echo escaped > escaped.txt' & sleep 60", timeout=1)
        assert result.timed_out and time.monotonic() - started < 3
        time.sleep(max(0.0, started + 4 - time.monotonic()))
        assert not (Path(sb.workdir) / "escaped.txt").exists()


def test_missing_protections_are_said_once_in_one_line(repo, monkeypatch):
    import expagent.sandbox.local as local

    monkeypatch.setattr(local, "_warned_gaps", False)
    monkeypatch.setattr(local.CgroupSupport, "detect", classmethod(lambda cls: None))
    said = []
    for _ in range(2):
        with local.LocalSandbox(repo, isolate=False, warn=said.append):
            pass
    assert len(said) == 1 and "\n" not in said[0]
    assert "no bubblewrap" in said[0] and "RLIMIT_AS" in said[0] and "sandbox doctor" in said[0]


def test_doctor_names_each_local_protection():
    proc = run_cli("sandbox", "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert {"bubblewrap", "network namespace", "rlimits", "cgroups"} <= set(checks)
    assert checks["bubblewrap"]["status"] == "ok" and "bubblewrap 0." in checks["bubblewrap"]["detail"]
    assert checks["cgroups"]["status"] in ("ok", "warn") and checks["cgroups"]["detail"]
