"""``expagent report`` on run directories: totals, paired comparison with a fixed-seed bootstrap, plots, HTML."""

import json

import pytest
from typer.testing import CliRunner

from expagent.errors import ExpagentError
from expagent.tasks.report import compare, load_run, paired_bootstrap
from expagent.tasks.results import ResultRow, append_result, read_results


def make_run(path, outcomes, memory_mode, cost=0.1):
    for i, resolved in enumerate(outcomes):
        append_result(path, ResultRow(
            instance_id=f"t-{i}", repo="o/r", resolved=resolved, exit_status="submitted", steps=10 + i,
            prompt_tokens=1000, completion_tokens=100, cost=cost, wall_time=30.0, memory_mode=memory_mode,
            injected_ids=["m1"] if memory_mode == "on" else [], trajectory=f"t-{i}/traj.json",
            patch=f"t-{i}/patch.diff", grade_reason="" if resolved else "1 required test(s) not passing",
            started_at="2024-01-01T00:00:00Z"))
    return path


def cli(*args):
    from expagent.cli import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


def test_result_rows_round_trip_and_last_row_wins(tmp_path):
    row = ResultRow(instance_id="a", resolved=True, cost=None, injected_ids=["x"])
    assert ResultRow.from_dict(row.to_dict()) == row
    append_result(tmp_path, row)
    append_result(tmp_path, ResultRow(instance_id="b", resolved=False))
    append_result(tmp_path, ResultRow(instance_id="a", resolved=False))  # a resumed run re-did task a
    rows = read_results(tmp_path)
    assert [(r.instance_id, r.resolved) for r in rows] == [("a", False), ("b", False)]
    (tmp_path / "results.jsonl").write_text('{"resolved": true}\n')
    with pytest.raises(ExpagentError, match="results.jsonl:1: malformed results row"):
        read_results(tmp_path)


def test_paired_comparison_flips_and_interval(tmp_path):
    off = make_run(tmp_path / "off", [False, False, True, True, False, True], "off")
    on = make_run(tmp_path / "on", [True, True, True, False, False, True], "on")
    c = compare(load_run(off), load_run(on))
    assert c["paired_tasks"] == 6
    assert c["gained"] == ["t-0", "t-1"] and c["lost"] == ["t-3"]
    assert c["resolve_rate_diff"] == pytest.approx(1 / 6, abs=1e-4)
    low, high = c["ci95"]
    assert low < c["resolve_rate_diff"] < high
    assert compare(load_run(off), load_run(on))["ci95"] == [low, high]  # fixed seed: same interval
    assert paired_bootstrap([1, 0, 1], [1, 0, 1]) == (0.0, 0.0)


def test_only_common_graded_tasks_are_paired(tmp_path):
    a = make_run(tmp_path / "a", [True, False, None], "off")
    b = make_run(tmp_path / "b", [True, True], "on")
    c = compare(load_run(a), load_run(b))
    assert c["paired_tasks"] == 2 and c["only_in_a"] == ["t-2"] and c["gained"] == ["t-1"]


def test_report_cli_writes_png_html_and_json(tmp_path):
    off = make_run(tmp_path / "off", [False, True, False], "off", cost=0.2)
    on = make_run(tmp_path / "on", [True, True, False], "on", cost=0.1)
    out = tmp_path / "cmp"
    result = cli("report", str(off), str(on), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    summary = {r["name"]: r for r in report["runs"]}
    assert summary["off"]["resolved"] == 1 and summary["on"]["resolved"] == 2
    assert summary["off"]["cost"] == pytest.approx(0.6) and summary["on"]["steps"] == 33
    assert report["comparison"]["gained"] == ["t-0"]
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "t-2" in html and "Paired comparison" in html
    assert json.loads((out / "report.json").read_text())["comparison"]["paired_tasks"] == 3


def test_report_single_run_and_missing_results(tmp_path):
    run = make_run(tmp_path / "r", [True, False], "on")
    result = cli("report", str(run))
    assert result.exit_code == 0, result.output
    assert "50.0%" in result.output
    assert (run / "report" / "report.html").is_file()
    from conftest import run_cli

    missing = run_cli("report", str(tmp_path / "nope"))  # through main: the one-line error, not a traceback
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr == f"error: no results.jsonl in {tmp_path / 'nope'} (is it a replay run directory?)\n"


def labelled_run(path, outcomes, memory_mode, *, model="openai/gpt-4o", demo=False, cost=0.1, steps=10):
    make_run(path, outcomes, memory_mode, cost=cost)
    rows = read_results(path)
    (path / "results.jsonl").unlink()
    for i, row in enumerate(rows):
        row.steps = steps + i
        append_result(path, row)
    (path / "run.json").write_text(json.dumps({"model": "oracle" if demo else model, "memory_mode": memory_mode,
                                               "offline_demo": demo, "started_at": "20261201-101500"}))
    return path


def test_report_labels_runs_and_shows_paired_deltas(tmp_path):
    off = labelled_run(tmp_path / "off", [False, True, True, False], "off", steps=20, cost=0.3)
    on = labelled_run(tmp_path / "on", [True, True, True, False], "on", steps=12, cost=0.2)
    out = tmp_path / "cmp"
    result = cli("report", str(off), str(on), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    labels = {r["name"]: r["label"] for r in report["runs"]}
    assert labels == {"off": "memory off · openai/gpt-4o · 2026-12-01", "on": "memory on · openai/gpt-4o · 2026-12-01"}
    per_task = report["comparison"]["per_task"]
    assert per_task["steps"]["mean_diff"] == -8 and per_task["steps"]["ci95"] == [-8.0, -8.0]
    assert per_task["cost"]["mean_diff"] == pytest.approx(-0.1)
    assert per_task["tokens"]["mean_diff"] == 0 and per_task["wall_time"]["pairs"] == 4
    html = (out / "report.html").read_text()
    for text in ("memory on · openai/gpt-4o · 2026-12-01", "steps per task", "-8", "cost per task (USD)",
                 "95% interval"):
        assert text in html, text
    assert "['on']" not in html and ">True<" not in html and ">1.0<" not in html
    # the terminal view: labels, readable values, the deltas table
    shown = cli("report", str(off), str(on), "--out", str(out))
    assert "memory on · openai/gpt-4o" in shown.output and "steps per task" in shown.output
    assert "yes" in shown.output and "True" not in shown.output


def test_offline_demo_is_labelled_and_unknown_costs_get_no_plot(tmp_path):
    demo = labelled_run(tmp_path / "demo", [True, True], "on", demo=True, cost=None)
    report = json.loads(cli("report", str(demo), "--json").stdout)
    assert report["runs"][0]["label"] == "memory on · offline demo (oracle) · 2026-12-01"
    assert report["plot_panels"] == ["cumulative resolved tasks", "cumulative agent steps"]
    html = (demo / "report" / "report.html").read_text()
    assert "offline demo: says nothing about an agent" in html and "unknown" in html
    assert "OFFLINE DEMO" in cli("report", str(demo)).output
