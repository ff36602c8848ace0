"""The grader end to end on a small real suite (a git repo with several commits) with the local sandbox."""

import json
import re
import subprocess

import pytest
from typer.testing import CliRunner

from expagent.tasks.demo import make_demo_suite
from expagent.tasks.envs import EnvBuildError, ensure_env
from expagent.tasks.grader import grade
from expagent.tasks.suite import load_suite


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_suite(tmp_path_factory.mktemp("grader") / "demo")


@pytest.fixture()
def suite(demo, monkeypatch):
    # one expagent home for this module, so the demo environment is built once
    monkeypatch.setenv("EXPAGENT_HOME", str(demo.parent / "home"))
    return load_suite(demo)


def cli(*args):
    from expagent.cli import _register, app

    _register()
    args = list(args)
    if args[0] == "eval" and "--sandbox" not in args:
        args += ["--sandbox", "local"]  # the default (auto) would pick Docker when a daemon answers
    return CliRunner().invoke(app, args)


def test_validate_runs_gold_and_empty_for_every_task(suite, demo):
    result = cli("eval", str(demo), "--validate", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert [(t["instance_id"], t["gold"], t["empty"]) for t in report["tasks"]] == [
        ("demo__calc-1", True, False), ("demo__calc-2", True, False), ("demo__calc-3", True, False)]


def test_eval_json_has_per_test_statuses(suite, demo):
    result = cli("eval", str(demo), "--instance", "demo__calc-2", "--patch", "empty", "--json")
    assert result.exit_code == 1  # graded, not resolved
    data = json.loads(result.stdout)
    assert data["instance_id"] == "demo__calc-2" and data["resolved"] is False
    assert data["fail_to_pass"] == {
        "tests/test_stats.py::test_mean_empty[empty list]": "FAILED",
        "tests/test_stats.py::test_mean_empty[empty tuple [x::y]]": "FAILED",
    }
    assert set(data["pass_to_pass"].values()) == {"PASSED"}
    assert "FAILED tests/test_stats.py::test_mean_empty[empty list]" in open(data["log_path"]).read()


def test_patch_file_and_unknown_instance(suite, demo, tmp_path):
    patch = tmp_path / "fix.diff"
    patch.write_text(suite.task("demo__calc-3").patch)
    ok = cli("eval", str(demo), "-i", "demo__calc-3", "--patch", str(patch))
    assert ok.exit_code == 0, ok.output
    bad = cli("eval", str(demo), "-i", "demo__calc-9")
    assert "unknown instance 'demo__calc-9'" in str(bad.exception)


def test_patch_that_does_not_apply_is_not_resolved_with_reason(suite):
    task = suite.task("demo__calc-1")
    bogus = ("diff --git a/calc/arith.py b/calc/arith.py\n--- a/calc/arith.py\n+++ b/calc/arith.py\n"
             "@@ -1,2 +1,2 @@\n-def nothing_like_this():\n-    pass\n+def x():\n+    pass\n")
    result = grade(task, bogus)
    assert result.resolved is False and result.patch_applied is False
    assert result.reason.startswith("patch does not apply")


def test_candidate_edits_to_the_tests_are_overridden_by_the_test_patch(suite):
    # a "fix" that only weakens the test file must not count: test files are reset before the test patch
    task = suite.task("demo__calc-3")
    cheat = ("diff --git a/tests/test_text.py b/tests/test_text.py\n--- a/tests/test_text.py\n+++ b/tests/test_text.py\n"
             "@@ -3,3 +3,3 @@ from calc.text import slugify\n \n def test_slugify_word():\n-    assert slugify('Hello') == 'hello'\n"
             "+    assert True\n")
    result = grade(task, cheat)
    assert result.patch_applied is True
    assert result.resolved is False
    assert result.fail_to_pass == {"tests/test_text.py::test_slugify_spaces": "FAILED"}


def test_hanging_tests_time_out(suite):
    task = suite.task("demo__calc-3")
    hang = task.patch.replace("return '-'.join(text.strip().lower().split())", "while True: pass")
    assert hang != task.patch
    result = grade(task, hang, timeout=3)
    assert result.timed_out and result.resolved is False
    assert result.reason == "tests timed out after 3 s"


def test_env_is_cached_by_recipe_hash(suite):
    task = suite.task("demo__calc-1")
    first = ensure_env(task)
    again = ensure_env(task)
    assert again.cached and again.path == first.path
    meta = json.loads((first.path / "env.json").read_text())
    assert meta["key"] == first.key and meta["python_version"] == first.python_version


def test_env_build_failure_shows_tail_and_keeps_log(tmp_path):
    demo = make_demo_suite(tmp_path / "demo")
    manifest = demo / "suite.toml"
    manifest.write_text(manifest.read_text().replace(
        "install = []", "install = [\"python -c 'import sys; print(123 * 1000 + 456); sys.exit(3)'\"]"))
    task = load_suite(demo).task("demo__calc-1")
    with pytest.raises(EnvBuildError) as caught:
        ensure_env(task)
    message = str(caught.value)
    assert "exited 3" in message and "123456" in message and "\n" not in message
    log = re.search(r"\(log: (.+)\)$", message).group(1)
    assert "123456" in open(log).read()
    # the half-built env is gone, so the next try starts clean
    envs = [p.name for p in (tmp_path / "demo").parent.glob("**/cache/envs/demo__calc*")]
    assert envs == []


def test_validation_failure_names_task_and_reason(tmp_path, monkeypatch):
    demo = make_demo_suite(tmp_path / "demo")
    lines = (demo / "tasks.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    # a "gold" patch that fixes nothing
    record["patch"] = "diff --git a/README b/README\nnew file mode 100644\n--- /dev/null\n+++ b/README\n@@ -0,0 +1 @@\n+hi\n"
    (demo / "tasks.jsonl").write_text(json.dumps(record) + "\n")
    result = cli("eval", str(demo), "--validate")
    assert result.exit_code == 1
    assert re.search(r"invalid demo__calc-3: gold patch does not resolve", result.output)


def test_repo_source_is_untouched_by_grading(suite, demo):
    source = demo / "repos" / "calc"
    before = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True).stdout
    result = grade(suite.task("demo__calc-2"), suite.task("demo__calc-2").patch)
    assert result.resolved
    after = subprocess.run(["git", "status", "--porcelain"], cwd=source, capture_output=True, text=True).stdout
    assert after == ""
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True).stdout == before


def test_missing_interpreter_and_offline_repo_are_one_line_cli_errors(tmp_path, monkeypatch):
    from conftest import run_cli

    demo = make_demo_suite(tmp_path / "demo")
    manifest = demo / "suite.toml"
    manifest.write_text(manifest.read_text().replace('python = "', 'python = "2.5" #'))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    proc = run_cli("eval", str(demo), "-i", "demo__calc-1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no Python 2.5 interpreter found")

    manifest.write_text(manifest.read_text().replace('path = "repos/calc"', f'url = "file://{tmp_path}/gone.git"'))
    proc = run_cli("eval", str(demo), "-i", "demo__calc-1")
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]
    assert "repository demo/calc is not available" in message and "--repos DIR" in message


def test_patch_from_swebench_predictions_file(suite, demo, tmp_path):
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([
        {"instance_id": "demo__calc-1", "model_patch": "", "model_name_or_path": "x"},
        {"instance_id": "demo__calc-3", "model_patch": suite.task("demo__calc-3").patch, "model_name_or_path": "x"},
    ]))
    ok = cli("eval", str(demo), "-i", "demo__calc-3", "--patch", str(preds), "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["resolved"] is True
    missing = cli("eval", str(demo), "-i", "demo__calc-2", "--patch", str(preds))
    assert "has no prediction for demo__calc-2" in str(missing.exception)


@pytest.mark.parametrize("sandbox_kind", ["local", pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])],
                         indirect=True)  # the Docker case runs with the slow set (.ci/run runs both)
def test_validate_on_each_sandbox_backend(suite, demo, sandbox_kind):
    # local: a host virtualenv; docker: an environment image built on the sandbox image
    result = cli("eval", str(demo), "--validate", "--sandbox", sandbox_kind, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid"] is True
    graded = cli("eval", str(demo), "-i", "demo__calc-2", "--patch", "empty", "--sandbox", sandbox_kind, "--json")
    data = json.loads(graded.stdout)
    assert data["sandbox"] == sandbox_kind and data["resolved"] is False
    assert data["fail_to_pass"]["tests/test_stats.py::test_mean_empty[empty tuple [x::y]]"] == "FAILED"


@pytest.mark.docker
def test_docker_python_mismatch_is_clear_and_auto_falls_back(tmp_path):
    import os

    from conftest import docker_daemon_available

    if not docker_daemon_available():
        if os.environ.get("CI"):
            pytest.fail("CI is set but no Docker daemon answers")
        pytest.skip("no Docker daemon on this machine")
    demo = make_demo_suite(tmp_path / "demo", python="3.10")
    task = load_suite(demo).task("demo__calc-1")
    with pytest.raises(Exception, match=r"needs Python 3\.10, but image .* has 3\.11"):
        grade(task, task.patch, sandbox_kind="docker")
    notices = []
    result = grade(task, task.patch, sandbox_kind="auto", echo=notices.append)
    # (the host's Python 3.10 may lack pytest: only where it ran matters here)
    assert result.sandbox == "local" and result.patch_applied
    assert any("grading with the local sandbox" in n for n in notices)
