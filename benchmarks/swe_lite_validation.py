"""Validate the runnable SWE-bench Lite dev instances with expagent's grader (local backend).

For each instance: set up (or reuse) its environment, grade the gold patch (must resolve) and
the empty patch (must not). Records the share of gold patches that resolve, environment set-up
time first vs cached, and the harness overhead per task excluding test time.

The repositories are public but never committed: bring clones in and point ``--repos`` at a
directory of ``<owner>__<name>`` clones (see docs/tasks.md). Usage::

    python benchmarks/swe_lite_validation.py --repos /tmp/swe-repos [--instance ID ...]

Writes benchmarks/results/swe_lite_validation.json and .md (after every instance, so an
interrupted run keeps what it measured). Environments are cached under --home
(default benchmarks/.work/home, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _max(values):
    values = [v for v in values if v is not None]
    return round(max(values), 3) if values else None


def summarize(rows: list[dict]) -> dict:
    runnable = [r for r in rows if r["status"] == "graded"]
    gold_ok = [r for r in runnable if r["gold_resolved"]]
    empty_ok = [r for r in runnable if r["empty_resolved"] is False]
    return {
        "instances": len(rows),
        "runnable": len(runnable),
        "not_runnable": {r["instance_id"]: r["why"] for r in rows if r["status"] != "graded"},
        "gold_resolved": len(gold_ok),
        "gold_resolved_share_of_runnable": round(len(gold_ok) / len(runnable), 3) if runnable else None,
        "gold_resolved_share_of_all": round(len(gold_ok) / len(rows), 3) if rows else None,
        "empty_not_resolved": len(empty_ok),
        "env_setup_first_s": {"median": _median([r.get("env_first_s") for r in rows]),
                              "max": _max([r.get("env_first_s") for r in rows])},
        "env_setup_cached_s": {"median": _median([r.get("env_cached_s") for r in rows]),
                               "max": _max([r.get("env_cached_s") for r in rows])},
        "harness_overhead_s": {"median": _median([r.get("harness_s") for r in runnable]),
                               "max": _max([r.get("harness_s") for r in runnable])},
        "test_time_s": {"median": _median([r.get("tests_s") for r in runnable]),
                        "max": _max([r.get("tests_s") for r in runnable])},
    }


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def write(rows: list[dict], meta: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    data = {"meta": meta, "summary": summary, "instances": rows}
    (RESULTS / "swe_lite_validation.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [
        "# SWE-bench Lite dev: gold/empty validation with expagent's grader (local backend)",
        "",
        f"Run {meta['started_at']} on {meta['machine']}; tasks: `{meta['tasks']}`.",
        "",
        f"- runnable here: {summary['runnable']}/{summary['instances']}",
        f"- gold patch resolves: {summary['gold_resolved']}/{summary['runnable']} runnable "
        f"({summary['gold_resolved']}/{summary['instances']} of all)",
        f"- empty patch does not resolve: {summary['empty_not_resolved']}/{summary['runnable']}",
        f"- environment set-up, first (build) median {summary['env_setup_first_s']['median']} s, "
        f"max {summary['env_setup_first_s']['max']} s; cached median {summary['env_setup_cached_s']['median']} s, "
        f"max {summary['env_setup_cached_s']['max']} s",
        f"- harness overhead per grade excluding test time: median {summary['harness_overhead_s']['median']} s, "
        f"max {summary['harness_overhead_s']['max']} s (test time median {summary['test_time_s']['median']} s)",
        "",
        "| instance | status | gold | empty | env first (s) | env cached (s) | harness (s) | tests (s) | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = (r.get("why") or "").replace("|", "/")[:300]
        lines.append(
            f"| {r['instance_id']} | {r['status']} | {_fmt(r.get('gold_resolved'))} | {_fmt(r.get('empty_resolved'))} | "
            f"{_fmt(r.get('env_first_s'))} | {_fmt(r.get('env_cached_s'))} | {_fmt(r.get('harness_s'))} | "
            f"{_fmt(r.get('tests_s'))} | {note} |"
        )
    if meta.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in meta["notes"]]
    (RESULTS / "swe_lite_validation.md").write_text("\n".join(lines) + "\n")


def missing_blobs(repo: Path, commit: str) -> list[str]:
    """Files at ``commit`` whose content the clone lacks (snapshots may omit their largest files)."""
    import subprocess

    proc = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-l", commit], capture_output=True, text=True)
    missing = []
    for line in proc.stdout.splitlines():
        meta, _, path = line.partition("\t")
        parts = meta.split()
        if len(parts) == 4 and parts[1] == "blob" and parts[3] == "BAD":
            missing.append(path)
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=str(ROOT.parent / "shared" / "data" / "swe-lite-dev-23.jsonl"))
    parser.add_argument("--repos", default=os.environ.get("EXPAGENT_REPOS", "/tmp/swe-repos"))
    parser.add_argument("--home", default=str(ROOT / "benchmarks" / ".work" / "home"))
    parser.add_argument("--instance", action="append", help="only these instances (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="per-test-run timeout (default: recipe's)")
    parser.add_argument("--resume", action="store_true", help="keep the graded rows of the last results file")
    parser.add_argument("--note", action="append", default=[], help="a note for the results (repeatable)")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json (adding --note)")
    args = parser.parse_args()
    os.environ["EXPAGENT_HOME"] = args.home
    if args.render:
        data = json.loads((RESULTS / "swe_lite_validation.json").read_text())
        data["meta"]["notes"] = [*data["meta"].get("notes", []), *args.note]
        write(data["instances"], data["meta"])
        return 0

    from expagent.errors import ExpagentError
    from expagent.tasks.envs import ensure_env
    from expagent.tasks.grader import grade
    from expagent.tasks.repos import resolve_repo
    from expagent.tasks.suite import load_suite

    suite = load_suite(args.tasks)
    selected = {suite.task(i).instance_id for i in args.instance} if args.instance else None
    tasks = suite.tasks
    meta = {
        "notes": list(args.note),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "tasks": Path(args.tasks).name,
        "sandbox": "local",
    }
    rows: list[dict] = []
    done: dict[str, dict] = {}
    previous = RESULTS / "swe_lite_validation.json"
    if args.resume and previous.is_file():
        old = json.loads(previous.read_text())
        meta["started_at"] = old["meta"]["started_at"]
        meta["notes"] = old["meta"].get("notes", [])
        # keep graded rows, and every row of an instance not selected for this run
        done = {r["instance_id"]: r for r in old["instances"]
                if r["status"] == "graded" or (selected is not None and r["instance_id"] not in selected)}
    for task in tasks:
        if task.instance_id in done and (selected is None or task.instance_id not in selected):
            rows.append(done[task.instance_id])
            continue
        if selected is not None and task.instance_id not in selected:
            continue
        row: dict = {"instance_id": task.instance_id, "repo": task.repo, "version": task.version}
        print(f"== {task.instance_id}", flush=True)
        try:
            source = resolve_repo(suite, task.repo, args.repos)
            missing = missing_blobs(source, task.base_commit)
            row["missing_files"] = missing[:5]
            row["missing_files_count"] = len(missing)
            t = time.monotonic()
            env = ensure_env(task, repos_dir=args.repos, echo=lambda m: print(m, flush=True))
            took = time.monotonic() - t
            # "first" is the build time, whether it happened now or in an earlier run (recorded in env.json)
            row["env_first_s"] = round(took if not env.cached else env.build_seconds, 2)
            t = time.monotonic()
            ensure_env(task, repos_dir=args.repos)
            row["env_cached_s"] = round(time.monotonic() - t, 3)
            row["python"] = env.python_version
            gold = grade(task, task.patch or "", repos_dir=args.repos, timeout=args.timeout)
            empty = grade(task, "", repos_dir=args.repos, timeout=args.timeout)
            row.update(
                status="graded",
                gold_resolved=gold.resolved,
                empty_resolved=empty.resolved,
                harness_s=round(gold.harness_seconds, 3),
                tests_s=round(gold.durations.get("tests", 0.0), 2),
                gold_durations=gold.durations,
                why=gold.reason if not gold.resolved else ("empty patch resolves" if empty.resolved else ""),
            )
            if not gold.resolved and row["missing_files"]:
                # not a grading failure: the local clone lacks files the tests read
                row["status"] = "incomplete clone"
                row["why"] = (f"the local clone lacks {len(missing)} file(s) at base_commit "
                              f"({', '.join(row['missing_files'][:3])}); gold: {gold.reason}")
        except ExpagentError as exc:
            row.update(status="not runnable", why=str(exc))
        print(f"   {row['status']}: gold={row.get('gold_resolved')} empty={row.get('empty_resolved')} "
              f"{row.get('why', '')[:200]}", flush=True)
        rows.append(row)
        write(rows, meta)
    write(rows, meta)
    print(json.dumps(summarize(rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
