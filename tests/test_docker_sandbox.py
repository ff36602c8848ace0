"""The Docker sandbox against a real daemon: isolation, limits, timeouts, cleanup on every exit path.

Without a daemon these tests skip on a developer machine; with CI set a missing daemon (or a
missing sandbox image) is a failure, because CI must run them for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import git, interruptible, make_repo, run_cli, write_script

from expagent.config import Settings
from expagent.errors import SandboxError, SandboxUnavailable

pytestmark = pytest.mark.docker


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set: {reason}; the Docker tests must run in CI (see sandbox/ci_setup.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def client():
    from expagent.sandbox import images
    from expagent.sandbox.docker import connect, docker_available

    if not docker_available():
        _unavailable("no Docker daemon answers")
    client = connect()
    if not images.find_default_image(client):
        _unavailable("the sandbox image is not built (expagent sandbox build --offline)")
    yield client
    client.close()


@pytest.fixture
def settings() -> Settings:
    # small limits so that the containment tests are quick and safe on a shared machine
    return Settings(docker_memory="256m", docker_pids=64, docker_cpus=1.0, command_timeout=60)


@pytest.fixture
def repo(tmp_path) -> Path:
    path = make_repo(tmp_path / "proj", {
        "calc.py": "def add(a, b):\n    return a - b\n",
        "run.sh": "#!/bin/sh\necho hi\n",
        "pkg/__init__.py": "",
    })
    os.chmod(path / "run.sh", 0o755)
    git(path, "add", "run.sh")
    git(path, "commit", "-qm", "executable script")
    return path


def _sandbox(repo, settings, **kwargs):
    from expagent.sandbox.docker import DockerSandbox

    return DockerSandbox(repo, settings, **kwargs)


def _exists(client, name: str) -> bool:
    return bool(client.api.containers(all=True, filters={"name": f"^/{name}$"}))


def test_copy_holds_committed_state_and_diff_applies(client, repo, settings, tmp_path):
    (repo / "calc.py").write_text("# uncommitted local work\n")
    (repo / "untracked.txt").write_text("mine\n")
    head = git(repo, "rev-parse", "HEAD").strip()
    with _sandbox(repo, settings) as sb:
        assert sb.base_commit == head
        assert sb.run("git rev-parse HEAD").output.strip() == head
        assert sb.read_file("calc.py") == "def add(a, b):\n    return a - b\n"
        assert sb.run("test -e untracked.txt").exit_code == 1
        with pytest.raises(FileNotFoundError):
            sb.read_file("nope.py")
        sb.run("ln -s calc.py link.py && mkdir -p d && ln -s ../calc.py d/up.py")
        assert sb.read_file("link.py") == sb.read_file("d/up.py") == sb.read_file("calc.py")
        with pytest.raises(IsADirectoryError):
            sb.read_file("pkg")
        sb.run("rm link.py d/up.py && rmdir d")

        sb.write_file("calc.py", "def add(a, b):\n    return a + b\n")
        sb.write_file("run.sh", "#!/bin/sh\necho bye\n")
        sb.write_file("pkg/sub/new.py", "X = 'é'\n")
        assert sb.read_file(f"{sb.workdir}/pkg/sub/new.py") == "X = 'é'\n"
        assert sb.run("./run.sh").output.strip() == "bye"  # still executable after write_file
        patch = sb.diff()
    # the user's tree is untouched; the patch applies to a clean clone and carries no mode change
    assert (repo / "calc.py").read_text() == "# uncommitted local work\n"
    assert "old mode" not in patch and "new file mode 100644" in patch
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (clone / "p.diff").write_text(patch)
    subprocess.run(["git", "-C", str(clone), "apply", "p.diff"], check=True)
    assert (clone / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert (clone / "pkg/sub/new.py").read_text() == "X = 'é'\n"


def test_older_base_commit_is_copied(client, repo, settings):
    first = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    with _sandbox(repo, settings, base_commit=first) as sb:
        assert sb.run("git rev-parse HEAD").output.strip() == first
        assert sb.run("test -x run.sh").exit_code == 1  # the later commit's mode change is absent
        assert sb.diff() == ""


NET_PROBE = (
    "python -c \"import socket; s=socket.create_connection(('pypi.org', 443), timeout=8); print('connected')\""
)


def test_network_is_off_by_default_and_on_when_asked(client, repo, settings):
    with _sandbox(repo, settings) as sb:
        interfaces = sb.run("ls /sys/class/net").output.split()
        assert interfaces == ["lo"]
        probe = sb.run(NET_PROBE, timeout=20)
        assert probe.exit_code != 0 and "connected" not in probe.output
    # control: the same probe succeeds with the network allowed, so the check above is meaningful
    with _sandbox(repo, settings, network=True) as sb:
        probe = sb.run(NET_PROBE, timeout=20)
        assert probe.exit_code == 0 and "connected" in probe.output, probe.output


def test_timeout_kills_command_and_children(client, repo, settings):
    with _sandbox(repo, settings) as sb:
        result = sb.run("sleep 300 & sleep 301; echo never", timeout=2)
        assert result.timed_out and result.exit_code == -1
        assert "never" not in result.output and result.duration < 10
        procs = sb.run("ps -eo args").output
        assert "sleep 300" not in procs and "sleep 301" not in procs


def test_timeout_kills_a_command_that_left_its_process_group(client, repo, settings):
    with _sandbox(repo, settings) as sb:
        sb.write_file("calc.py", "changed = True\n")
        started = time.monotonic()
        # setsid puts sleep in a new session that still holds the output pipe open
        result = sb.run("setsid sleep 300; echo never", timeout=2)
        assert result.timed_out and time.monotonic() - started < 20
        assert "sleep 300" not in sb.run("ps -eo args").output
        # the sandbox is usable afterwards and nothing written so far is lost
        assert sb.run("echo alive").output.strip() == "alive"
        assert "+changed = True" in sb.diff()


def test_memory_hog_is_killed_and_reported(client, repo, settings):
    with _sandbox(repo, settings) as sb:
        sb.write_file("calc.py", "kept = 1\n")
        result = sb.run("python -c \"x = bytearray(1024 * 1024 * 1024); print('allocated')\"", timeout=60)
        assert result.oom_killed and result.exit_code == -1 and not result.timed_out
        assert "allocated" not in result.output and "out of memory" in result.output
        # an ordinary failure right after is not reported as OOM
        again = sb.run("exit 3")
        assert again.exit_code == 3 and not again.oom_killed
        assert "+kept = 1" in sb.diff()


@pytest.mark.slow  # a few seconds; the default run stays under 5 min (.ci/run runs the slow set)
def test_pids_limit_contains_fork_bombs(client, repo, settings):
    counter = textwrap.dedent("""\
        import os, signal, time
        children = []
        while len(children) < 1000:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        print('forked', len(children))
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    """)
    with _sandbox(repo, settings) as sb:
        sb.write_file("/tmp/forks.py", counter)
        result = sb.run("python /tmp/forks.py", timeout=20)
        forked = int(result.output.split("forked")[1].split()[0])
        assert 0 < forked < settings.docker_pids
        # a real shell fork bomb: bounded by the pids limit and killed at the timeout
        bomb = sb.run("bomb() { bomb | bomb & }; bomb; sleep 100", timeout=4)
        assert bomb.timed_out
        assert sb.run("echo alive").output.strip() == "alive"
        assert int(sb.run("ps -e --no-headers | wc -l").output.strip()) < 10


def test_background_fork_bomb_does_not_wedge_the_sandbox(client, repo):
    settings = Settings(docker_memory="256m", docker_pids=32, docker_cpus=0.5)
    with _sandbox(repo, settings) as sb:
        sb.write_file("kept.txt", "kept\n")
        started = sb.run("(bomb() { bomb | bomb & }; bomb) >/dev/null 2>&1 & echo started", timeout=5)
        assert started.output.strip() == "started"
        time.sleep(2)  # the bomb fills the pids limit
        after = sb.run("echo alive", timeout=10)
        assert after.exit_code == 0 and "alive" in after.output
        assert "+kept" in sb.diff()


def test_no_container_left_after_success_failure_and_timeout(client, repo, settings):
    with _sandbox(repo, settings) as sb:
        name = sb.name
        assert _exists(client, name)
        sb.run("true")
    assert not _exists(client, name)

    with pytest.raises(ZeroDivisionError):
        with _sandbox(repo, settings) as sb:
            name = sb.name
            1 / 0
    assert not _exists(client, name)

    with _sandbox(repo, settings) as sb:
        name = sb.name
        assert sb.run("sleep 100", timeout=1).timed_out
    assert not _exists(client, name)
    sb.close()  # closing twice is fine


INTERRUPTED_RUN = """
import sys
from expagent.config import Settings
from expagent.sandbox.docker import DockerSandbox
with DockerSandbox(sys.argv[1], Settings()) as sb:
    print(sb.name, flush=True)
    sb.run("sleep 120")
"""


def test_no_container_left_after_ctrl_c(client, repo, tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED_RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(repo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=interruptible)
    name = proc.stdout.readline().strip()
    assert name.startswith("expagent-"), proc.stderr.read()
    time.sleep(0.5)
    assert _exists(client, name)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert not _exists(client, name)


def test_prune_removes_containers_of_killed_runs(client, repo, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(INTERRUPTED_RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(repo)], stdout=subprocess.PIPE, text=True)
    name = proc.stdout.readline().strip()
    proc.kill()  # SIGKILL: no cleanup can run in the process itself
    proc.wait()
    assert _exists(client, name)
    with _sandbox(repo, Settings()) as alive:  # a sandbox of a live process must survive the prune
        listed = run_cli("sandbox", "prune", "--dry-run", "--json")
        assert name in listed.stdout and alive.name not in listed.stdout
        assert _exists(client, name)
        pruned = run_cli("sandbox", "prune")
        assert pruned.returncode == 0, pruned.stderr
        assert not _exists(client, name) and _exists(client, alive.name)


def test_missing_image_names_the_build_command(client, repo, settings, tmp_path):
    sb = _sandbox(repo, settings, image="expagent-no-such-image:0")
    with pytest.raises(SandboxUnavailable, match="expagent sandbox build --offline"):
        sb.start()
    proc = run_cli("fix", "x", "--model", f"scripted:{write_script(tmp_path / 's.json', [{'tool_calls': [{'name': 'submit'}]}])}", "--sandbox", "docker", cwd=repo,
                   env={"EXPAGENT_DOCKER_IMAGE": "expagent-no-such-image:0"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # SandboxUnavailable: a runtime failure
    assert "expagent sandbox build" in proc.stderr


def test_setup_image_is_built_once_and_its_artifacts_stay_out_of_the_patch(client, repo, settings):
    from expagent.sandbox import images

    setup = ["mkdir -p build && echo compiled > build/artifact.txt", "pip --version > setup-ran.txt"]
    tags = set()
    try:
        for _ in range(2):
            with _sandbox(repo, settings, setup=setup) as sb:
                tags.add(sb.image)
                assert sb.image.startswith(images.SETUP_REPO + ":")
                assert sb.read_file("build/artifact.txt") == "compiled\n"
                assert sb.run("ls /sys/class/net").output.split() == ["lo"]  # network only at build time
                sb.write_file("calc.py", "fixed = 1\n")
                patch = sb.diff()
                assert "calc.py" in patch and "artifact" not in patch and "setup-ran" not in patch
        assert len(tags) == 1  # the second sandbox reused the cached image
        with pytest.raises(SandboxError, match="setup command failed"):
            with _sandbox(repo, settings, setup=["exit 7"]):
                pass
    finally:
        for tag in tags:
            client.images.remove(tag, force=True)


def test_fix_run_killed_by_memory_limit_ends_out_of_memory_and_keeps_patch(client, tmp_path, isolated_home):
    from conftest import BUGGY_FILES

    repo = make_repo(tmp_path / "proj", BUGGY_FILES)
    replies = [
        {"tool_calls": [{"name": "edit", "arguments": {"path": "calc.py", "old": "return a - b", "new": "return a + b"}}]},
        {"tool_calls": [{"name": "bash", "arguments": {
            "command": "python -c \"x = bytearray(1024 * 1024 * 1024)\""}}]},
        {"tool_calls": [{"name": "submit"}]},
    ]
    script = write_script(tmp_path / "script.json", replies)
    proc = run_cli("fix", "add is wrong", "--model", f"scripted:{script}", "--sandbox", "docker", "--no-verify",
                   cwd=repo, env={"EXPAGENT_DOCKER_MEMORY": "256m", "EXPAGENT_MEMORY": "off"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # a run that did not fix: 1, not a crash
    assert "exit status: out_of_memory" in proc.stderr

    (run,) = [p for p in (isolated_home / "runs").iterdir()]
    traj = json.loads((run / "trajectory.json").read_text())
    assert traj["exit_status"] == "out_of_memory"
    assert "+    return a + b" in traj["patch"]
    assert len(traj["steps"]) == 2  # the run stopped at the killed command, before submit


def test_interrupted_fix_run_leaves_no_container(client, tmp_path, isolated_home):
    from conftest import BUGGY_FILES

    repo = make_repo(tmp_path / "proj", BUGGY_FILES)
    script = write_script(tmp_path / "script.json", [
        {"tool_calls": [{"name": "bash", "arguments": {"command": "echo working; sleep 120"}}]},
        {"tool_calls": [{"name": "submit"}]},
    ])
    proc = subprocess.Popen(
        [sys.executable, "-m", "expagent", "fix", "x", "--model", f"scripted:{script}", "--sandbox", "docker",
         "--no-verify"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "EXPAGENT_MEMORY": "off"}, preexec_fn=interruptible,
    )
    label = {"label": f"expagent.pid={proc.pid}"}
    deadline = time.monotonic() + 60
    while not client.api.containers(all=True, filters=label):  # wait until the run's sandbox exists
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    # let the command reach its sleep, then press Ctrl-C
    while not any("sleep 120" in " ".join(p) for c in client.api.containers(filters=label)
                  for p in client.api.top(c["Id"])["Processes"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err
    assert client.api.containers(all=True, filters=label) == []


def test_doctor_and_build_with_a_live_daemon(client):
    from expagent.sandbox import images

    report = json.loads(run_cli("sandbox", "doctor", "--json").stdout)
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status["docker daemon"] == "ok" and report["auto"] == "docker"
    assert status["agent image"] == "ok" and report["docker_usable"]
    # the image exists, so build is a cache hit: it names the same hash-tagged image and builds nothing
    present = images.find_default_image(client)
    offline = present == images.agent_image_tag(images.offline_base_tag())
    started = time.monotonic()
    built = run_cli("sandbox", "build", "--quiet", *(["--offline"] if offline else []))
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == present and time.monotonic() - started < 30


def test_prune_images_lists_outdated_agent_images_only(client):
    from expagent.sandbox import images

    present = images.find_default_image(client)
    client.images.get(present).tag(images.AGENT_REPO, "outdated0000")
    try:
        listed = run_cli("sandbox", "prune", "--images", "--dry-run", "--json")
        assert listed.returncode == 0, listed.stderr
        stale = json.loads(listed.stdout)["images"]
        assert f"{images.AGENT_REPO}:outdated0000" in stale and present not in stale
        assert images.offline_base_tag() not in stale
    finally:
        client.images.remove(f"{images.AGENT_REPO}:outdated0000")


@pytest.fixture
def tcp_endpoint():
    """DOCKER_HOST=tcp://127.0.0.1:PORT forwarded to the local unix socket: a non-default endpoint."""
    import socket
    import socketserver
    import threading

    sock_path = "/var/run/docker.sock"
    if os.environ.get("DOCKER_HOST", "unix://").split("://")[0] != "unix" or not os.path.exists(sock_path):
        pytest.skip("needs the local unix socket to forward")

    class Forward(socketserver.BaseRequestHandler):
        def handle(self):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(sock_path)

            def pump(src, dst):
                try:
                    while data := src.recv(65536):
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (src, dst):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

            other = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            other.start()
            pump(self.request, upstream)
            other.join()
            upstream.close()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_any_docker_endpoint_works(client, repo, settings, tcp_endpoint, monkeypatch):
    from expagent.sandbox.docker import docker_available

    monkeypatch.setenv("DOCKER_HOST", tcp_endpoint)
    assert docker_available()
    with _sandbox(repo, settings) as sb:
        name = sb.name
        assert sb.run("git rev-parse HEAD").output.strip() == sb.base_commit
        sb.write_file("calc.py", "remote = True\n")
        assert sb.run("sleep 30", timeout=1).timed_out
        assert "+remote = True" in sb.diff()
    assert not _exists(client, name)


@pytest.fixture
def ssh_endpoint(tmp_path, monkeypatch):
    """A private sshd on a free local port that logs root in with a throw-away key: ssh://root@127.0.0.1:PORT."""
    import shutil
    import socket

    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if not sshd or os.geteuid() != 0 or not os.path.exists("/var/run/docker.sock"):
        pytest.skip("needs openssh-server, root, and the daemon on this machine")
    keys = tmp_path / "ssh"
    keys.mkdir()
    for name in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "user.pub").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = keys / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
                      f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
                      f"PasswordAuthentication no\nStrictModes no\nPidFile {keys / 'sshd.pid'}\n")
    os.makedirs("/run/sshd", exist_ok=True)
    server = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        # paramiko (the SDK's ssh transport) reads ~/.ssh/config and ~/.ssh/known_hosts
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text(f"Host 127.0.0.1\n  IdentityFile {keys / 'user'}\n")
        host_key = (keys / "host.pub").read_text().split()
        (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        monkeypatch.setenv("HOME", str(home))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not start"
                time.sleep(0.1)
        yield f"ssh://root@127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow  # a few seconds; the default run stays under 5 min (.ci/run runs the slow set)
def test_sandbox_over_ssh_endpoint(client, repo, settings, ssh_endpoint, monkeypatch):
    from expagent.sandbox.docker import docker_available

    monkeypatch.setenv("DOCKER_HOST", ssh_endpoint)
    assert docker_available(timeout=10)
    with _sandbox(repo, settings) as sb:
        name = sb.name
        assert _exists(client, name)
        sb.write_file("calc.py", "over_ssh = True\n")
        assert sb.run("python calc.py && echo ran").output.strip() == "ran"
        assert "+over_ssh = True" in sb.diff()
    assert not _exists(client, name)
