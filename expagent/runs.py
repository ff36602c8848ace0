"""Past runs under ``$EXPAGENT_HOME/runs``: what each directory holds, read back as one typed summary.

Two layouts exist: a ``fix`` (or ``traj replay``) run directory holds ``trajectory.json``; a suite ``replay`` holds
``run.json`` and ``results.jsonl``. Neither is changed here; unreadable directories are listed as such.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    id: str  # the directory's name
    path: str
    kind: str  # fix | traj-replay | replay | unknown
    date: str  # ISO time the run started
    target: str  # the repository (fix) or the suite (replay)
    status: str  # the agent's exit status (fix) or finished/partial (replay)
    resolved: str  # fix: the tests' verdict; replay: "x/y" tasks resolved
    steps: int | None = None
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None


def _mtime_iso(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds")


def _fix_summary(run_dir: Path, data: dict[str, Any]) -> RunSummary:
    source = (data.get("issue") or {}).get("source") or ""
    totals = data.get("totals") or {}
    outcome = data.get("outcome") or {}
    return RunSummary(
        id=run_dir.name, path=str(run_dir), kind="traj-replay" if source.startswith("replay of") else "fix",
        date=data.get("created_at") or _mtime_iso(run_dir), target=(data.get("repo") or {}).get("path") or "",
        status=data.get("exit_status") or "running", resolved=outcome.get("verdict") or "unknown",
        steps=len(data.get("steps") or []), cost=totals.get("cost"))


def _replay_summary(run_dir: Path, meta: dict[str, Any]) -> RunSummary:
    from expagent.tasks.results import read_results

    planned = meta.get("tasks") or []
    try:
        rows = read_results(run_dir) if (run_dir / "results.jsonl").exists() else []
    except Exception as exc:  # a damaged results file: the run is still listed
        log.debug("cannot read results of %s: %s", run_dir, exc)
        rows = []
    costs = [r.cost for r in rows]
    return RunSummary(
        id=run_dir.name, path=str(run_dir), kind="replay",
        date=_started(meta.get("started_at")) or _mtime_iso(run_dir),
        target=meta.get("suite_name") or meta.get("suite") or "",
        status="finished" if planned and len(rows) >= len(planned) else f"partial {len(rows)}/{len(planned)}",
        resolved=f"{sum(1 for r in rows if r.resolved)}/{len(rows)}", steps=sum(r.steps for r in rows),
        cost=None if not costs or any(c is None for c in costs) else round(sum(costs), 6))


def _started(stamp: str | None) -> str:
    try:
        return datetime.strptime(stamp or "", "%Y%m%d-%H%M%S").astimezone().isoformat(timespec="seconds")
    except ValueError:
        return ""


def summarize_run(run_dir: Path) -> RunSummary:
    """The summary of one run directory (kind ``unknown`` when it holds neither layout)."""
    trajectory = run_dir / "trajectory.json"
    if trajectory.is_file():
        data = _read_json(trajectory)
        if isinstance(data, dict):
            return _fix_summary(run_dir, data)
    elif (run_dir / "run.json").is_file():
        meta = _read_json(run_dir / "run.json")
        if isinstance(meta, dict):
            return _replay_summary(run_dir, meta)
    return RunSummary(id=run_dir.name, path=str(run_dir), kind="unknown", date=_mtime_iso(run_dir), target="",
                      status="unreadable", resolved="-")


def list_runs(root: Path, kind: str | None = None) -> list[RunSummary]:
    """Every run under ``root``, newest first; ``kind`` keeps only fix, traj-replay or replay runs."""
    if not root.is_dir():
        return []
    runs = [summarize_run(d) for d in root.iterdir() if d.is_dir()]
    if kind:
        runs = [r for r in runs if r.kind == kind]
    return sorted(runs, key=lambda r: (r.date, r.id), reverse=True)
