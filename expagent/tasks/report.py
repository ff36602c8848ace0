"""Reports on replay runs: per-task and total numbers, a paired comparison of two runs, plots.

Inputs are run directories holding ``results.jsonl`` (see ``expagent.tasks.results``).

Paired comparison (two runs): only tasks present and graded in both runs count. The difference
is ``resolve rate(B) - resolve rate(A)`` over those tasks; its 95% interval comes from a paired
bootstrap: the common tasks are resampled with replacement ``BOOTSTRAP_SAMPLES`` times with a
fixed seed (``BOOTSTRAP_SEED``), the mean per-task difference is taken each time, and the 2.5th
and 97.5th percentiles are reported. Same inputs, same interval.

The other per-task numbers (steps, tokens, cost, wall time) are compared the same way: the mean
per-task difference B - A over the pairs where both values are known, with its paired bootstrap
interval. Each run is labelled from its ``run.json`` (memory mode, model, offline demo, date).

Outputs (``write_report``): ``report.json`` (everything below), ``report.png`` (cumulative
resolved tasks, steps and, when any cost is known, cost along the task sequence, one line per run)
and ``report.html`` (the tables with the PNG embedded, one self-contained file). The plot needs
matplotlib (``pip install 'expagent[plots]'``); without it the report says so and has no plot.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
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
    meta: dict[str, Any] = field(default_factory=dict)  # the run's run.json, when it has one

    @property
    def memory_mode(self) -> str:
        modes = sorted({r.memory_mode for r in self.rows if r.memory_mode})
        return self.meta.get("memory_mode") or (", ".join(modes) if modes else "?")

    @property
    def model(self) -> str:
        return str(self.meta.get("model") or "?")

    @property
    def offline_demo(self) -> bool:
        return bool(self.meta.get("offline_demo"))

    @property
    def date(self) -> str:
        stamp = str(self.meta.get("started_at") or (self.rows[0].started_at if self.rows else ""))
        if len(stamp) >= 8 and stamp[:8].isdigit():  # 20261201-213000
            return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
        return stamp[:10] or "?"

    @property
    def label(self) -> str:
        """What a reader must know to compare this run with another: memory, model, demo or not, date."""
        model = "offline demo (oracle)" if self.offline_demo else self.model
        return f"memory {self.memory_mode} · {model} · {self.date}"


def load_run(path: str | Path) -> Run:
    path = Path(path)
    meta: dict[str, Any] = {}
    if (path / "run.json").is_file():
        try:
            meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            meta = {}  # a damaged run.json only costs the labels; results.jsonl is the record
    return Run(name=path.resolve().name, path=path, rows=read_results(path), meta=meta if isinstance(meta, dict) else {})


def _sum_known(values) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 6) if known else None


def summarize(run: Run) -> dict[str, Any]:
    rows = run.rows
    graded = [r for r in rows if r.resolved is not None]
    resolved = sum(1 for r in rows if r.resolved)
    return {
        "name": run.name,
        "label": run.label,
        "memory_mode": run.memory_mode,
        "model": run.model,
        "offline_demo": run.offline_demo,
        "date": run.date,
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

    def paired(attr: str) -> dict[str, Any]:
        values = [(getattr(x, attr), getattr(y, attr)) for x, y in pairs]
        values = [(float(u), float(v)) for u, v in values if u is not None and v is not None]
        if not values:
            return {"pairs": 0, "mean_a": None, "mean_b": None, "mean_diff": None, "ci95": None}
        us, vs = [u for u, _ in values], [v for _, v in values]
        low, high = paired_bootstrap(us, vs)
        return {"pairs": len(values), "mean_a": round(sum(us) / len(us), 4), "mean_b": round(sum(vs) / len(vs), 4),
                "mean_diff": round(sum(v - u for u, v in values) / len(values), 4), "ci95": [low, high]}

    metrics = {name: paired(name) for name in ("steps", "tokens", "cost", "wall_time")}
    return {
        "a": run_a.name,
        "b": run_b.name,
        "a_label": run_a.label,
        "b_label": run_b.label,
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
        "per_task": metrics,  # mean per-task B - A with paired intervals, over pairs where both are known
        "mean_steps_diff": metrics["steps"]["mean_diff"],
        "mean_cost_diff": metrics["cost"]["mean_diff"],
        "mean_wall_time_diff": metrics["wall_time"]["mean_diff"],
    }


def build_report(runs: list[Run]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "runs": [summarize(run) for run in runs],
        "tasks": {run.name: task_rows(run) for run in runs},
        "plot_panels": [title for title, _, _ in plot_panels(runs)],
    }
    if len(runs) == 2:
        report["comparison"] = compare(runs[0], runs[1])
    return report


def _cumulative(rows: list[ResultRow], value) -> list[float]:
    """Running totals from 0 (before the first task nothing is resolved or spent)."""
    totals, total = [0.0], 0.0
    for row in rows:
        total += float(value(row) or 0.0)
        totals.append(total)
    return totals


# one look per run, distinct even in grey and with lines drawn thinner on top, so that coinciding curves
# (memory on and off resolving the same tasks) stay visible as a thick line with a thin one inside it
_STYLES = [dict(linestyle="-", marker="o", linewidth=4.0, markersize=7, alpha=0.55),
           dict(linestyle="--", marker="s", linewidth=2.2, markersize=4),
           dict(linestyle=":", marker="^", linewidth=1.6, markersize=4),
           dict(linestyle="-.", marker="x", linewidth=1.2, markersize=5)]


class PlotsUnavailable(Exception):
    """matplotlib is not installed (it comes with ``expagent[plots]``)."""


def plot_panels(runs: list[Run]) -> list[tuple[str, Any, bool]]:
    """(title, per-task value, integer axis) of each panel; no cost panel when every cost is unknown."""
    panels = [("cumulative resolved tasks", lambda r: 1 if r.resolved else 0, True),
              ("cumulative agent steps", lambda r: r.steps, True)]
    if any(r.cost is not None for run in runs for r in run.rows):
        panels.append(("cumulative cost (USD, unknown counted as 0)", lambda r: r.cost, False))
    return panels


def plot(runs: list[Run], dest: Path) -> Path:
    """Cumulative resolved tasks, steps and (when any cost is known) cost along the task sequence, per run."""
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable("no plot: matplotlib is not installed (pip install 'expagent[plots]')") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = plot_panels(runs)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6))
    for (title, value, integer), ax in zip(panels, axes):
        for index, run in enumerate(runs):
            ys = _cumulative(run.rows, value)
            style = _STYLES[index % len(_STYLES)]
            ax.plot(range(len(ys)), ys, drawstyle="steps-post" if integer else "default",
                    label=f"{run.name}\n{run.label}", zorder=2 + index, **style)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("task (in run order)")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if integer:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(runs), 2), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(runs) - 1) // 2), 1, 1))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=100)
    plt.close(fig)
    return dest


def display(key: str, value: Any) -> str:
    """A value as a person reads it: yes/no, percentages, money, plain lists; raw numbers stay in the JSON."""
    if value is None:
        return {"cost": "unknown", "resolved": "not graded"}.get(key, "-")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "resolve_rate":
        return f"{value:.1%}"
    if key == "cost" or key.endswith("_cost"):
        return f"${value:.4f}"
    if key == "wall_time":
        return f"{value:.1f} s"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _signed(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:+.4g}{unit}"


def comparison_rows(comparison: dict[str, Any]) -> list[dict[str, str]]:
    """The paired comparison as rows: metric, mean A, mean B, mean B - A, 95% interval."""
    def interval(ci, percent=False):
        if not ci:
            return "-"
        return f"{ci[0]:+.1%} .. {ci[1]:+.1%}" if percent else f"{ci[0]:+.4g} .. {ci[1]:+.4g}"

    n = comparison["paired_tasks"]
    rows = [{"metric": "resolve rate", "A": display("resolve_rate", comparison["resolved_a"] / n if n else 0.0),
             "B": display("resolve_rate", comparison["resolved_b"] / n if n else 0.0),
             "B - A": f"{comparison['resolve_rate_diff']:+.1%}", "95% interval": interval(comparison["ci95"], True),
             "pairs": str(n)}]
    names = {"steps": "steps per task", "tokens": "tokens per task", "cost": "cost per task (USD)",
             "wall_time": "time per task (s)"}
    for key, name in names.items():
        m = comparison.get("per_task", {}).get(key) or {}
        if not m.get("pairs"):
            rows.append({"metric": name, "A": "unknown", "B": "unknown", "B - A": "-", "95% interval": "-",
                         "pairs": "0"})
            continue
        rows.append({"metric": name, "A": f"{m['mean_a']:.4g}", "B": f"{m['mean_b']:.4g}",
                     "B - A": _signed(m["mean_diff"]), "95% interval": interval(m["ci95"]), "pairs": str(m["pairs"])})
    return rows


RUN_COLUMNS = ("name", "memory_mode", "model", "offline_demo", "date", "tasks", "graded", "resolved", "resolve_rate",
               "steps", "prompt_tokens", "completion_tokens", "cost", "cost_unknown_tasks", "wall_time")


def run_table(report: dict[str, Any], compact: bool = False) -> list[dict[str, str]]:
    if not compact:
        return [{k: display(k, run.get(k)) for k in RUN_COLUMNS} for run in report["runs"]]
    rows = []
    for run in report["runs"]:  # fits a terminal: the labels are printed above the table
        cost = display("cost", run["cost"])
        if run["cost"] is not None and run["cost_unknown_tasks"]:
            cost += f" (+{run['cost_unknown_tasks']} unknown)"
        rows.append({"run": run["name"], "memory": run["memory_mode"],
                     "resolved": f"{run['resolved']}/{run['tasks']} ({run['resolve_rate']:.1%})",
                     "steps": str(run["steps"]), "tokens": str(run["prompt_tokens"] + run["completion_tokens"]),
                     "cost": cost, "time": display("wall_time", run["wall_time"])})
    return rows


def task_table(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{k: display(k, v) for k, v in row.items()} for row in rows]


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any], png: Path | None) -> str:
    image = base64.b64encode(png.read_bytes()).decode("ascii") if png is not None else ""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>expagent report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}th{background:#eee}img{max-width:100%;height:auto}</style></head><body>",
        "<h1>expagent report</h1>",
        "<ul>" + "".join(f"<li><b>{html.escape(run['name'])}</b>: {html.escape(run['label'])}"
                         + (" <b>(offline demo: says nothing about an agent)</b>" if run.get("offline_demo") else "")
                         + "</li>" for run in report["runs"]) + "</ul>",
        "<h2>Runs</h2>",
        _html_table(run_table(report)),
    ]
    comparison = report.get("comparison")
    if comparison:
        parts.append(f"<h2>Paired comparison: B = {html.escape(comparison['b'])} ({html.escape(comparison['b_label'])})"
                     f" against A = {html.escape(comparison['a'])} ({html.escape(comparison['a_label'])})</h2>")
        parts.append(_html_table(comparison_rows(comparison)))
        parts.append(
            f"<p>Intervals: 95% paired bootstrap over the tasks both runs graded "
            f"({comparison['bootstrap']['samples']} samples, seed {comparison['bootstrap']['seed']}).</p>")
        parts.append(f"<p>Gained: {html.escape(', '.join(comparison['gained']) or 'none')}<br>"
                     f"Lost: {html.escape(', '.join(comparison['lost']) or 'none')}</p>")
    if image:
        parts.append(f"<h2>Along the sequence</h2><img alt='cumulative plot' src='data:image/png;base64,{image}'>")
    else:
        parts.append(f"<p>{html.escape(report.get('plot_note') or 'no plot')}</p>")
    for name, rows in report["tasks"].items():
        parts.append(f"<h2>Tasks: {html.escape(name)}</h2>")
        parts.append(_html_table(task_table(rows)))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(runs: list[Run], out: Path) -> dict[str, Any]:
    """Write ``report.json``, ``report.png`` and ``report.html`` into ``out``; return the report."""
    report = redact_data(build_report(runs))
    out.mkdir(parents=True, exist_ok=True)
    try:
        png: Path | None = plot(runs, out / "report.png")
    except PlotsUnavailable as exc:
        png, report["plot_note"] = None, str(exc)
    atomic_write_text(out / "report.html", render_html(report, png))
    report["files"] = {"json": str(out / "report.json"), "png": str(png) if png else None,
                       "html": str(out / "report.html")}
    atomic_write_json(out / "report.json", report)
    return report


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)


def print_report(console, report: dict[str, Any]) -> None:
    """The report for a terminal: run labels, per-task tables, totals and the paired comparison (rich)."""
    from rich.table import Table
    from rich.text import Text

    def table(title: str, rows: list[dict[str, str]]) -> Table:
        out = Table(title=Text(title))
        for column in (rows[0] if rows else {"": ""}):
            out.add_column(Text(column), overflow="fold")
        for row in rows:
            cells = []
            for key, value in row.items():
                style = {"yes": "green", "no": "red"}.get(value, "") if key.startswith("resolved") else ""
                cells.append(Text(value, style=style))
            out.add_row(*cells)
        return out

    for run in report["runs"]:
        demo = "  (OFFLINE DEMO: says nothing about an agent)" if run.get("offline_demo") else ""
        console.print(Text.assemble((run["name"], "bold"), f": {run['label']}{demo}"))
    names = list(report["tasks"])
    if len(names) == 2:
        a, b = (report["tasks"][n] for n in names)
        by_b = {row["instance_id"]: row for row in b}
        rows = []
        for row in a:
            other = by_b.get(row["instance_id"], {})
            rows.append({"task": row["instance_id"], f"resolved A": display("resolved", row["resolved"]),
                         "resolved B": display("resolved", other.get("resolved")) if other else "-",
                         "steps A / B": f"{row['steps']} / {other.get('steps', '-')}",
                         "tokens A / B": f"{row['tokens']} / {other.get('tokens', '-')}",
                         "cost A / B": f"{display('cost', row['cost'])} / {display('cost', other.get('cost'))}",
                         "time A / B (s)": f"{row['wall_time']:.0f} / {other.get('wall_time', 0):.0f}"})
        console.print(table(f"tasks: A = {names[0]}, B = {names[1]}", rows))
    else:
        for name in names:
            console.print(table(f"tasks: {name}", task_table(report["tasks"][name])))
    console.print(table("runs", run_table(report, compact=True)))
    comparison = report.get("comparison")
    if comparison:
        console.print(table(f"paired comparison: B = {comparison['b']} against A = {comparison['a']} "
                            f"(95% paired bootstrap)", comparison_rows(comparison)))
        console.print(Text(f"gained: {', '.join(comparison['gained']) or 'none'}"))
        console.print(Text(f"lost:   {', '.join(comparison['lost']) or 'none'}"))
    if report.get("plot_note"):
        console.print(Text(report["plot_note"], style="yellow"))
    console.print(Text(f"report: {report['files']['html']}"))
