"""Memory under faults: writers killed at each point of an op, damaged and deleted databases, concurrent writers
with a reader, and a sequence of remembered runs killed at each point and resumed. Real Chroma, real SQLite, real
processes and SIGKILL; nothing is mocked (a kill point is a wrapper that kills the process right there)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Installs a kill point in a child process: KILL_AT names the stage of a memory op, KILL_NTH which op (1 = first).
KILL_POINTS = textwrap.dedent("""
    import os, signal
    from expagent.memory import audit, store as store_module

    point, nth = os.environ.get("KILL_AT", ""), int(os.environ.get("KILL_NTH", "1"))
    seen = {"n": 0}

    def _die():
        os.kill(os.getpid(), signal.SIGKILL)

    def _wrap(cls, name, before=False, partial=False):
        real = getattr(cls, name)
        def wrapper(self, *args, **kwargs):
            seen["n"] += 1
            if seen["n"] == nth and before:
                _die()
            if seen["n"] == nth and partial:  # Chroma gets part of the op, then the writer dies
                real(self, args[0][: max(1, len(args[0]) // 2)], *args[1:], **kwargs)
                _die()
            out = real(self, *args, **kwargs)
            if seen["n"] == nth:
                _die()
            return out
        setattr(cls, name, wrapper)

    if point == "journaled":
        _wrap(audit.AuditLog, "begin")
    elif point == "mid_apply":
        _wrap(store_module.MemoryStore, "_apply", partial=True)
    elif point == "applied":
        _wrap(store_module.MemoryStore, "_apply")
    elif point == "committed":
        _wrap(audit.AuditLog, "commit")
""")


# where a writer process is SIGKILLed in the import and consolidation tests (the slow ones run in CI's slow pass)
WRITER_KILL_POINTS = ["mid_apply", pytest.param("journaled", marks=pytest.mark.slow),
                      pytest.param("applied", marks=pytest.mark.slow)]


def _child(script: str, *args: str, kill_at: str = "", nth: int = 1, timeout: float = 300
           ) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILL_AT": kill_at, "KILL_NTH": str(nth)}
    return subprocess.run([sys.executable, "-c", KILL_POINTS + textwrap.dedent(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _state(store) -> list:
    """Everything a reader can see: every record's document and metadata (counters, status), in id order."""
    return sorted((i.id, json.loads(i.document), i.meta) for i in store.audit.items())


def _chroma_state(store) -> list:
    got = store.chroma_collection().get(include=["documents", "metadatas"])
    return sorted((i, json.loads(d), m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]))


class _HeldLock:
    """The write lock held by another thread: to a reader, as if the killed writer were still mid-op."""

    def __init__(self, home: Path) -> None:
        import threading

        self.path, self.taken, self.release = home / "memory" / "write.lock", threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        from expagent.memory.lock import write_lock

        with write_lock(self.path):
            self.taken.set()
            self.release.wait(60)

    def __enter__(self) -> "_HeldLock":
        self.thread.start()
        self.taken.wait(60)
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join()


def _agree(home: Path) -> None:
    from expagent.memory.check import check_memory

    report = check_memory(home)
    assert report.ok, [p.message for p in report.problems]
    assert report.records == report.chroma_records


# ------------------------------------------------------------------------------------------------ kill an import
IMPORTER = """
    import sys, random
    from expagent.memory.records import Episode
    from expagent.memory.store import MemoryStore
    home, n = sys.argv[1], int(sys.argv[2])
    rng = random.Random(7)
    records = [Episode(repo="r/x", issue=f"imported issue {i}: the parser fails on input {i}", instance_id=f"imp-{i}",
                       created_at="2022-01-01T00:00:00Z") for i in range(n)]
    vectors = []
    for _ in range(n):
        v = [rng.gauss(0, 1) for _ in range(384)]
        norm = sum(x * x for x in v) ** 0.5
        vectors.append([x / norm for x in v])
    store = MemoryStore.open(home=home)
    store.add_records(records, "importer", embeddings=vectors)
    print(store.count())
"""


@pytest.mark.slow  # ~10 s per point (1,200 records): the consolidation's mid_apply kill stays in the default run
@pytest.mark.parametrize("point", WRITER_KILL_POINTS)
def test_sigkill_during_an_import_then_reopen(tmp_path, point):
    from expagent.memory.records import Episode
    from expagent.memory.store import MemoryStore

    home = tmp_path / "home"
    with MemoryStore.open(home=home) as store:
        store.add_episode(Episode(repo="r/x", issue="an episode from before the import", instance_id="old-1"), "t")
    n = 1200  # more than two Chroma chunks, so "mid_apply" leaves Chroma with part of the import
    proc = _child(IMPORTER, str(home), str(n), kill_at=point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    with _HeldLock(home), MemoryStore.open(home=home, create=False) as reader:  # never half an import
        assert reader.count() == 1 and [e.instance_id for e in reader.list()] == ["old-1"]
        assert reader.audit.has_pending()
    with MemoryStore.open(home=home) as store:  # the next one to open rolls the import forward
        assert not store.audit.has_pending()
        assert store.count() == n + 1
        adds = [h for h in store.audit.history() if h.action == "add"]
        assert len(adds) == n + 1 and len({h.record_id for h in adds}) == n + 1
        assert _state(store) == _chroma_state(store)
    _agree(home)
    again = _child(IMPORTER, str(home), str(n))  # importing the same file again adds nothing, audits nothing
    assert again.returncode == 0 and again.stdout.strip() == str(n + 1), again.stderr[-2000:]
    with MemoryStore.open(home=home, create=False) as store:
        assert len([h for h in store.audit.history() if h.action == "add"]) == n + 1


# ------------------------------------------------------------------------------------------ kill a consolidation
CONSOLIDATOR = """
    import sys
    from expagent.config import Settings
    from expagent.experience.maintain import consolidate
    from expagent.memory.store import MemoryStore
    from expagent.models import make_model
    store = MemoryStore.open(home=sys.argv[1])
    consolidate(store, make_model(Settings(model="scripted:" + sys.argv[2])))
"""


def _two_near_duplicates(home: Path) -> tuple[str, str]:
    from expagent.memory.records import Lesson
    from expagent.memory.store import MemoryStore

    a = Lesson(applies_when="a test fails only sometimes", advice="pin the random seed in tests",
               created_at="2024-01-01T00:00:00Z")
    b = Lesson(applies_when="a test fails only sometimes", advice="pin the random seed in the tests",
               created_at="2024-01-02T00:00:00Z")
    with MemoryStore.open(home=home) as store:
        store.add_lesson(a, "t")
        store.add_lesson(b, "t")
    return a.id, b.id


@pytest.mark.parametrize("point", WRITER_KILL_POINTS)
def test_sigkill_during_a_consolidation_then_reopen(tmp_path, point):
    from expagent.memory.store import MemoryStore

    home = tmp_path / "home"
    a, b = _two_near_duplicates(home)
    script = tmp_path / "merge.json"
    script.write_text(json.dumps({"replies": [json.dumps({"applies_when": "a test fails only sometimes",
                                                          "advice": "pin the random seed"})]}))
    proc = _child(CONSOLIDATOR, str(home), str(script), kill_at=point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with _HeldLock(home), MemoryStore.open(home=home, create=False) as reader:  # invisible until committed
        assert sorted((l.id, l.status) for l in reader.list(kind="lesson")) == sorted([(a, "active"), (b, "active")])
    with MemoryStore.open(home=home) as store:
        lessons = {l.id: l for l in store.list(kind="lesson")}
        merged = [l for l in lessons.values() if l.provenance.get("merged_from")]
        assert len(merged) == 1 and merged[0].status == "active"
        assert lessons[a].status == lessons[b].status == "retired"
        assert lessons[a].retired_reason == f"merged into {merged[0].id}"
        assert [h.action for h in store.history(a)] == ["add", "retire"]
    _agree(home)


# ------------------------------------------------------------------------------------------- concurrent writers
WRITER = """
    import sys
    from expagent.memory.records import Episode
    from expagent.memory.store import MemoryStore
    home, tag, n, lesson = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = MemoryStore.open(home=home)
    for i in range(n):
        store.add_episode(Episode(repo="r/x", issue=f"writer {tag} issue {i}: the parser fails on input {i}",
                                  instance_id=f"{tag}-{i}"), actor=f"writer-{tag}")
        store.record_usage([lesson], resolved=i % 2 == 0, actor=f"writer-{tag}")
    print("ok")
"""

READER = """
    import sys, time, traceback
    from expagent.memory.retrieval import retrieve
    from expagent.memory.store import MemoryStore
    home, stop = sys.argv[1], sys.argv[2]
    store = MemoryStore.open(home=home, create=False)
    errors, reads, last = [], 0, 0
    import os
    while not os.path.exists(stop):
        try:
            n = store.count()
            assert n >= last, f"the count went back from {last} to {n}"
            last = n
            retrieve(store, "the parser fails on input 3", repo="r/x", floor=0, k=3)
            for record in store.list(kind="episode")[:5]:
                store.get(record.id)
            reads += 1
        except Exception:
            errors.append(traceback.format_exc(limit=2))
    print(reads, len(errors))
    print("".join(errors[:3]), file=sys.stderr)
"""


@pytest.mark.slow  # real processes for seconds; the in-process writer/reader tests stay in the default run
@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_and_a_reader(tmp_path, writers):
    from expagent.memory.records import Lesson
    from expagent.memory.store import MemoryStore

    home = tmp_path / "shared"
    lesson = Lesson(applies_when="a parser fails", advice="read the grammar first", created_at="2024-01-01T00:00:00Z")
    with MemoryStore.open(home=home) as store:
        store.add_lesson(lesson, "t")
    n = 8
    stop = tmp_path / "stop"
    env = {**os.environ}
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(READER), str(home), str(stop)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(home), f"W{k}", str(n), lesson.id],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(writers)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    stop.touch()
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err[-2000:]
    reads, errors = map(int, out.split())
    assert errors == 0, err
    assert reads >= 1
    with MemoryStore.open(home=home) as store:
        episodes = store.list(kind="episode")
        assert {e.instance_id for e in episodes} == {f"W{k}-{i}" for k in range(writers) for i in range(n)}
        usage = store.usage(lesson.id)  # no increment lost
        assert usage.retrieved == writers * n and usage.resolved == writers * (n // 2)
        actors = [h.actor for h in store.audit.history() if h.action == "add"]
        assert all(actors.count(f"writer-W{k}") == n for k in range(writers))
        assert _state(store) == _chroma_state(store)


# ------------------------------------------------------------------------------------------------ damage
def _seed(home: Path) -> list:
    from expagent.memory.records import Lesson
    from expagent.memory.store import MemoryStore
    from expagent.memory.swebench import import_swebench
    from test_memory import HISTORY, write_jsonl

    home.mkdir(parents=True, exist_ok=True)
    with MemoryStore.open(home=home) as store:
        import_swebench(store, write_jsonl(home / "seed.jsonl", HISTORY))
        lesson = Lesson(applies_when="a total ignores a discount", advice="apply discounts before summing",
                        scope="acme/shop", created_at="2021-01-02T00:00:00Z")
        store.add_lesson(lesson, "t")
        store.record_usage([lesson.id], resolved=True, key="task-1")
        return _state(store)


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPAGENT_")}
    return subprocess.run([sys.executable, "-m", "expagent", "memory", *args, "--home", str(home)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:4096] = os.urandom(4096)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["delete_chroma", "corrupt_audit",
                                    pytest.param("corrupt_chroma", marks=pytest.mark.slow),
                                    pytest.param("unaudited_records", marks=pytest.mark.slow)])
def test_damaged_store_is_named_and_repaired(tmp_path, damage):
    from expagent.memory.check import check_memory
    from expagent.memory.store import MemoryStore

    home = tmp_path / "home"
    before = _seed(home)
    memory = home / "memory"
    expect = {"delete_chroma": "chroma_missing", "corrupt_chroma": "chroma_damaged",
              "corrupt_audit": "audit_damaged", "unaudited_records": "diverged"}[damage]
    if damage == "delete_chroma":
        shutil.rmtree(memory / "chroma")
    elif damage == "corrupt_chroma":
        _corrupt(memory / "chroma" / "chroma.sqlite3")
    elif damage == "corrupt_audit":
        _corrupt(memory / "audit.sqlite")
    else:  # records in Chroma the audit log never heard of (what a pre-ledger kill mid-import left behind)
        from expagent.memory.records import Episode
        from expagent.memory.store import _document, _metadata, Usage

        with MemoryStore.open(home=home) as store:
            extra = Episode(repo="acme/shop", issue="an unaudited episode", instance_id="ghost-1",
                            created_at="2021-05-01T00:00:00Z")
            store.chroma_collection().add(ids=[extra.id], documents=[_document(extra)],
                                          metadatas=[_metadata(extra, Usage())], embeddings=[[0.05] * 384])
    for command in (("ls",), ("search", "Cart.total() ignores discount codes")):
        proc = _cli(*command, home=home)
        assert proc.returncode != 0 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr
        assert "memory check" in proc.stderr and "Traceback" not in proc.stderr

    report = check_memory(home)
    assert [p.code for p in report.problems] == [expect]
    proc = _cli("check", home=home)
    assert proc.returncode == 1 and proc.stdout.startswith(f"{expect}: "), proc.stdout + proc.stderr

    proc = _cli("check", "--repair", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("repaired: ") and "memory ok" in proc.stdout
    with MemoryStore.open(home=home) as store:
        after = _state(store)
        assert after == _chroma_state(store)
        if damage == "unaudited_records":
            assert len(after) == len(before) + 1
            ghost = [i for i, doc, _m in after if doc.get("instance_id") == "ghost-1"][0]
            assert [h.action for h in store.history(ghost)] == ["adopt"]
        else:
            assert after == before  # documents, status and counters all restored
        if damage != "corrupt_audit":  # the audit history survives; a corrupted log's readable rows are salvaged
            assert any(h.action == "usage" for h in store.audit.history())
    _agree(home)


def test_an_old_memory_without_a_ledger_is_backfilled(tmp_path):
    """A memory written before the ledger existed (records only in Chroma, an audit table of schema 1)."""
    import sqlite3

    from expagent.memory.store import MemoryStore

    home = tmp_path / "home"
    before = _seed(home)
    audit = home / "memory" / "audit.sqlite"
    conn = sqlite3.connect(audit)
    conn.executescript("DROP TABLE records; DROP TABLE ops; DROP TABLE staged; DROP TABLE counted; DROP TABLE info;")
    conn.close()
    with MemoryStore.open(home=home) as store:
        assert _state(store) == before and store.audit.info("embedding_model") == "minilm-int8"
    _agree(home)


# ------------------------------------------------------------------------------ remembered runs, killed, resumed
LESSONS = [
    {"kind": "success", "scope": "general", "applies_when": "a function must reject invalid input",
     "advice": "raise ValueError with a clear message instead of returning a placeholder"},
    {"kind": "success", "scope": "general", "applies_when": "a function must reject invalid input values",
     "advice": "raise ValueError with a clear message instead of returning a placeholder"},
    {"kind": "failure", "scope": "repo", "applies_when": "whitespace handling is wrong",
     "advice": "split on whitespace and join rather than replacing single spaces"},
]


def _task(n: int, store, scripts: Path):
    """One task as a replay remembers it: the lessons learned earlier were injected; then remember_run."""
    from expagent.config import Settings
    from expagent.experience.context import RunContext
    from expagent.experience.remember import remember_run
    from expagent.models import make_model

    from conftest import write_script

    created = f"2024-01-0{n + 1}T12:00:00Z"
    injected = [l.id for l in store.list(kind="lesson") if l.created_at < created]
    patch = f"diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a{n}\n+b{n}\n"
    trajectory = {"issue": {"text": f"task {n}: calc rejects nothing"}, "repo": {"base_commit": "abc"},
                  "run_id": f"r{n}", "patch": patch, "steps": [], "model": {"name": "m"}, "totals": {"steps": 2},
                  "memory": {"injected": injected, "recalled": []}}
    outcome = SimpleNamespace(trajectory=trajectory, trajectory_path=Path("tasks") / f"t{n}.json",
                              result=SimpleNamespace(patch=patch))
    reply = json.dumps({"summary": {"fault_location": "calc"}, "lessons": [LESSONS[n]]})
    distiller = make_model(Settings(model=f"scripted:{write_script(scripts / f'd{n}.json', [reply])}"))
    verdict = {"verdict": "resolved" if n != 1 else "unresolved", "method": "tests", "reason": ""}
    remember_run(outcome, Settings(), RunContext(repo_name="demo/calc"), store=store, verdict=verdict,
                 distiller=distiller, repo_name="demo/calc", instance_id=f"demo__calc-{n}", created_at=created,
                 episode_key=f"run:demo__calc-{n}")


class Killed(BaseException):
    """Stands for the process dying at a kill point (not an Exception: nothing may catch it)."""


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    return tmp_path_factory.mktemp("distill-scripts")  # the same files for every run: provenance names them


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, scripts):
    from expagent.memory.store import MemoryStore

    tmp = tmp_path_factory.mktemp("clean")
    with MemoryStore.open(home=tmp / "home") as store:
        for n in range(3):
            _task(n, store, scripts)
        state = _state(store)
        audit = sorted((h.action, h.record_id) for h in store.audit.history())
    return state, audit


@pytest.mark.parametrize("point", ["before_journal", "journaled", "mid_apply", "applied", "committed"])
def test_remembered_runs_killed_at_each_point_and_resumed(tmp_path, monkeypatch, clean_run, scripts, point):
    """Task 2 of 3 dies at ``point``; the resume re-runs every task without a results row (2 and 3), as replay
    --resume does. The memory must equal the clean run's: records, counters, audit rows."""
    from expagent.memory import audit as audit_module
    from expagent.memory.store import MemoryStore

    with MemoryStore.open(home=tmp_path / "home") as store:
        _task(0, store, scripts)
        target, method = {"before_journal": (audit_module.AuditLog, "begin"),
                          "journaled": (audit_module.AuditLog, "begin"), "mid_apply": (MemoryStore, "_apply"),
                          "applied": (MemoryStore, "_apply"), "committed": (audit_module.AuditLog, "commit")}[point]
        real = getattr(target, method)

        def dying(self, *args, **kwargs):
            if point == "before_journal":
                raise Killed
            if point == "mid_apply":
                real(self, args[0][:1], *args[1:], **kwargs)
                raise Killed
            real(self, *args, **kwargs)
            raise Killed

        monkeypatch.setattr(target, method, dying)
        with pytest.raises(Killed):
            _task(1, store, scripts)
        monkeypatch.undo()
    with MemoryStore.open(home=tmp_path / "home") as store:  # the resumed replay
        for n in (1, 2):
            _task(n, store, scripts)
        assert _state(store) == clean_run[0]
        assert sorted((h.action, h.record_id) for h in store.audit.history()) == clean_run[1]
        assert _state(store) == _chroma_state(store)


# ------------------------------------------------------------------------------ a real replay, SIGKILLed, resumed
REPLAY = """
    import sys
    from expagent.cli import main
    sys.argv = ["expagent", *sys.argv[1:]]
    main()
"""


def _memory_view(home: Path) -> list:
    """What a replay's memory holds, without the run-specific paths and times: ids, kinds, outcomes, status,
    evidence and the usage counters."""
    from expagent.memory.store import MemoryStore

    with MemoryStore.open(home=home, create=False) as store:
        out = []
        for item in store.audit.items():
            doc, meta = json.loads(item.document), item.meta
            out.append((item.id, doc["kind"], doc.get("outcome"), meta["status"], sorted(doc.get("source_episodes", [])),
                        meta["n_retrieved"], meta["n_resolved"], meta["n_unresolved"]))
        return sorted(out)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["committed", "mid_apply"])
def test_replay_sigkilled_between_memory_and_results_then_resumed(tmp_path, point):
    """The case the issue measured: a replay killed between a task's memory write and its results row lost
    usefulness counts on resume. Here it is SIGKILLed there (and mid-write), resumed, and compared with a clean run."""
    from test_replay import LESSON_1, LESSON_2, LESSON_3, _distill_reply

    from expagent.tasks.demo import make_demo_suite

    suite = make_demo_suite(tmp_path / "demo")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for line in (suite / "tasks.jsonl").read_text().splitlines():
        task = json.loads(line)
        replies = [{"content": "Apply the fix.", "tool_calls": [{"name": "bash", "arguments": {
                       "command": f"git apply <<'PATCH'\n{task['patch']}PATCH"}}]},
                   {"content": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}]
        (scripts / f"{task['instance_id']}.json").write_text(json.dumps({"replies": replies}))

    def distill(name, lessons):
        path = tmp_path / name
        path.write_text(json.dumps({"replies": [_distill_reply(x) for x in lessons]}))
        return f"scripted:{path}"

    def replay(out: Path, distiller: str, *extra: str, kill_at: str = "") -> subprocess.CompletedProcess:
        return _child(REPLAY, "replay", str(suite), "--model", f"scripted:{scripts}", "--distill-model", distiller,
                      "--memory", "on", "--out", str(out), *extra, kill_at=kill_at, nth=2, timeout=900)

    clean = replay(tmp_path / "clean" / "run", distill("all.json", [LESSON_1, LESSON_2, LESSON_3]))
    assert clean.returncode == 0, clean.stderr[-2000:]
    killed_out = tmp_path / "killed" / "run"  # same run name: the episode keys are the same
    killed = replay(killed_out, distill("first.json", [LESSON_1, LESSON_2, LESSON_3]), kill_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    rows = [json.loads(x) for x in (killed_out / "results.jsonl").read_text().splitlines()]
    assert [r["instance_id"] for r in rows] == ["demo__calc-1"]  # task 2 died before its results row
    resumed = replay(killed_out, distill("rest.json", [LESSON_3]), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    view = _memory_view(killed_out)
    assert view == _memory_view(tmp_path / "clean" / "run")
    assert any(row[5] > 0 for row in view)  # counters were exercised: a lesson of task 1 was used later
    _agree(killed_out)
