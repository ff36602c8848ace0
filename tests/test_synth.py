"""``expagent tasks synth`` on a small real package built here: real test runs, real commits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from expagent.tasks import synth_git
from expagent.tasks.synth import SynthError, SynthOptions, synthesize

# the host's pytest plugins are not needed here and cost seconds per run
FAST_PYTEST = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -rA -p no:cacheprovider"

LIB = '''\
"""A few text and number helpers."""


def _require(value):
    if value is None:
        raise TypeError("value must not be None")
    return value


def clamp(value, low, high):
    _require(value)
    if value < low:
        return low
    if value > high:
        return high
    return value


def first_word(text, default=""):
    _require(text)
    words = text.split()
    if not words:
        return default
    return words[0]


def lookup(table, key):
    _require(table)
    if key in table:
        return table[key]
    return None


def shout(text, times=1):
    _require(text)
    return text.upper() + "!" * times
'''

TESTS = '''\
from pathlib import Path

from kit.helpers import clamp, first_word, lookup

COUNTER = Path(__file__).with_name(".session-count")


def test_clamp_inside():
    assert clamp(5, 0, 10) == 5


def test_clamp_low():
    assert clamp(-3, 0, 10) == 0


def test_clamp_high():
    assert clamp(42, 0, 10) == 10


def test_first_word():
    assert first_word("hello world") == "hello"


def test_first_word_blank():
    assert first_word("   ") == ""


def test_lookup_on_even_sessions():
    # order-dependent on purpose: checks lookup only in every other pytest session
    if int(COUNTER.read_text()) % 2 == 0:
        assert lookup({"a": 1}, "a") == 1
    else:
        assert clamp(1, 0, 2) == 1
'''

CONFTEST = '''\
from pathlib import Path

COUNTER = Path(__file__).with_name(".session-count")


def pytest_sessionstart(session):
    count = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(count))
'''


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env=synth_git.git_env()).stdout


def _make_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPAGENT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _pytest(checkout: Path, ids: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ids], cwd=checkout,
                          capture_output=True, text=True, env=env)


@pytest.mark.slow  # every candidate mutation runs the tests: ~90 s on the 2-core machine; .ci/run runs it
def test_synth_end_to_end_on_a_small_package(tmp_path, home):
    repo = _make_repo(tmp_path / "kit", {
        "kit/__init__.py": "",
        "kit/helpers.py": LIB,
        "tests/__init__.py": "",
        "tests/conftest.py": CONFTEST,
        "tests/test_helpers.py": TESTS,
    })
    head_before = _git(repo, "rev-parse", "HEAD")
    refs_before = _git(repo, "show-ref")
    out = tmp_path / "suite"
    # a scripted model rewrites statements: its first rewrite names failing tests (so it is refused and the
    # template kept), its second is used
    script = tmp_path / "rewrites.yaml"
    script.write_text(json.dumps({"replies": [
        "Broken since today: test_clamp_inside test_clamp_low test_clamp_high test_first_word test_first_word_blank",
        "A helper in kit gives the wrong answer for a plain input.",
    ]}))
    # try every candidate, so that each kind of discard happens
    report = synthesize(str(repo), out, SynthOptions(n=20, chain_length=20, max_trials_per_module=100, seed=1,
                                                          test_cmd=FAST_PYTEST, model=f"scripted:{script}"))

    # bad mutations were discarded and counted: the untested function, the guard every call goes
    # through, and the order-dependent test
    assert report.discarded["nothing_failed"] >= 1  # e.g. shout's default
    assert report.discarded["everything_failed"] >= 1  # _require raising for everything
    assert report.discarded["flaky"] >= 1  # lookup is only checked in every other session
    assert sum(report.discarded.values()) + len(report.tasks) == report.tried
    functions = [t["mutation"]["function"] for t in report.tasks]
    assert set(functions) == {"clamp", "first_word"}
    assert all(t["chain"] == "kit/helpers.py" for t in report.tasks)

    # the user's repository is untouched
    assert _git(repo, "rev-parse", "HEAD") == head_before
    assert _git(repo, "show-ref") == refs_before
    assert _git(repo, "status", "--porcelain") == ""

    # the suite loads with the grader's loader, records are SWE-bench shaped
    from expagent.tasks.suite import load_suite

    suite = load_suite(out)
    assert [t.instance_id for t in suite.tasks] == [t["instance_id"] for t in report.tasks]
    records = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    created = [r["created_at"] for r in records]
    assert created == sorted(created)
    all_ids = {f"tests/test_helpers.py::{name}" for name in (
        "test_clamp_inside", "test_clamp_low", "test_clamp_high", "test_first_word", "test_first_word_blank")}
    assert [r["statement_source"] for r in records] == ["template", "model"]
    assert records[1]["problem_statement"] == "A helper in kit gives the wrong answer for a plain input.\n"
    for record in records:
        assert record["test_patch"] == ""
        assert record["FAIL_TO_PASS"] and set(record["FAIL_TO_PASS"]) <= all_ids
        assert not set(record["FAIL_TO_PASS"]) & set(record["PASS_TO_PASS"])
        statement = record["problem_statement"]
        for test_id in record["FAIL_TO_PASS"] + record["PASS_TO_PASS"]:
            assert test_id.split("::")[-1] not in statement
        if record["statement_source"] == "template":
            assert record["mutation"]["function"] in statement  # the user names the function they called
            assert "```python" in statement and ">>> " in statement

    # the suite carries a bare repository with every base commit, and the grader's resolver finds it
    from expagent.tasks.repos import has_commit, resolve_repo

    carried = resolve_repo(suite, suite.tasks[0].repo)
    assert carried == (out / "repo.git").resolve()
    assert all(has_commit(carried, r["base_commit"]) for r in records)

    # and the grader validates them: the gold patch resolves each task, no patch does not
    from expagent.tasks.grader import grade

    for task in suite.tasks:
        assert grade(task, task.patch).resolved, task.instance_id
        assert not grade(task, "").resolved, task.instance_id

    # a fresh clone of the user's repository gets the very same base commits back from the records alone
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    made = synth_git.ensure_task_commits(clone, records)
    assert sorted(made) == sorted(r["base_commit"] for r in records)

    # and the recorded outcomes are real: FAIL_TO_PASS fails at the base commit, and passes with the gold patch
    for record in records:
        _git(clone, "checkout", "-q", "--detach", record["base_commit"])
        assert _pytest(clone, record["FAIL_TO_PASS"]).returncode != 0
        assert _pytest(clone, record["PASS_TO_PASS"]).returncode == 0
        subprocess.run(["git", "apply"], cwd=clone, input=record["patch"], text=True, check=True)
        assert _git(clone, "diff", "HEAD~1", "--stat") == ""  # the gold patch is exactly the revert
        assert _pytest(clone, record["FAIL_TO_PASS"] + record["PASS_TO_PASS"]).returncode == 0
        _git(clone, "checkout", "-q", ".")


def test_repo_without_tests_generates_nothing(tmp_path, home):
    repo = _make_repo(tmp_path / "notests", {"lib.py": LIB})
    out = tmp_path / "suite"
    with pytest.raises(SynthError, match="no tests found.*generated nothing"):
        synthesize(str(repo), out, SynthOptions(n=3))
    assert not out.exists()


def test_tests_failing_before_mutation_generate_nothing(tmp_path, home):
    broken = TESTS.replace('assert clamp(42, 0, 10) == 10', 'assert clamp(42, 0, 10) == 11')
    repo = _make_repo(tmp_path / "broken", {
        "kit/__init__.py": "", "kit/helpers.py": LIB, "tests/conftest.py": CONFTEST, "tests/test_helpers.py": broken,
    })
    out = tmp_path / "suite"
    with pytest.raises(SynthError, match=r"fail before any mutation: 1 failing \(e\.g\. tests/test_helpers.py::test_clamp_high\)"):
        synthesize(str(repo), out, SynthOptions(n=3, test_cmd=FAST_PYTEST))
    assert not out.exists()


def test_not_a_git_repository_is_a_clear_error(tmp_path, home):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "test_x.py").write_text("def test_x():\n    pass\n")
    with pytest.raises(SynthError, match="not a git repository"):
        synthesize(str(plain), tmp_path / "suite", SynthOptions(n=1))


def test_existing_output_is_not_overwritten(tmp_path, home):
    out = tmp_path / "suite"
    out.mkdir()
    (out / "tasks.jsonl").write_text("precious\n")
    with pytest.raises(SynthError, match="not empty"):
        synthesize(str(tmp_path), out, SynthOptions(n=1))
    assert (out / "tasks.jsonl").read_text() == "precious\n"


def test_cli_reports_bad_input_on_one_line(tmp_path, home):
    repo = _make_repo(tmp_path / "notests", {"lib.py": LIB})
    from conftest import run_cli

    proc = run_cli("tasks", "synth", str(repo), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no tests found")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
