"""``expagent eval --predictions``: a whole SWE-bench predictions file graded with the real grader, reports in the
official harness's shape; and the bad-input cases, each one line and a non-zero exit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_cli
from expagent.tasks.demo import make_demo_suite
from expagent.tasks.predictions import (
    Prediction,
    PredictionsError,
    read_predictions,
    write_all_preds,
    write_run_predictions,
)
from expagent.tasks.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
NOT_APPLYING = "diff --git a/calc/arith.py b/calc/arith.py\n--- a/calc/arith.py\n+++ b/calc/arith.py\n" \
               "@@ -1,2 +1,2 @@\n-def nothing_like_this():\n+def still_nothing():\n     pass\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_suite(tmp_path_factory.mktemp("preds") / "demo")


@pytest.fixture()
def home(demo, monkeypatch):
    # one expagent home for this module, so the demo environment is built once
    monkeypatch.setenv("EXPAGENT_HOME", str(demo.parent / "home"))
    return demo.parent / "home"


def cli(*args):
    from typer.testing import CliRunner

    from expagent.cli import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


def _one_line_error(proc, fragment):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr


def test_grades_a_predictions_file_into_harness_reports(demo, home, tmp_path):
    suite = load_suite(demo)
    gold = suite.task("demo__calc-1")
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([
        {"instance_id": "demo__calc-1", "model_name_or_path": "m", "model_patch": gold.patch},
        {"instance_id": "demo__calc-2", "model_name_or_path": "m", "model_patch": ""},
        {"instance_id": "demo__calc-3", "model_name_or_path": "m", "model_patch": NOT_APPLYING},
    ]))
    out = tmp_path / "eval"
    result = cli("eval", str(demo), "--predictions", str(preds), "--workers", "2", "--out", str(out),
                 "--sandbox", "local", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "report.json").read_text()) | {"report": str(out / "report.json")}
    assert summary["submitted_instances"] == 3 and summary["total_instances"] == 3
    assert summary["resolved_ids"] == ["demo__calc-1"]
    assert summary["empty_patch_ids"] == ["demo__calc-2"]
    assert summary["unresolved_ids"] == ["demo__calc-3"] and summary["error_ids"] == []
    assert summary["reasons"]["demo__calc-3"].startswith("patch does not apply")

    report = json.loads((out / "demo__calc-1" / "report.json").read_text())
    assert list(report) == ["demo__calc-1"]
    entry = report["demo__calc-1"]
    assert entry["patch_is_None"] is False and entry["patch_exists"] is True
    assert entry["patch_successfully_applied"] is True and entry["resolved"] is True
    status = entry["tests_status"]
    assert set(status) == {"FAIL_TO_PASS", "PASS_TO_PASS", "FAIL_TO_FAIL", "PASS_TO_FAIL"}
    assert status["FAIL_TO_PASS"] == {"success": gold.fail_to_pass, "failure": []}
    assert sorted(status["PASS_TO_PASS"]["success"]) == sorted(gold.pass_to_pass)
    assert (out / "demo__calc-1" / "test_output.txt").is_file()
    bad = json.loads((out / "demo__calc-3" / "report.json").read_text())["demo__calc-3"]
    assert bad["patch_successfully_applied"] is False and bad["resolved"] is False
    empty = json.loads((out / "demo__calc-2" / "report.json").read_text())["demo__calc-2"]
    assert empty == {"patch_is_None": False, "patch_exists": False, "patch_successfully_applied": False,
                     "resolved": False}


def test_a_weak_prediction_records_which_tests_fail(demo, home, tmp_path):
    from expagent.tasks.predictions import evaluate_predictions

    suite = load_suite(demo)
    task = suite.task("demo__calc-2")
    # the fix of another task applies here but leaves this task's FAIL_TO_PASS tests failing
    other = suite.task("demo__calc-1").patch
    summary = evaluate_predictions(suite, [Prediction("demo__calc-2", other, "m")], tmp_path / "eval",
                                   sandbox_kind="local")
    (report,) = summary.reports
    assert report.patch_successfully_applied and not report.resolved
    assert sorted(report.tests_status["FAIL_TO_PASS"]["failure"]) == sorted(task.fail_to_pass)
    assert report.tests_status["FAIL_TO_PASS"]["success"] == []


def test_reads_list_dict_and_jsonl_forms_alike(tmp_path):
    items = [{"instance_id": "a-1", "model_name_or_path": "m", "model_patch": "diff"},
             {"instance_id": "a-2", "model_name_or_path": "m", "model_patch": None}]
    (tmp_path / "list.json").write_text(json.dumps(items))
    (tmp_path / "dict.json").write_text(json.dumps({i["instance_id"]: i for i in items}))
    write_all_preds(tmp_path / "all_preds.jsonl", [Prediction(i["instance_id"], i["model_patch"], "m") for i in items])
    forms = [read_predictions(tmp_path / name) for name in ("list.json", "dict.json", "all_preds.jsonl")]
    assert forms[0] == forms[1] == forms[2]
    assert forms[0][1] == Prediction("a-2", None, "m")


def test_replay_run_predictions_are_written_in_both_forms(tmp_path):
    from expagent.tasks.results import ResultRow, append_result

    (tmp_path / "tasks" / "x-1").mkdir(parents=True)
    (tmp_path / "tasks" / "x-1" / "patch.diff").write_text("diff --git a/f b/f\n")
    append_result(tmp_path, ResultRow(instance_id="x-1", patch="tasks/x-1/patch.diff"))
    append_result(tmp_path, ResultRow(instance_id="x-2", patch=None))
    write_run_predictions(tmp_path, "openai/gpt-4o")
    expected = [Prediction("x-1", "diff --git a/f b/f\n", "openai/gpt-4o"), Prediction("x-2", "", "openai/gpt-4o")]
    assert read_predictions(tmp_path / "all_preds.jsonl") == expected
    assert read_predictions(tmp_path / "preds.json") == expected


@pytest.mark.parametrize("content, fragment", [
    ('[{"instance_id": "demo__calc-1", "model_patch": ""}, {"instance_id": "demo__calc-1", "model_patch": "x"}]',
     "duplicate instance_id 'demo__calc-1'"),
    ('[{"instance_id": "demo__calc-1", "model_patch": 42}]', "model_patch must be a string or null, not int"),
    ('[{"instance_id": "demo__calc-1", "model_patch": ""', "malformed JSON"),
    ('{"demo__calc-1": {"instance_id": "demo__calc-2", "model_patch": ""}}', "keyed 'demo__calc-1' but"),
    ('[{"model_patch": ""}]', "instance_id must be a non-empty string"),
    ('"just a string"', "a prediction must be a JSON object"),
    ("[]", "no predictions"),
])
def test_bad_predictions_files(tmp_path, content, fragment):
    preds = tmp_path / "preds.json"
    preds.write_text(content)
    with pytest.raises(PredictionsError, match=re.escape(fragment)):
        read_predictions(preds)


def test_unknown_ids_are_named(demo):
    from expagent.tasks.predictions import check_against_suite

    preds = [Prediction("demo__calc-1", ""), *(Prediction(f"nope-{i}", "") for i in range(5))]
    with pytest.raises(PredictionsError, match=r"5 prediction\(s\) for instances not in suite 'demo': "
                                               r"'nope-0', 'nope-1', 'nope-2' and 2 more"):
        check_against_suite(preds, load_suite(demo))


def test_bad_input_on_the_command_line_is_one_line(demo, home, tmp_path):
    preds = tmp_path / "all_preds.jsonl"
    preds.write_text('{"instance_id": "demo__calc-1", "model_patch": ""}\n{"instance_id": "zzz-1", "model_patch": ""}\n')
    _one_line_error(run_cli("eval", str(demo), "--predictions", str(preds)), "instances not in suite 'demo': 'zzz-1'")
    preds.write_text('{"instance_id": "demo__calc-1", "model_patch": ""}\n{oops\n')
    _one_line_error(run_cli("eval", str(demo), "--predictions", str(preds)), "all_preds.jsonl:2: malformed JSON")


@pytest.mark.slow
def test_shipped_toolz_suite_gold_and_empty_predictions(tmp_path):
    suite = load_suite(ROOT / "swe_tasks" / "toolz")
    preds = [Prediction(t.instance_id, t.patch if i % 2 == 0 else "", "gold-or-empty")
             for i, t in enumerate(suite.tasks)]
    write_all_preds(tmp_path / "all_preds.jsonl", preds)
    proc = run_cli("eval", str(ROOT / "swe_tasks" / "toolz"), "--predictions", str(tmp_path / "all_preds.jsonl"),
                   "--workers", "2", "--out", str(tmp_path / "eval"), "--sandbox", "local", "--json", timeout=1800)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    gold_ids = sorted(p.instance_id for p in preds if p.model_patch)
    assert summary["resolved_ids"] == gold_ids
    assert summary["empty_patch_ids"] == sorted(p.instance_id for p in preds if not p.model_patch)
    for instance_id in gold_ids:
        entry = json.loads((tmp_path / "eval" / instance_id / "report.json").read_text())[instance_id]
        assert entry["resolved"] and not entry["tests_status"]["FAIL_TO_PASS"]["failure"]
