"""Reports on replay runs: per-task and total numbers, a paired comparison of two runs, plots.

Inputs are run directories holding ``results.jsonl`` (see ``expagent.tasks.results``).

Paired comparison (two runs): only tasks present and graded in both runs count. The difference
is ``resolve rate(B) - resolve rate(A)`` over those tasks; its 95% interval comes from a paired
bootstrap: the common tasks are resampled with replacement ``BOOTSTRAP_SAMPLES`` times with a
fixed seed (``BOOTSTRAP_SEED``), the mean per-task difference is taken each time, and the 2.5th
and 97.5th percentiles are reported. Same inputs, same interval.

Outputs (``write_report``): ``report.json`` (everything below), ``report.png`` (cumulative
resolved tasks and cumulative cost along the task sequence, one line per run) and
``report.html`` (the tables with the PNG embedded, one self-contained file).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expagent.fsutil import atomic_write_json, atomic_write_text
from expagent.redact import redact_data
from expagent.tasks.results import ResultRow, read_results

BOOTSTRAP_SAMPLES = 10000
BOOTSTRAP_SEED = 20240611


@dataclass
class Run:
    name: str
    path: Path
    rows: list[ResultRow]


def load_run(path: str | Path) -> Run:
    path = Path(path)
    return Run(name=path.resolve().name, path=path, rows=read_results(path))


def _sum_known(values) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 6) if known else None


def summarize(run: Run) -> dict[str, Any]:
    rows = run.rows
    graded = [r for r in rows if r.resolved is not None]
    resolved = sum(1 for r in rows if r.resolved)
    return {
        "name": run.name,
        "path": str(run.path),
        "tasks": len(rows),
        "graded": len(graded),
        "resolved": resolved,
        "resolve_rate": round(resolved / len(rows), 4) if rows else 0.0,
        "steps": sum(int(r.steps or 0) for r in rows),
        "prompt_tokens": sum(int(r.prompt_tokens or 0) for r in rows),
        "completion_tokens": sum(int(r.completion_tokens or 0) for r in rows),
        "cost": _sum_known(r.cost for r in rows),
        "cost_unknown_tasks": sum(1 for r in rows if r.cost is None),
        "wall_time": round(sum(float(r.wall_time or 0.0) for r in rows), 2),
        "memory_modes": sorted({r.memory_mode for r in rows if r.memory_mode}),
    }


def task_rows(run: Run) -> list[dict[str, Any]]:
    return [
        {
            "instance_id": r.instance_id,
            "resolved": r.resolved,
            "exit_status": r.exit_status,
            "steps": r.steps,
            "tokens": r.tokens,
            "cost": r.cost,
            "wall_time": round(float(r.wall_time or 0.0), 2),
            "injected": len(r.injected_ids or []),
            "grade_reason": r.grade_reason,
        }
        for r in run.rows
    ]


def paired_bootstrap(a: list[int], b: list[int], samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% interval of ``mean(b - a)`` over paired outcomes, by resampling pairs (fixed seed)."""
    import numpy as np

    if not a:
        return (0.0, 0.0)
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(samples, len(diffs)))
    means = diffs[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (round(float(low), 4), round(float(high), 4))


def compare(run_a: Run, run_b: Run) -> dict[str, Any]:
    by_b = {r.instance_id: r for r in run_b.rows}
    pairs = [(r, by_b[r.instance_id]) for r in run_a.rows
             if r.instance_id in by_b and r.resolved is not None and by_b[r.instance_id].resolved is not None]
    a = [int(bool(x.resolved)) for x, _ in pairs]
    b = [int(bool(y.resolved)) for _, y in pairs]
    n = len(pairs)
    low, high = paired_bootstrap(a, b)

    def mean_diff(attr: str) -> float | None:
        values = [(getattr(x, attr), getattr(y, attr)) for x, y in pairs]
        values = [(u, v) for u, v in values if u is not None and v is not None]
        return round(sum(v - u for u, v in values) / len(values), 4) if values else None

    return {
        "a": run_a.name,
        "b": run_b.name,
        "paired_tasks": n,
        "only_in_a": [r.instance_id for r in run_a.rows if r.instance_id not in by_b],
        "only_in_b": [r.instance_id for r in run_b.rows if r.instance_id not in {x.instance_id for x in run_a.rows}],
        "resolved_a": sum(a),
        "resolved_b": sum(b),
        "resolve_rate_diff": round((sum(b) - sum(a)) / n, 4) if n else 0.0,
        "ci95": [low, high],
        "bootstrap": {"samples": BOOTSTRAP_SAMPLES, "seed": BOOTSTRAP_SEED},
        "gained": [x.instance_id for x, y in pairs if y.resolved and not x.resolved],
        "lost": [x.instance_id for x, y in pairs if x.resolved and not y.resolved],
        "mean_steps_diff": mean_diff("steps"),
        "mean_cost_diff": mean_diff("cost"),
        "mean_wall_time_diff": mean_diff("wall_time"),
    }


def build_report(runs: list[Run]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "runs": [summarize(run) for run in runs],
        "tasks": {run.name: task_rows(run) for run in runs},
    }
    if len(runs) == 2:
        report["comparison"] = compare(runs[0], runs[1])
    return report


def _cumulative(rows: list[ResultRow]) -> tuple[list[int], list[float]]:
    resolved, cost, r_total, c_total = [], [], 0, 0.0
    for row in rows:
        r_total += 1 if row.resolved else 0
        c_total += float(row.cost or 0.0)
        resolved.append(r_total)
        cost.append(c_total)
    return resolved, cost


def plot(runs: list[Run], dest: Path) -> Path:
    """Cumulative resolved tasks and cumulative cost along the task sequence, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_res, ax_cost) = plt.subplots(1, 2, figsize=(10, 4))
    for run in runs:
        resolved, cost = _cumulative(run.rows)
        # start at (0, 0): before the first task nothing is resolved and nothing is spent
        resolved, cost = [0, *resolved], [0.0, *cost]
        xs = list(range(0, len(run.rows) + 1))
        ax_res.step(xs, resolved, where="post", label=run.name)
        ax_cost.plot(xs, cost, marker=".", label=run.name)
    ax_res.set_title("cumulative resolved tasks")
    ax_res.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_cost.set_title("cumulative cost (USD)")
    for ax in (ax_res, ax_cost):
        ax.set_xlabel("task (in run order)")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=100)
    plt.close(fig)
    return dest


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any], png: Path) -> str:
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>expagent report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}th{background:#eee}</style></head><body>",
        "<h1>expagent report</h1>",
        "<h2>Runs</h2>",
        _html_table([{k: v for k, v in run.items() if k != "path"} for run in report["runs"]]),
    ]
    comparison = report.get("comparison")
    if comparison:
        parts.append("<h2>Paired comparison</h2>")
        parts.append(
            f"<p>{comparison['paired_tasks']} paired tasks; resolve rate {html.escape(comparison['b'])} minus "
            f"{html.escape(comparison['a'])}: {comparison['resolve_rate_diff']:+.3f} "
            f"(95% paired bootstrap interval {comparison['ci95'][0]:+.3f} to {comparison['ci95'][1]:+.3f}, "
            f"{comparison['bootstrap']['samples']} samples, seed {comparison['bootstrap']['seed']}).</p>"
        )
        parts.append(f"<p>Gained: {html.escape(', '.join(comparison['gained']) or 'none')}<br>"
                     f"Lost: {html.escape(', '.join(comparison['lost']) or 'none')}</p>")
    parts.append(f"<h2>Along the sequence</h2><img alt='cumulative plot' src='data:image/png;base64,{image}'>")
    for name, rows in report["tasks"].items():
        parts.append(f"<h2>Tasks: {html.escape(name)}</h2>")
        parts.append(_html_table(rows))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(runs: list[Run], out: Path) -> dict[str, Any]:
    """Write ``report.json``, ``report.png`` and ``report.html`` into ``out``; return the report."""
    report = redact_data(build_report(runs))
    out.mkdir(parents=True, exist_ok=True)
    png = plot(runs, out / "report.png")
    atomic_write_text(out / "report.html", render_html(report, png))
    report["files"] = {"json": str(out / "report.json"), "png": str(png), "html": str(out / "report.html")}
    atomic_write_json(out / "report.json", report)
    return report


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)
