"""Harness overhead of one cached grade (environment and install at base_commit already built), per step.

Usage::

    python benchmarks/grade_overhead.py --repos DIR --home DIR [--instance ID ...] [--repeats 3]
                                        [--compare-with DIR] [--tmpdir DIR]

Each configuration grades the empty patch of each instance ``--repeats`` times in a child process (its own
imports, its own code on ``PYTHONPATH``) and records ``GradeResult.durations``; the overhead is the grade's total
minus the test command (``harness_seconds``). ``--compare-with DIR`` measures the expagent code in DIR first (e.g.
``git archive <commit> expagent | tar -x -C DIR``): before/after come from one run under the same machine load.
``--tmpdir DIR`` also measures this code with ``EXPAGENT_GRADE_TMPDIR=DIR`` (``""``: the system's temporary
directory, where the checkouts went before grades chose a tmpfs by default).

Goal (issue 11): harness overhead per grade, excluding tests and builds, under 2 s (median).
Writes benchmarks/results/grade_overhead.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAME = "grade_overhead"
GOAL_S = 2.0
DEFAULT_INSTANCES = ["sympy__sympy-12489", "sphinx-doc__sphinx-7440"]
STEPS = ("resolve", "env", "install", "checkout", "apply", "runtime", "cleanup", "parse")

_CHILD = """
import json, sys
from expagent.tasks.grader import grade
from expagent.tasks.suite import load_suite
suite = load_suite(sys.argv[1])
for instance_id in sys.argv[3:]:
    result = grade(suite.task(instance_id), "", repos_dir=sys.argv[2])
    print(json.dumps({"instance_id": instance_id, "durations": result.durations,
                      "harness_s": round(result.harness_seconds, 3)}), flush=True)
"""


def measure(code: Path, tasks: str, repos: str, home: str, instances: list[str], repeats: int,
            tmpdir: str | None = None) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(code), "EXPAGENT_HOME": home, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("EXPAGENT_GRADE_TMPDIR", None)
    if tmpdir is not None:
        env["EXPAGENT_GRADE_TMPDIR"] = tmpdir
    samples = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", _CHILD, tasks, repos, *instances], env=env, cwd=code,
                              capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"grading with the code in {code} failed: {proc.stderr.strip().splitlines()[-1:]}")
        samples += [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return samples


def summarize(samples: list[dict]) -> dict:
    out = {}
    for instance_id in dict.fromkeys(s["instance_id"] for s in samples):
        mine = [s for s in samples if s["instance_id"] == instance_id]
        out[instance_id] = {
            "harness_s": round(statistics.median(s["harness_s"] for s in mine), 3),
            "steps_s": {step: round(statistics.median(s["durations"].get(step, 0.0) for s in mine), 3)
                        for step in STEPS},
            "tests_s": round(statistics.median(s["durations"].get("tests", 0.0) for s in mine), 3),
            "runs": len(mine),
        }
    out["all"] = {"harness_median_s": round(statistics.median(s["harness_s"] for s in samples), 3)}
    return out


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=str(ROOT.parent / "shared" / "data" / "swe-verified-dev-407.jsonl"))
    parser.add_argument("--repos", required=True)
    parser.add_argument("--home", required=True, help="an EXPAGENT_HOME whose environments are built")
    parser.add_argument("--instance", action="append", help=f"instances (default: {', '.join(DEFAULT_INSTANCES)})")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare-with", type=Path, help="a tree with other expagent code, measured first (before)")
    parser.add_argument("--tmpdir", help="also measure with EXPAGENT_GRADE_TMPDIR set to this (\"\": the system's "
                                         "temporary directory, i.e. the disk)")
    args = parser.parse_args()
    instances = args.instance or DEFAULT_INSTANCES
    configs: dict[str, dict] = {}
    loads = [load_average()]
    if args.compare_with:
        configs["before"] = {"code": str(args.compare_with),
                             **summarize(measure(args.compare_with, args.tasks, args.repos, args.home, instances,
                                                 args.repeats))}
        loads.append(load_average())
    configs["after"] = {"code": "this tree",
                        **summarize(measure(ROOT, args.tasks, args.repos, args.home, instances, args.repeats))}
    loads.append(load_average())
    if args.tmpdir is not None:
        configs[f"after, EXPAGENT_GRADE_TMPDIR='{args.tmpdir}'"] = {
            "code": "this tree", **summarize(measure(ROOT, args.tasks, args.repos, args.home, instances, args.repeats,
                                                     args.tmpdir))}
        loads.append(load_average())
    meta = {"run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
            "load_average_during": loads, "instances": instances, "repeats": args.repeats, "goal_s": GOAL_S}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps({"meta": meta, "configs": configs}, indent=1) + "\n")
    lines = ["# Grade overhead (cached environment and install), per step", "",
             f"Run {meta['run_at']} on {meta['machine']}; load average (1/5/15 min) at each stage: "
             f"{'; '.join(loads)}; empty patch, {args.repeats} grade(s) per instance and configuration, medians. "
             f"Goal: harness overhead (total minus tests) under {GOAL_S:g} s.", "",
             "| configuration | instance | harness (s) | " + " | ".join(STEPS) + " | tests (s) |",
             "|---|---|---|" + "---|" * len(STEPS) + "---|"]
    for name, config in configs.items():
        for instance_id in instances:
            row = config[instance_id]
            lines.append(f"| {name} | {instance_id} | {row['harness_s']} | "
                         + " | ".join(str(row["steps_s"][s]) for s in STEPS) + f" | {row['tests_s']} |")
    lines += ["", "Median harness overhead over all grades: "
              + "; ".join(f"{name} {config['all']['harness_median_s']} s" for name, config in configs.items())]
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
