"""One run lifecycle (expagent.session) for fix and replay, on each sandbox backend.

The same end-to-end test runs ``fix`` on a real repository and ``replay`` on a real suite through the local and
the Docker backend, and checks the same trajectory fields, verdict and memory writes. The context (repo map,
tools) comes from the sandbox's checkout: an untracked or ignored file in the user's tree never reaches a prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import fixing_replies, write_script
from expagent.tasks.demo import make_demo_suite

PRIVATE = "leaked_private_helper_xyz"
IGNORED = "ignored_secret_fn_abc"
ISSUE = f"add(2, 3) returns -1 instead of 5 (found while writing {PRIVATE} and {IGNORED})"


def cli(*args: str):
    from expagent.cli import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


def _plant_private_files(repo: Path) -> None:
    """Files the user has but never committed: the agent cannot see them, so no prompt may mention them."""
    (repo / "private_wip.py").write_text(f"def {PRIVATE}(x):\n    return x * 42\n")
    (repo / ".git" / "info" / "exclude").write_text("notes_secret.py\n")
    (repo / "notes_secret.py").write_text(f"def {IGNORED}():\n    return 'hunter2'\n")


def _check_run(traj: dict, kind: str, method: str) -> None:
    """What every run records, whichever entry point and backend made it."""
    assert traj["format"] == "expagent-trajectory" and traj["version"] == 1
    assert traj["exit_status"] == "submitted" and traj["sandbox"] == kind
    assert traj["patch"].startswith("diff --git") and traj["totals"]["steps"] == len(traj["steps"])
    assert traj["outcome"]["verdict"] == "resolved" and traj["outcome"]["method"] == method
    assert traj["memory"]["mode"] == "on" and set(traj["memory"]) == {"mode", "injected", "recalled"}
    assert traj["repo"]["base_commit"] and traj["repo"]["name"]


def _episodes(home: Path) -> list:
    from expagent.memory.store import MemoryStore

    with MemoryStore.open(home=home) as store:
        return store.list(kind="episode"), store.list(kind="lesson")


@pytest.mark.slow
def test_fix_and_replay_share_one_lifecycle_on_each_backend(buggy_repo, tmp_path, isolated_home, sandbox_kind):
    from expagent.codeintel.agent_tools import run_repo_map

    _plant_private_files(buggy_repo)
    # the control: read from the user's tree, the map would show the private function
    assert PRIVATE in run_repo_map(buggy_repo, ISSUE, 1024)

    replies = [{"content": "Map first.", "tool_calls": [{"name": "repo_map", "arguments": {"focus": PRIVATE}}]},
               *fixing_replies()]
    script = write_script(tmp_path / "fix.json", replies)
    fixed = cli("fix", ISSUE, "--repo", str(buggy_repo), "--model", f"scripted:{script}", "--sandbox", sandbox_kind)
    assert fixed.exit_code == 0, fixed.output
    run = next(p for p in (isolated_home / "runs").iterdir())
    traj = json.loads((run / "trajectory.json").read_text())
    _check_run(traj, sandbox_kind, "tests")
    assert traj["outcome"]["fixed"] == ["test_calc.py::test_add"] and traj["outcome"]["broken"] == []
    assert [a["tool"] for s in traj["steps"] for a in s["actions"]] == ["repo_map", "view", "bash", "edit", "bash",
                                                                       "submit"]
    # the context was built from the sandbox's checkout: the map in the prompt and the map tool show calc.py and
    # nothing the user never committed
    prompt = traj["messages"][0]["content"] + traj["messages"][1]["content"]
    assert "calc.py" in prompt and "<repository_map>" in prompt
    tool_output = traj["steps"][0]["actions"][0]["output"]
    assert "calc.py" in tool_output
    for text in (prompt, tool_output, (run / "patch.diff").read_text()):
        assert PRIVATE not in text.replace(ISSUE, "") and IGNORED not in text.replace(ISSUE, "")
    episodes, _ = _episodes(isolated_home)
    assert len(episodes) == 1 and episodes[0].outcome == "resolved" and episodes[0].outcome_source == "tests"
    assert episodes[0].trajectory_path == str(run / "trajectory.json")

    # replay: the same lifecycle, graded by the task's own tests, on the same backend for agent and grader
    suite = make_demo_suite(tmp_path / "demo")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for line in (suite / "tasks.jsonl").read_text().splitlines():
        task = json.loads(line)
        write_script(scripts / f"{task['instance_id']}.json", [
            {"content": "Apply.", "tool_calls": [{"name": "bash", "arguments": {
                "command": f"git apply <<'PATCH'\n{task['patch']}PATCH"}}]},
            {"content": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}])
    lesson = {"kind": "success", "scope": "general", "applies_when": "a function must reject invalid input",
              "advice": "raise ValueError with a clear message instead of returning a placeholder value"}
    distilled = json.dumps({"summary": {"fault_location": "calc", "root_cause": "no input check",
                                        "change": "a check", "verification": "tests"}, "lessons": [lesson]})
    write_script(tmp_path / "distill.json", [distilled, distilled])
    out = tmp_path / "replay"
    replayed = cli("replay", str(suite), "--model", f"scripted:{scripts}", "--distill-model",
                   f"scripted:{tmp_path / 'distill.json'}", "--sandbox", sandbox_kind, "--out", str(out),
                   "--instance", "demo__calc-1", "--instance", "demo__calc-2", "--json")
    assert replayed.exit_code == 0, replayed.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["instance_id"] for r in rows] == ["demo__calc-1", "demo__calc-2"] and all(r["resolved"] for r in rows)
    trajs = [json.loads((out / r["trajectory"]).read_text()) for r in rows]
    for traj in trajs:
        _check_run(traj, sandbox_kind, "grader")
        assert all(s == "PASSED" for s in traj["outcome"]["fail_to_pass"].values())
    grade = json.loads((out / "tasks" / "demo__calc-1" / "grade" / "grade.json").read_text())
    assert grade["sandbox"] == sandbox_kind and grade["resolved"] is True
    episodes, lessons = _episodes(out)
    assert len(episodes) == 2 and all(e.outcome == "resolved" and e.outcome_source == "tests" for e in episodes)
    # the lesson from the first task reached the second task's prompt
    assert lessons and lessons[0].id in trajs[1]["memory"]["injected"] and not trajs[0]["memory"]["injected"]
    assert lesson["advice"] in trajs[1]["messages"][0]["content"]
    assert f"{sandbox_kind} sandbox" in replayed.stderr
    last = replayed.stderr.rstrip().splitlines()[-1]
    assert last.startswith("resolved 2/2") and str(out / "report" / "report.html") in last
    assert json.loads(replayed.stdout)["summary"]["resolved"] == 2


# -- the pieces, fast ----------------------------------------------------------------------------------------------
def test_context_and_tools_read_the_sandbox_checkout_not_the_users_tree(buggy_repo, tmp_path, sandbox_kind):
    """The view the context is built from holds the committed state plus the agent's edits, nothing else."""
    from expagent.config import Settings
    from expagent.experience.context import prepare_context
    from expagent.sandbox.config import resolve_sandbox
    from expagent.sandbox.view import CheckoutView

    _plant_private_files(buggy_repo)
    settings = Settings(memory="off", sandbox=sandbox_kind)
    with resolve_sandbox(sandbox_kind, settings).open(buggy_repo) as sb, CheckoutView(sb) as view:
        context = prepare_context(ISSUE, view, settings, repo_name="t/calc")
        assert "calc.py" in context.repo_map and PRIVATE not in context.repo_map and IGNORED not in context.repo_map
        assert sorted(p.name for p in view.path().iterdir() if p.name != ".git") == ["calc.py", "test_calc.py"]
        # the agent's edits (and new files) are what the tools see next
        sb.write_file("calc.py", "def add(a, b):\n    return a + b\n\n\ndef agent_made_this():\n    pass\n")
        tools = {t(sb).name: t(sb) for t in context.tools}
        shown = tools["repo_map"].run(sb, {"focus": "agent_made_this"}).output
        assert "agent_made_this" in shown and PRIVATE not in shown
        assert "return a + b" in (view.path() / "calc.py").read_text()
        assert not (view.path() / "private_wip.py").exists()


def test_sandbox_resolution_is_one_way(monkeypatch, tmp_path, buggy_repo):
    from expagent.config import Settings
    from expagent.errors import SandboxUnavailable
    from expagent.sandbox.config import DockerSandboxConfig, LocalSandboxConfig, resolve_sandbox
    from expagent.tasks.docker_envs import DockerEnv
    from expagent.tasks.envs import Env
    from expagent.tasks.suite import EnvRecipe

    assert isinstance(resolve_sandbox("local"), LocalSandboxConfig)
    assert isinstance(resolve_sandbox("docker"), DockerSandboxConfig)
    with pytest.raises(SandboxUnavailable, match="unknown sandbox backend 'vm'"):
        resolve_sandbox("vm")
    # auto without a daemon: the local backend, saying why, once
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    notices = []
    chosen = resolve_sandbox("auto", Settings(), notices.append)
    assert chosen.kind == "local" and chosen.auto and "no Docker daemon answered" in chosen.why
    assert len(notices) == 1 and "using the local sandbox" in notices[0]
    # an environment of the other backend is refused, never silently dropped
    recipe = EnvRecipe(python="3.11")
    docker_env = DockerEnv("expagent-env:x", "x", recipe, "3.11.2", 0.0, True)
    with pytest.raises(SandboxUnavailable, match="cannot run DockerEnv"):
        LocalSandboxConfig().open(buggy_repo, None, docker_env)
    with pytest.raises(SandboxUnavailable, match="cannot run Env"):
        DockerSandboxConfig(settings=Settings()).open(buggy_repo, None, Env(tmp_path, "k", recipe, "3.11", 0.0, True))
    # a local environment goes in front of every command, read-only
    env_dir = tmp_path / "env"
    (env_dir / "venv" / "bin").mkdir(parents=True)
    (env_dir / "venv" / "bin" / "hello-from-env").write_text("#!/bin/sh\necho env-tool-ran\n")
    (env_dir / "venv" / "bin" / "hello-from-env").chmod(0o755)
    with LocalSandboxConfig().open(buggy_repo, None, Env(env_dir, "k", recipe, "3.11", 0.0, True)) as sb:
        assert sb.run("hello-from-env").output.strip() == "env-tool-ran"
        assert sb.run("echo $PYTHONPATH").output.startswith(f"{sb.workdir}/src:{sb.workdir}")


@pytest.mark.docker
def test_auto_prefers_docker_when_the_daemon_and_image_are_there():
    from conftest import docker_daemon_available
    from expagent.config import Settings
    from expagent.sandbox.config import resolve_sandbox

    if not docker_daemon_available():
        pytest.skip("no Docker daemon on this machine")
    notices = []
    chosen = resolve_sandbox("auto", Settings(), notices.append)
    assert chosen.kind == "docker" and chosen.auto and chosen.why == "auto: the first available of docker, local"
    assert notices == []


def test_verdict_and_trajectory_views_are_typed_round_trips(tmp_path):
    from expagent.session import TrajectoryView, Verdict
    from expagent.trajectory import TrajectoryWriter

    verdict = Verdict("resolved", "tests", "1 test(s) pass only with the patch", {"fixed": ["t::a"], "broken": []})
    assert Verdict.from_dict(verdict.to_dict()) == verdict and verdict.resolved
    assert Verdict.from_dict(None) is None
    writer = TrajectoryWriter(tmp_path / "t.json", {
        "run_id": "r1", "issue": {"text": "bug", "source": "argument"},
        "repo": {"path": "/r", "base_commit": "abc", "name": "o/r"}, "sandbox": "docker", "protocol": "native",
        "model": {"name": "scripted:x"}})
    writer.add_step({"index": 0, "actions": [{"tool": "bash"}, {"tool": "submit"}]})
    writer.update(outcome=verdict.to_dict(), totals={"steps": 1, "prompt_tokens": 5, "completion_tokens": 2},
                  exit_status="submitted")
    writer.save()
    view = TrajectoryView.load(tmp_path / "t.json")
    assert (view.run_id, view.sandbox, view.repo_name, view.base_commit) == ("r1", "docker", "o/r", "abc")
    assert view.outcome == verdict and view.tokens == 7 and view.actions == ("bash", "submit") and view.cost is None


def test_model_names_are_read_in_one_place(tmp_path):
    from expagent.config import Settings
    from expagent.errors import ModelError
    from expagent.experience.remember import make_distiller
    from expagent.models import make_model
    from expagent.models.factory import is_offline

    assert all(is_offline(n) for n in ("oracle", "scripted:x", "replay:t", "litellm+scripted:x"))
    assert not is_offline("openai/gpt-4o") and not is_offline("ollama/oracle")
    assert make_distiller(Settings(model="oracle")) is None  # canned replies never distill
    with pytest.raises(ModelError, match="only runs suite tasks"):
        make_model(Settings(model="oracle"))
    folder = tmp_path / "scripts"
    folder.mkdir()
    write_script(folder / "t-1.json", [{"content": "hi", "tool_calls": [{"name": "submit"}]}])

    class Task:
        instance_id, patch = "t-1", ""

    assert make_model(Settings(model=f"scripted:{folder}"), Task()).name == f"scripted:{folder / 't-1.json'}"
    Task.instance_id = "t-2"
    with pytest.raises(ModelError, match="no script for t-2"):
        make_model(Settings(model=f"scripted:{folder}"), Task())
