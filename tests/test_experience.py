"""The experience loop's parts: abstention, stripping injected memory, distillation, evidence, consolidation,
undo, prune, verdicts. Real Chroma store, scripted models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_script
from expagent.agent.prompting import build_messages
from expagent.agent.tools import ToolBox
from expagent.config import Settings
from expagent.experience import prepare_context
from expagent.experience.distill import distill, distill_prompt, parse_distillation, task_specific
from expagent.experience.maintain import consolidate, prune, undo_merge
from expagent.experience.verify import decide, split_patch
from expagent.memory.records import Episode, Lesson
from expagent.memory.store import MemoryStore
from expagent.models import make_model


@pytest.fixture
def store(isolated_home):
    with MemoryStore.open(home=isolated_home) as opened:
        yield opened


def _episode(issue, instance, repo="acme/calc", files=("calc/arith.py",)):
    return Episode(repo=repo, issue=issue, instance_id=instance, files=list(files), symbols=["div"],
                   patch="diff --git a/calc/arith.py b/calc/arith.py\n", outcome="resolved", outcome_source="tests",
                   created_at="2024-01-01T00:00:00Z")


def test_abstention_leaves_the_prompt_byte_identical(store, buggy_repo):
    store.add_episode(_episode("The HTML renderer drops unicode characters from table headers", "x-1",
                               repo="acme/web", files=("web/render.py",)), "test")
    settings = Settings(memory="on", repo_map=False)
    context = prepare_context("add(2, 3) returns -1 instead of 5 in calc", buggy_repo, settings, store=store,
                              repo_name="acme/calc", build_map=False)
    assert context.hits == [] and not context.experience
    schemas = ToolBox().schemas()
    with_memory = build_messages("issue", workdir="/w", protocol="text", tool_schemas=schemas,
                                 experience=context.experience)
    without = build_messages("issue", workdir="/w", protocol="text", tool_schemas=schemas)
    assert with_memory == without


def test_relevant_experience_is_injected_with_provenance(store, buggy_repo):
    episode = _episode("div(1, 0) raises ZeroDivisionError instead of ValueError", "calc-1")
    store.add_episode(episode, "test")
    lesson = Lesson(applies_when="a division helper gets a zero divisor", advice="raise ValueError('division by zero')",
                    scope="acme/calc", source_episodes=[episode.id], created_at="2024-01-01T00:00:00Z")
    store.add_lesson(lesson, "test")
    settings = Settings(memory="on", repo_map=False)
    context = prepare_context("div(4, 0) crashes with ZeroDivisionError; expected ValueError", buggy_repo,
                              settings, store=store, repo_name="acme/calc", build_map=False)
    assert set(context.experience.ids) == {episode.id, lesson.id}
    messages = build_messages("issue", workdir="/w", protocol="native", tool_schemas=[],
                              experience=context.experience)
    assert f"[{lesson.id}, success lesson v1, scope acme/calc, from 1 verified run]" in messages[0]["content"]
    assert "judge it against this issue" in messages[0]["content"]
    assert f'<repair id="{episode.id}"' in messages[1]["content"]
    # leakage guards: the task itself and anything from its future are never shown
    settings_semantic = Settings(memory="semantic", repo_map=False)
    only_lessons = prepare_context("div(4, 0) crashes with ZeroDivisionError; expected ValueError", buggy_repo,
                                   settings_semantic, store=store, repo_name="acme/calc", build_map=False)
    assert only_lessons.experience.ids == [lesson.id]
    past = prepare_context("div(4, 0) crashes with ZeroDivisionError; expected ValueError", buggy_repo, settings,
                           store=store, repo_name="acme/calc", before="2023-12-31T00:00:00Z", build_map=False)
    assert past.hits == []


def test_injected_memory_is_stripped_before_distillation():
    secret_lesson = "ALWAYS-CHECK-THE-FROBNICATOR"
    trajectory = {
        "issue": {"text": "div by zero"}, "repo": {"base_commit": "abc"}, "patch": "diff --git a/x b/x\n",
        "messages": [{"role": "system", "content": f"Lessons: {secret_lesson}"},
                     {"role": "user", "content": f"<past_repairs>{secret_lesson}</past_repairs>"}],
        "steps": [{"actions": [
            {"tool": "recall", "arguments": {"query": "zero"}, "output": f"From memory: {secret_lesson}"},
            {"tool": "bash", "arguments": {"command": "pytest"}, "output": "1 passed"}]}],
    }
    prompt = distill_prompt(trajectory, {"verdict": "resolved", "reason": "tests"}, ["x"])
    assert secret_lesson not in prompt
    assert "[memory recall omitted]" in prompt and "1 passed" in prompt


def test_distillation_retries_once_then_stores_without_lessons(tmp_path):
    trajectory = {"issue": {"text": "bug"}, "repo": {"base_commit": "abc"}, "patch": "", "steps": []}
    verdict = {"verdict": "resolved", "method": "tests"}
    good = json.dumps({"summary": {"fault_location": "f"}, "lessons": [
        {"kind": "success", "scope": "general", "applies_when": "w", "advice": "a"}]})
    model = make_model(Settings(model=f"scripted:{write_script(tmp_path / 'a.json', ['not json', good])}"))
    result = distill(trajectory, verdict, [], [], model=model, instance_id=None, want_lessons=True)
    assert result.summary.fault_location == "f" and result.lessons[0]["advice"] == "a"
    bad_script = write_script(tmp_path / "b.json", ["nope", json.dumps({"x": 1})])
    model = make_model(Settings(model=f"scripted:{bad_script}"))
    notes = []
    result = distill(trajectory, verdict, [], [], model=model, instance_id=None, want_lessons=True,
                     notice=notes.append)
    assert result.lessons == [] and "malformed" in result.note and any("without lessons" in n for n in notes)


def test_task_specific_lessons_are_dropped():
    assert task_specific("see django__django-1234", instance_id="django__django-1234", base_commit="", files=[],
                         scope="repo")
    assert task_specific("as in #4521", instance_id=None, base_commit="", files=[], scope="repo")
    assert task_specific("edit src/x.py", instance_id=None, base_commit="", files=["src/x.py"], scope="general")
    assert task_specific("edit src/x.py", instance_id=None, base_commit="", files=["src/x.py"], scope="repo") is None
    reply = json.dumps({"summary": {}, "lessons": [
        {"kind": "failure", "scope": "general", "applies_when": "deadbeefcafe1234 broke", "advice": "x"},
        {"kind": "failure", "scope": "general", "applies_when": "tests hang", "advice": "use a timeout"}]})
    _summary, lessons, rejected = parse_distillation(reply, instance_id=None, base_commit="", files=[],
                                                     verdict="unresolved")
    assert [l["advice"] for l in lessons] == ["use a timeout"] and len(rejected) == 1


def _lesson(advice, when, created="2024-01-01T00:00:00Z", episodes=()):
    return Lesson(applies_when=when, advice=advice, scope="general", source_episodes=list(episodes),
                  created_at=created)


def test_consolidation_history_and_undo(store, tmp_path):
    e1, e2 = _episode("a", "i-1"), _episode("b", "i-2")
    store.add_episode(e1, "t")
    store.add_episode(e2, "t")
    a = _lesson("run the failing test before editing code", "a test fails after a change", episodes=[e1.id])
    b = _lesson("run the failing test before you edit any code", "a test fails after a change",
                created="2024-01-02T00:00:00Z", episodes=[e2.id])
    other = _lesson("pin the random seed", "results differ between runs of the same test")
    for lesson in (a, b, other):
        store.add_lesson(lesson, "t")
    planned = consolidate(store, None, dry_run=True)
    assert [sorted(p["members"]) for p in planned] == [sorted([a.id, b.id])]
    assert all(l.status == "active" for l in store.list(kind="lesson"))  # a dry run changes nothing

    merged_reply = json.dumps({"applies_when": "a test fails after a change",
                               "advice": "run the failing test first, before editing any code"})
    model = make_model(Settings(model=f"scripted:{write_script(tmp_path / 'm.json', [merged_reply])}"))
    [entry] = consolidate(store, model)
    merged = store.get(entry["merged_into"])
    assert merged.status == "active" and merged.version == 2
    assert sorted(merged.provenance["merged_from"]) == sorted([a.id, b.id])
    assert sorted(merged.source_episodes) == sorted([e1.id, e2.id])
    for old in (a.id, b.id):
        kept = store.get(old)
        assert kept.status == "retired" and kept.retired_reason == f"merged into {merged.id}"
    assert store.get(other.id).status == "active" and len(store.list(kind="episode")) == 2
    actions = [getattr(h, "action", None) or h["action"] for h in store.history(a.id)]
    assert actions[0] == "add" and "retire" in actions

    restored = undo_merge(store, a.id)
    assert sorted(restored) == sorted([a.id, b.id])
    assert store.get(a.id).status == "active" and store.get(merged.id).status == "retired"


def test_interrupted_consolidation_is_invisible_then_rolled_forward(store, tmp_path, monkeypatch):
    a = _lesson("check the return type", "a function returns the wrong type")
    b = _lesson("check the return type first", "a function returns the wrong type", created="2024-01-02T00:00:00Z")
    store.add_lesson(a, "t")
    store.add_lesson(b, "t")
    reply = json.dumps({"applies_when": "a function returns the wrong type", "advice": "check the return type"})
    model = make_model(Settings(model=f"scripted:{write_script(tmp_path / 'm.json', [reply])}"))
    real_apply = store._apply

    def crash(items, changes_set):
        real_apply(items[:1], changes_set)  # Chroma got part of the merge, then the writer died
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        consolidate(store, model)
    monkeypatch.undo()
    # a reader sees the memory as it was before the merge: both members active, no merged lesson yet
    assert sorted((l.id, l.status) for l in store.list(kind="lesson")) == sorted([(a.id, "active"), (b.id, "active")])
    assert store.audit.has_pending()
    with MemoryStore.open(home=store.memory_dir.parent) as reopened:  # the next writer rolls the merge forward
        assert not reopened.audit.has_pending()
        active = [l for l in reopened.list(kind="lesson") if l.status == "active"]
        assert len(active) == 1 and sorted(active[0].provenance["merged_from"]) == sorted([a.id, b.id])
        assert {reopened.get(a.id).status, reopened.get(b.id).status} == {"retired"}
        assert consolidate(reopened, None) == []  # nothing left to merge
        chroma = reopened.chroma_collection().get(ids=[a.id, b.id, active[0].id], include=["metadatas"])
        assert sorted(m["status"] for m in chroma["metadatas"]) == ["active", "retired", "retired"]


def test_consolidate_dry_run_writes_nothing(store, isolated_home):
    from conftest import run_cli

    store.add_lesson(_lesson("pin the random seed in tests", "a test fails only sometimes"), "t")
    store.add_lesson(_lesson("pin the random seed in the tests", "a test fails only sometimes",
                             created="2024-01-02T00:00:00Z"), "t")
    before = (store.audit.entry_count(), store.audit.write_token(), store.chroma_sqlite_count())
    dry = run_cli("memory", "consolidate", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert len(json.loads(dry.stdout)["clusters"]) == 1
    assert (store.audit.entry_count(), store.audit.write_token(), store.chroma_sqlite_count()) == before
    assert not store.audit.has_pending()


def test_prune_dry_run_then_retire(store):
    bad = _lesson("always rewrite the whole module", "any bug")
    good = _lesson("read the traceback's last frame first", "an exception is raised")
    store.add_lesson(bad, "t")
    store.add_lesson(good, "t")
    for _ in range(4):
        store.record_usage([bad.id], resolved=False)
        store.record_usage([good.id], resolved=True)
    preview = prune(store, dry_run=True)
    assert [p["id"] for p in preview] == [bad.id] and store.get(bad.id).status == "active"
    prune(store)
    assert store.get(bad.id).status == "retired" and store.get(good.id).status == "active"
    assert store.get(bad.id).retired_reason.startswith("pruned")


def test_verdicts_from_two_test_runs():
    def run(code, results):
        return {"exit_code": code, "results": results}

    assert decide(run(1, {"t::a": "FAILED", "t::b": "PASSED"}), run(0, {"t::a": "PASSED", "t::b": "PASSED"}))[0] == "resolved"
    assert decide(run(0, {"t::a": "PASSED"}), run(1, {"t::a": "FAILED"}))[0] == "unresolved"
    assert decide(run(0, {"t::a": "PASSED"}), run(0, {"t::a": "PASSED"}))[0] == "unknown"
    # a reproduction test the agent added counts: missing before, passing after
    assert decide(run(0, {"t::a": "PASSED"}), run(0, {"t::a": "PASSED", "t::new": "PASSED"}))[0] == "resolved"
    assert decide(run(2, {}), run(0, {}))[0] == "resolved"
    tests, source, files = split_patch(
        "diff --git a/src/m.py b/src/m.py\n+x\ndiff --git a/tests/test_m.py b/tests/test_m.py\n+y\n")
    assert files == ["tests/test_m.py"] and "src/m.py" in source and "tests/test_m.py" in tests


def test_consolidate_history_restore_through_the_cli(isolated_home, tmp_path):
    from conftest import run_cli

    with MemoryStore.open(home=isolated_home) as store:
        a = _lesson("pin the random seed in tests", "a test fails only sometimes")
        b = _lesson("pin the random seed in the tests", "a test fails only sometimes", created="2024-01-02T00:00:00Z")
        store.add_lesson(a, "t")
        store.add_lesson(b, "t")
    dry = run_cli("memory", "consolidate", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert sorted(json.loads(dry.stdout)["clusters"][0]["members"]) == sorted([a.id, b.id])
    reply = json.dumps({"applies_when": "a test fails only sometimes", "advice": "pin the random seed in tests"})
    script = write_script(tmp_path / "m.json", [reply])
    merged = run_cli("memory", "consolidate", "--model", f"scripted:{script}", "--json")
    assert merged.returncode == 0, merged.stderr
    new_id = json.loads(merged.stdout)["clusters"][0]["merged_into"]
    history = run_cli("memory", "history", a.id, "--json")
    assert history.returncode == 0 and f"merged into {new_id}" in history.stdout
    restored = run_cli("memory", "restore", a.id, "--json")
    assert restored.returncode == 0, restored.stderr
    assert sorted(json.loads(restored.stdout)["restored"]) == sorted([a.id, b.id])
    with MemoryStore.open(home=isolated_home) as store:
        assert store.get(new_id).status == "retired" and store.get(a.id).status == "active"
    missing = run_cli("memory", "history", "ls-nope")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_unverified_run_is_stored_as_unknown_and_gets_lessons_only_if_configured(store, tmp_path):
    from types import SimpleNamespace

    from expagent.experience.context import RunContext
    from expagent.experience.remember import remember_run

    lesson_reply = json.dumps({"summary": {"fault_location": "calc.add"}, "lessons": [
        {"kind": "success", "scope": "general", "applies_when": "an arithmetic helper returns wrong values",
         "advice": "check the operator against the docstring"}]})
    trajectory = {"issue": {"text": "add is wrong"}, "repo": {"base_commit": "abc"}, "run_id": "r",
                  "patch": "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a\n+b\n",
                  "steps": [], "memory": {"injected": [], "recalled": []}, "model": {"name": "m"}, "totals": {}}
    outcome = SimpleNamespace(trajectory=trajectory, trajectory_path=tmp_path / "t.json",
                              result=SimpleNamespace(patch=trajectory["patch"]))
    verdict = {"verdict": "unknown", "method": "none", "reason": "no test command"}
    for n, configured in enumerate((False, True)):
        distiller = make_model(Settings(model=f"scripted:{write_script(tmp_path / f'd{n}.json', [lesson_reply])}"))
        written = remember_run(outcome, Settings(lessons_from_unknown=configured), RunContext(repo_name="acme/calc"),
                               store=store, verdict=verdict, distiller=distiller, episode_key=f"k{n}")
        episode = store.get(written[0])
        assert episode.outcome == "unknown" and episode.outcome_source == "unknown"
        assert len(written) == (2 if configured else 1)


def test_recall_tool_mid_run_is_recorded_in_the_trajectory(store, buggy_repo, tmp_path):
    from expagent.agent.loop import Agent, Limits
    from expagent.experience.context import recall_tool_factory
    from expagent.sandbox.local import LocalSandbox
    from expagent.trajectory import TrajectoryWriter, load_trajectory

    episode = _episode("ZeroDivisionError: division by zero in calc.div when the divisor is 0", "calc-1")
    store.add_episode(episode, "t")
    settings = Settings(memory="on")
    replies = [
        {"tool_calls": [{"name": "recall", "arguments": {"query": "ZeroDivisionError: division by zero in div"}}]},
        {"tool_calls": [{"name": "recall", "arguments": {"query": "unicode table headers in the HTML renderer"}}]},
        {"tool_calls": [{"name": "submit"}]},
    ]
    model = make_model(Settings(model=f"scripted:{write_script(tmp_path / 's.json', replies)}"))
    toolbox = ToolBox()
    writer = TrajectoryWriter(tmp_path / "traj.json", {"run_id": "r", "protocol": "native"})
    with LocalSandbox(buggy_repo) as sandbox:
        toolbox.add(recall_tool_factory(store, settings, repo_name="acme/calc", instance_id=None, before=None)(sandbox))
        Agent(model, sandbox, toolbox, writer, Limits()).run(
            build_messages("x", workdir=sandbox.workdir, protocol="native", tool_schemas=toolbox.schemas()))
    traj = load_trajectory(tmp_path / "traj.json")
    outputs = [a["output"] for s in traj["steps"] for a in s["actions"]]
    assert episode.id in outputs[0] and "judge whether each applies" in outputs[0]
    assert outputs[1] == "memory has nothing relevant to that query"
    assert traj["memory"]["recalled"] == [episode.id]
