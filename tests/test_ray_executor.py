"""Replay on a real Ray cluster (two worker nodes on this machine) against the local executor.

The shipped suite swe_tasks/inflection is replayed with the offline demo (no model: the oracle) and with a scripted
model (one task left unresolved): the results rows and the memory records are the same as the local executor's,
timings and run ids aside. A node killed mid-run has its task retried on the other node, with nothing duplicated;
a replay interrupted on the local executor resumes on Ray; a missing Ray install is one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import interruptible, run_cli
from servers import ROOT, RayCluster, chroma_server

SUITE = str(ROOT / "swe_tasks" / "inflection")
IDS = [f"inflection__inflection-{i}" for i in range(1, 5)]


def _need_ray() -> None:
    # not imported here: Ray reads its authentication mode when first imported, which the cluster sets
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'expagent[ray]')")


# -- fast: no cluster ---------------------------------------------------------
def test_missing_ray_is_one_line(tmp_path):
    # an interpreter where `import ray` fails, as without the extra installed
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['expagent'] + sys.argv[1:]\n"
            "from expagent.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, "replay", SUITE, "--executor", "ray", "--memory", "off",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "EXPAGENT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert proc.stderr == "error: the ray executor needs Ray, which is not installed: pip install 'expagent[ray]'\n"
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_split_epochs_keeps_ties_together():
    from types import SimpleNamespace as T

    from expagent.executors.schedule import split_epochs

    tasks = [T(id=i, created_at=c) for i, c in enumerate(["3", "1", "2", "2", "4", "5"])]
    epochs = split_epochs(tasks, 3)
    assert [[t.id for t in e] for e in epochs] == [[1, 2, 3], [0], [4, 5]]  # the two "2"s never split
    assert [t.id for e in split_epochs(tasks, 10) for t in e] == [1, 2, 3, 0, 4, 5]
    assert len(split_epochs(tasks, 1)) == 1


def test_bad_executor_options_are_one_line(tmp_path):
    env = {"EXPAGENT_HOME": str(tmp_path / "home")}
    proc = run_cli("replay", SUITE, "--executor", "spark", "--out", str(tmp_path / "a"), env=env)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown executor 'spark'"), proc.stderr
    proc = run_cli("replay", SUITE, "--address", "127.0.0.1:1", "--out", str(tmp_path / "b"), env=env)
    assert proc.returncode == 2 and "needs --executor ray" in proc.stderr
    proc = run_cli("replay", SUITE, "--epochs", "0", "--out", str(tmp_path / "c"), env=env)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --epochs must be at least 1")
    _need_ray()
    proc = run_cli("replay", SUITE, "--executor", "ray", "--out", str(tmp_path / "d"), env=env)
    assert proc.returncode == 2 and "needs one memory for the whole cluster: --chroma-url" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "d").exists()


# -- slow: a two-node cluster ------------------------------------------------
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    _need_ray()
    root = tmp_path_factory.mktemp("ray")
    driver_home = root / "driver-home"
    homes = [root / "node-a", root / "node-b"]
    for home in homes:  # separate machines, except that they share the built repositories and environments
        home.mkdir()
        (driver_home / "cache").mkdir(parents=True, exist_ok=True)
        (home / "cache").symlink_to(driver_home / "cache")
    scripts = root / "scripts"
    scripts.mkdir()
    for line in Path(SUITE, "tasks.jsonl").read_text().splitlines():
        task = json.loads(line)
        fix = {"content": "Apply the fix.", "tool_calls": [{"name": "bash", "arguments": {
            "command": f"git apply <<'PATCH'\n{task['patch']}PATCH"}}]}
        look = {"content": "Look first.", "tool_calls": [{"name": "bash", "arguments": {"command": "git status"}}]}
        submit = {"content": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}
        # the second task is left unresolved: memory then holds a failure, and usefulness counts differ
        replies = [look, submit] if task["instance_id"] == IDS[1] else [look, fix, submit]
        (scripts / f"{task['instance_id']}.json").write_text(json.dumps({"replies": replies}))
    cluster = RayCluster(root / "cluster", homes, {"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    cluster.root.mkdir()
    try:
        cluster.start()
        yield {"root": root, "home": driver_home, "homes": homes, "scripts": scripts, "cluster": cluster,
               "refs": {}}
    finally:
        cluster.stop()


def _replay(s, out: Path, *args: str, ray: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    extra = ["--executor", "ray", "--address", s["cluster"].address] if ray else []
    proc = run_cli("replay", SUITE, "--out", str(out), *extra, *args, timeout=900,
                   env={**s["cluster"].env, "EXPAGENT_HOME": str(s["home"])})
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("wall_time"), row.pop("started_at")
    return rows


def _memory(run: Path, chroma_url: str | None = None, reader: Path | None = None) -> list[dict]:
    """Every record with its usage counts; what differs between two runs by nature (times of day, run ids,
    where the run directory is) left out."""
    from expagent.memory.store import MemoryStore

    with MemoryStore.open(home=reader or run, chroma_url=chroma_url) as store:
        out = []
        for record in store.list():
            data = json.loads(json.dumps(record.to_dict(), default=str))
            for key in ("started_at", "finished_at"):
                data.pop(key, None)
            (data.get("provenance") or {}).pop("run_id", None)
            if data.get("trajectory_path"):
                data["trajectory_path"] = str(Path(data["trajectory_path"]).relative_to(run))
            data["usage"] = vars(store.usage(record.id))
            out.append(data)
    return sorted(out, key=lambda d: d["id"])


def _reference(s, name: str, *args: str) -> tuple[list, list]:
    """The local executor's run (embedded memory), made once per module."""
    if name not in s["refs"]:
        run = s["root"] / f"local-{name}" / "run"
        _replay(s, run, *args)
        s["refs"][name] = (_rows(run), _memory(run))
    return s["refs"][name]


@pytest.fixture
def s(setup):
    """The cluster, with the nodes' records of earlier tests' attempts cleared (every run is named "run", so
    that episode ids, which derive from the run's name, compare equal)."""
    import shutil

    for home in setup["homes"]:
        shutil.rmtree(home / "remote-runs", ignore_errors=True)
    return setup


def _attempts(s) -> list[list[str]]:
    """Per node, the tasks it started (in order)."""
    found = []
    for home in s["homes"]:
        log = home / "remote-runs" / "run" / "attempts.jsonl"
        found.append([json.loads(x)["instance_id"] for x in log.read_text().splitlines()] if log.exists() else [])
    return found


@pytest.mark.slow
def test_offline_demo_on_ray_equals_local(s, tmp_path):
    rows, memory = _reference(s, "demo")
    assert [r["instance_id"] for r in rows] == IDS and all(r["resolved"] for r in rows)
    with chroma_server(tmp_path / "chroma") as url:
        run = tmp_path / "ray" / "run"
        proc = _replay(s, run, "--chroma-url", url, ray=True)
        assert "Traceback" not in proc.stderr
        assert _rows(run) == rows
        assert _memory(run, url, reader=tmp_path / "reader") == memory
    attempts = _attempts(s)
    assert sorted(sum(attempts, [])) == IDS  # every task ran once, on the cluster's worker nodes
    assert all((run / "tasks" / i / "trajectory.json").is_file() for i in IDS)  # directories shipped back
    assert any(r["injected_ids"] for r in rows)  # memory did flow between tasks through the server


@pytest.mark.slow
def test_scripted_epochs_on_ray_equal_local(s, tmp_path):
    args = ("--model", f"scripted:{s['scripts']}", "--epochs", "2")
    rows, memory = _reference(s, "scripted-epochs", *args)
    assert [r["resolved"] for r in rows] == [True, False, True, True]
    injected = {r["instance_id"]: r["injected_ids"] for r in rows}
    assert injected[IDS[0]] == injected[IDS[1]] == []  # the first epoch sees nothing of itself
    epoch_1 = {m["id"] for m in memory if m["instance_id"] in IDS[:2]}
    assert all(set(injected[i]) <= epoch_1 for i in IDS[2:])  # the second: only the first's
    with chroma_server(tmp_path / "chroma") as url:
        run = tmp_path / "ray" / "run"
        _replay(s, run, *args, "--chroma-url", url, ray=True)
        assert _rows(run) == rows
        assert _memory(run, url, reader=tmp_path / "reader") == memory


@pytest.mark.slow
def test_resume_on_ray_after_local(s, tmp_path):
    rows, memory = _reference(s, "scripted", "--model", f"scripted:{s['scripts']}")
    hidden = s["scripts"] / f"{IDS[2]}.json"
    stash = tmp_path / hidden.name
    run = tmp_path / "mixed" / "run"
    with chroma_server(tmp_path / "chroma") as url:
        hidden.rename(stash)  # the third task cannot start: the local replay stops there
        try:
            proc = _replay(s, run, "--model", f"scripted:{s['scripts']}", "--chroma-url", url, check=False)
        finally:
            stash.rename(hidden)
        assert proc.returncode == 2 and f"no script for {IDS[2]}" in proc.stderr
        assert [r["instance_id"] for r in _rows(run)] == IDS[:2]
        proc = _replay(s, run, "--model", f"scripted:{s['scripts']}", "--chroma-url", "http://127.0.0.1:1",
                       "--resume", ray=True, check=False)
        assert proc.returncode == 2 and "resume it with the same --chroma-url" in proc.stderr
        _replay(s, run, "--model", f"scripted:{s['scripts']}", "--chroma-url", url, "--resume", ray=True)
        assert _rows(run) == rows
        assert _memory(run, url, reader=tmp_path / "reader") == memory
    assert sorted(sum(_attempts(s), [])).count(IDS[0]) == 0  # finished tasks were not redone


@pytest.mark.slow
def test_interrupt_cancels_remote_tasks(s, tmp_path):
    with chroma_server(tmp_path / "chroma") as url:
        run = tmp_path / "interrupted" / "run"
        proc = _start_ray_replay(s, run, url)
        _wait_for(lambda: sum(_attempts(s), []), proc)
        time.sleep(1)  # mid-task
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "interrupted: " in err and "--resume" in err, err[-2000:]
        assert "Traceback" not in err
        done = _rows(run) if (run / "results.jsonl").exists() else []
        time.sleep(10)  # a task that went on running would write its memory meanwhile
        from expagent.memory.store import MemoryStore

        with MemoryStore.open(home=tmp_path / "reader", chroma_url=url) as store:
            assert len(store.list(kind="episode")) == len(done) < len(IDS)


@pytest.mark.slow
def test_node_removed_mid_run_retries_without_duplicates(s, tmp_path):
    rows, memory = _reference(s, "demo")
    with chroma_server(tmp_path / "chroma") as url:
        run = tmp_path / "faulty" / "run"
        proc = _start_ray_replay(s, run, url)
        # the node that starts the second task dies a moment later, mid-task
        _wait_for(lambda: any(IDS[1] in a for a in _attempts(s)), proc)
        victim = next(i for i, a in enumerate(_attempts(s)) if IDS[1] in a)
        time.sleep(1.5)
        s["cluster"].remove(victim)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        survivor = _attempts(s)[1 - victim]
        assert IDS[1] in survivor  # retried on the other node
        assert _rows(run) == rows  # one row per task
        assert _memory(run, url, reader=tmp_path / "reader") == memory  # no memory written twice
    from conftest import docker_daemon_available

    if docker_daemon_available():
        # the killed node's worker could not remove the container it was running (a machine that dies takes its
        # containers with it; this one lives on): found by its dead owner, as `expagent sandbox prune` does, and
        # removed (only this test's: their repository lies under its directory)
        from expagent.sandbox.docker_client import connect, remove_container
        from expagent.sandbox.prune import leftover_containers

        client = connect()
        try:
            ours = [c for c in leftover_containers(client) if (c["repo"] or "").startswith(str(s["root"]))]
            for container in ours:
                remove_container(client, container["id"])
        finally:
            client.close()
        assert len(ours) <= 1


def _start_ray_replay(s, run: Path, chroma_url: str) -> subprocess.Popen:
    """The offline demo on the cluster, in the background."""
    return subprocess.Popen([sys.executable, "-m", "expagent", "replay", SUITE, "--out", str(run), "--executor", "ray",
                             "--address", s["cluster"].address, "--chroma-url", chroma_url],
                            env={**os.environ, **s["cluster"].env, "EXPAGENT_HOME": str(s["home"])},
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, preexec_fn=interruptible)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError("the replay ended early: " + (proc.stderr.read() if proc.stderr else "")[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the replay")
        time.sleep(0.2)
