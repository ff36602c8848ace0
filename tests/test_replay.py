"""Replay end to end on a small real suite: scripted agent and distiller, real sandbox, grader and memory.

Two related tasks: the lesson distilled from the first is retrieved and injected into the second, and
its usefulness is updated from the second's graded outcome. Memory off injects nothing. An interrupted
replay resumes without redoing tasks or duplicating memory writes. Then a paired report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from expagent.tasks.demo import make_demo_suite

LESSON_1 = {"kind": "success", "scope": "general",
            "applies_when": "a function must reject invalid input such as an empty list or a zero divisor",
            "advice": "raise ValueError with a clear message instead of returning a placeholder value, "
                      "and add a test using pytest.raises"}
LESSON_2 = {**LESSON_1, "applies_when": "a function must reject invalid input such as an empty list"}
LESSON_3 = {"kind": "success", "scope": "repo", "applies_when": "text normalisation helpers mishandle whitespace",
            "advice": "split on whitespace and join, rather than replacing single spaces"}


def _distill_reply(lesson):
    return json.dumps({"summary": {"fault_location": "calc", "root_cause": "missing input check",
                                   "change": "added a check", "verification": "tests"}, "lessons": [lesson]})


@pytest.fixture(scope="module")
def replay_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    suite = make_demo_suite(root / "demo")
    scripts = root / "scripts"
    scripts.mkdir()
    for line in (suite / "tasks.jsonl").read_text().splitlines():
        task = json.loads(line)
        # the scripted agent applies the known fix; the gold patch is never given to a real agent
        replies = [
            {"content": "Apply the fix.", "tool_calls": [{"name": "bash", "arguments": {
                "command": f"git apply <<'PATCH'\n{task['patch']}PATCH"}}]},
            {"content": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]},
        ]
        (scripts / f"{task['instance_id']}.json").write_text(json.dumps({"replies": replies}))
    distill = root / "distill.json"
    distill.write_text(json.dumps({"replies": [_distill_reply(LESSON_1), _distill_reply(LESSON_2),
                                               _distill_reply(LESSON_3)]}))
    home = root / "home"
    env = {"EXPAGENT_HOME": str(home)}
    return {"root": root, "suite": suite, "scripts": scripts, "distill": distill, "env": env, "home": home}


def _rows(run):
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def _traj(run, instance):
    return json.loads((run / "tasks" / instance / "trajectory.json").read_text())


def test_replay_memory_on_off_resume_and_report(replay_setup):
    s = replay_setup
    run_on, run_off = s["root"] / "run-on", s["root"] / "run-off"
    hidden = s["scripts"] / "demo__calc-3.json"
    stash = s["root"] / "demo__calc-3.json"
    hidden.rename(stash)  # the third task will fail to start: an interrupted replay
    proc = run_cli("replay", str(s["suite"]), "--model", f"scripted:{s['scripts']}", "--sandbox", "local", "--distill-model",
                   f"scripted:{s['distill']}", "--memory", "on", "--out", str(run_on), env=s["env"])
    assert proc.returncode == 2 and "no script for demo__calc-3" in proc.stderr, proc.stderr
    assert [r["instance_id"] for r in _rows(run_on)] == ["demo__calc-1", "demo__calc-2"]
    stash.rename(hidden)

    # resume: only the third task runs; the distill script continues where it stopped
    distill_rest = s["root"] / "distill-rest.json"
    distill_rest.write_text(json.dumps({"replies": [_distill_reply(LESSON_3)]}))
    proc = run_cli("replay", str(s["suite"]), "--model", f"scripted:{s['scripts']}", "--sandbox", "local", "--distill-model",
                   f"scripted:{distill_rest}", "--memory", "on", "--out", str(run_on), "--resume", env=s["env"])
    assert proc.returncode == 0, proc.stderr
    rows = _rows(run_on)
    assert [r["instance_id"] for r in rows] == ["demo__calc-1", "demo__calc-2", "demo__calc-3"]
    assert all(r["resolved"] for r in rows) and all(r["exit_status"] == "submitted" for r in rows)
    preds = json.loads((run_on / "preds.json").read_text())
    assert [p["instance_id"] for p in preds] == [r["instance_id"] for r in rows]
    assert all(p["model_patch"].startswith("diff --git") for p in preds)

    from expagent.memory.store import MemoryStore

    with MemoryStore.open(home=run_on) as store:
        episodes = store.list(kind="episode")
        lessons = store.list(kind="lesson")
        assert len(episodes) == 3  # one per task: the resume wrote nothing twice
        assert all(e.outcome == "resolved" and e.outcome_source == "tests" for e in episodes)
        general = [l for l in lessons if l.scope == "general"]
        assert len(general) == 1  # the second task's near-duplicate lesson added evidence instead
        lesson = general[0]
        assert len(lesson.source_episodes) == 2
        # the lesson learned on task 1 was injected into task 2 and task 2 was resolved
        injected_2 = _traj(run_on, "demo__calc-2")["memory"]["injected"]
        assert lesson.id in injected_2
        assert lesson.injected_resolved >= 1 and lesson.injected_unresolved == 0
        assert lesson.advice in _traj(run_on, "demo__calc-2")["messages"][0]["content"]
    first = _traj(run_on, "demo__calc-1")
    assert first["memory"]["injected"] == []  # nothing earlier to learn from: no experience, no marker text
    assert "Lessons from earlier runs" not in first["messages"][0]["content"]

    proc = run_cli("replay", str(s["suite"]), "--model", f"scripted:{s['scripts']}", "--sandbox", "local", "--memory", "off",
                   "--out", str(run_off), env=s["env"])
    assert proc.returncode == 0, proc.stderr
    assert all(r["injected_ids"] == [] and r["memory_mode"] == "off" for r in _rows(run_off))
    assert not (run_off / "memory").exists()
    off_2 = _traj(run_off, "demo__calc-2")
    assert "Lessons from earlier runs" not in off_2["messages"][0]["content"]

    report = run_cli("report", str(run_on), str(run_off), "--json", "--out", str(s["root"] / "report"),
                     env=s["env"])
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert {r["name"] for r in data["runs"]} == {"run-on", "run-off"}
    assert all(r["resolved"] == 3 for r in data["runs"]) and "comparison" in data
    assert (s["root"] / "report" / "report.png").stat().st_size > 1000
    assert "<img" in (s["root"] / "report" / "report.html").read_text()


def test_resume_needs_the_run_dir_and_same_mode(replay_setup, tmp_path):
    s = replay_setup
    proc = run_cli("replay", str(s["suite"]), "--model", f"scripted:{s['scripts']}", "--sandbox", "local", "--resume", env=s["env"])
    assert proc.returncode == 2 and "--resume needs --out" in proc.stderr and "Traceback" not in proc.stderr


def test_parallel_streams_and_the_labelled_offline_demo(tmp_path):
    """Two repositories replayed as two parallel streams (--workers 2) with no model: the oracle demo."""
    suite = make_demo_suite(tmp_path / "two")
    records = [json.loads(line) for line in (suite / "tasks.jsonl").read_text().splitlines()]
    twins = [{**r, "repo": "demo/calc2", "instance_id": r["instance_id"].replace("demo__calc", "demo__twin")}
             for r in records]
    (suite / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records + twins))
    manifest = (suite / "suite.toml").read_text()
    (suite / "suite.toml").write_text(manifest.replace('[env]', '[repos."demo/calc2"]\npath = "repos/calc"\n\n[env]'))
    run = tmp_path / "run"
    proc = run_cli("replay", str(suite), "--workers", "2", "--sandbox", "local", "--out", str(run), env={"EXPAGENT_HOME": str(tmp_path / "h")})
    assert proc.returncode == 0, proc.stderr
    assert "OFFLINE DEMO" in proc.stderr
    assert json.loads((run / "run.json").read_text())["offline_demo"] is True
    rows = _rows(run)
    assert len(rows) == 6 and all(r["resolved"] for r in rows)
    for repo in ("demo/calc", "demo/calc2"):  # each stream keeps its own chronological order
        ids = [r["instance_id"] for r in rows if r["repo"] == repo]
        assert ids == sorted(ids)
    from expagent.memory.store import MemoryStore

    with MemoryStore.open(home=run) as store:
        assert len(store.list(kind="episode")) == 6
        assert {e.repo for e in store.list(kind="episode")} == {"demo/calc", "demo/calc2"}


@pytest.mark.slow
def test_console_interrupt_resume_backend_and_one_final_line(tmp_path, monkeypatch):
    """Ctrl-C during a task: it says so and how to resume; the backend is named; a notice true of the whole
    replay (no distillation model) is said once; a finished replay ends with one line: resolved x/y, the report."""
    from typer.testing import CliRunner

    import expagent.models
    from expagent.cli import _register, app
    from expagent.models.scripted import SourceModel

    suite = make_demo_suite(tmp_path / "demo")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for line in (suite / "tasks.jsonl").read_text().splitlines():
        task = json.loads(line)
        (scripts / f"{task['instance_id']}.json").write_text(json.dumps({"replies": [
            {"content": "Apply.", "tool_calls": [{"name": "bash", "arguments": {
                "command": f"git apply <<'PATCH'\n{task['patch']}PATCH"}}]},
            {"content": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}]}))
    real = expagent.models.make_model

    class CtrlC(SourceModel):
        def query(self, messages, tools=None):
            raise KeyboardInterrupt

    def make_model(settings, task=None):
        model = real(settings, task)
        if task is not None and task.instance_id == "demo__calc-3":
            model.__class__ = CtrlC  # the user presses Ctrl-C while the third task's model is thinking
        return model

    monkeypatch.setattr(expagent.models, "make_model", make_model)
    _register()
    out = tmp_path / "run"
    args = ["replay", str(suite), "--model", f"scripted:{scripts}", "--sandbox", "local", "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 130, first.output
    assert "interrupted: 2/3 tasks finished" in first.stderr
    assert f"--resume --out {out}" in first.stderr and "Traceback" not in first.stderr
    assert "local sandbox (local sandbox requested)" in first.stderr
    assert first.stderr.count("no distillation model") == 1  # two tasks remembered, one notice
    assert [r["instance_id"] for r in _rows(out)] == ["demo__calc-1", "demo__calc-2"]

    monkeypatch.setattr(expagent.models, "make_model", real)
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert [r["instance_id"] for r in _rows(out)] == ["demo__calc-1", "demo__calc-2", "demo__calc-3"]
    assert resumed.stderr.rstrip().splitlines()[-1] == \
        f"resolved 3/3 (local sandbox); report: {out / 'report' / 'report.html'}"
