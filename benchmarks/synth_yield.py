"""How productive and how fast is ``expagent tasks synth``, and how long does validating its suites take?

For each project: synthesize a suite from the PyPI sdist into a temporary directory (the same options
as the shipped suites), then validate it with the real grader (gold resolves, empty does not).
Records candidates found, mutations tried, kept and discarded by reason and by kind, and seconds.

    python benchmarks/synth_yield.py            # writes benchmarks/results/synth_yield.json and .md

Needs PyPI (the sdists and pytest for the environments); uses a fresh expagent home per run.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = [
    {"spec": "toolz==1.2.0", "n": 12, "modules": ["toolz/itertoolz.py", "toolz/functoolz.py", "toolz/dicttoolz.py"]},
    {"spec": "inflection==0.5.1", "n": 4, "modules": None},
]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    rows = []
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        os.environ["EXPAGENT_HOME"] = str(Path(tmp) / "home")
        from expagent.tasks.grader import grade
        from expagent.tasks.suite import load_suite
        from expagent.tasks.synth import SynthOptions, synthesize

        for project in PROJECTS:
            out = Path(tmp) / project["spec"].split("==")[0]
            started = time.monotonic()
            report = synthesize(project["spec"], out, SynthOptions(n=project["n"], chain_length=4,
                                                                  modules=project["modules"]))
            synth_seconds = time.monotonic() - started
            suite = load_suite(out)
            started = time.monotonic()
            valid = 0
            for task in suite.tasks:
                gold = grade(task, task.patch)
                empty = grade(task, "")
                valid += bool(gold.resolved and not empty.resolved)
            validate_seconds = time.monotonic() - started
            kinds = collections.Counter(t["mutation"]["kind"] for t in report.tasks)
            rows.append({
                "project": project["spec"],
                "tasks": len(report.tasks),
                "chains": report.chains,
                "tried": report.tried,
                "discarded": dict(report.discarded),
                "kept_by_kind": dict(kinds),
                "baseline_tests": report.baseline_tests,
                "synth_seconds": round(synth_seconds, 1),
                "validate_seconds": round(validate_seconds, 1),
                "valid_tasks": valid,
            })
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "synth_yield.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| project | tasks | tried | discarded | kept by kind | synth s | validate s | valid |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['project']} | {r['tasks']} | {r['tried']} | {r['discarded'] or '-'} | {r['kept_by_kind']} "
                     f"| {r['synth_seconds']} | {r['validate_seconds']} | {r['valid_tasks']}/{r['tasks']} |")
    (results / "synth_yield.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
