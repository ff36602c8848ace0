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
