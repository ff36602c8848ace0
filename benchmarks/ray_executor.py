"""Replay on Ray against the local executor, on a Ray cluster on this machine.

1. Scheduling overhead per task: the shipped inflection suite (offline demo, memory on through a Chroma server)
   replayed by each executor, in process; for every task, the time from its submission to its result on the
   driver minus the time the task itself took on its worker (the row's ``wall_time``), then the driver's own
   bookkeeping (unpacking, results row) up to the next submission. Median over tasks; the first task of a run
   also pays the worker process start and imports, reported apart.
2. Wall time of the shipped suites (toolz, inflection) on the cluster with 1, 2 and 4 workers (units in flight),
   as chronological epochs (``--epochs``; each suite is one repository, i.e. one stream, so streams alone cannot
   run in parallel), against the local executor's sequential run.

Writes benchmarks/results/ray_executor.{json,md}. Usage: python benchmarks/ray_executor.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test helpers that start a Chroma server and a Ray cluster
RESULTS = ROOT / "benchmarks" / "results"


class Timed:
    """An executor wrapper that times each unit: submission, result on the driver, and the next submission."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.capacity = inner, inner.name, inner.capacity
        self.submitted: dict = {}
        self.units: list[dict] = []
        self.last_result = None
        self.startup = 0.0

    def start(self, suite, runtime) -> None:
        t = time.monotonic()
        self.inner.start(suite, runtime)
        self.startup = time.monotonic() - t

    def submit(self, spec, near=None):
        now = time.monotonic()
        if self.last_result is not None:  # the driver's bookkeeping of the previous result
            self.units[-1]["driver_after"] = now - self.last_result
            self.last_result = None
        handle = self.inner.submit(spec, near)
        self.submitted[handle] = now
        return handle

    def wait(self, handles, timeout=None):
        return self.inner.wait(handles, timeout)

    def result(self, handle):
        output = self.inner.result(handle)
        now = time.monotonic()
        self.units.append({"task": output.instance_id, "submit_to_result": now - self.submitted.pop(handle),
                           "worker": output.row.wall_time, "archive_bytes": len(output.archive or b"")})
        self.last_result = now
        return output

    def cancel(self, handles) -> None:
        self.inner.cancel(handles)

    def close(self) -> None:
        self.inner.close()


def replay(suite: str, out: Path, home: Path, chroma_url: str, executor: str, address: str | None = None,
           workers: int | None = None, epochs: int | None = None) -> dict:
    from rich.console import Console

    from expagent.replay import Replay, ReplayOptions

    os.environ["EXPAGENT_HOME"] = str(home)
    options = ReplayOptions(suite=suite, flags={"chroma_url": chroma_url}, out=out, workers=workers,
                            executor=executor, address=address, epochs=epochs)
    started = time.monotonic()
    run = Replay(options, Console(file=io.StringIO()))
    run.executor = timed = Timed(run.executor)
    run.run()
    wall = time.monotonic() - started
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    overheads = [u["submit_to_result"] - u["worker"] + u.get("driver_after", 0.0) for u in timed.units]
    return {"suite": Path(suite).name, "executor": executor, "workers": workers, "epochs": epochs,
            "tasks": len(rows), "resolved": sum(bool(r["resolved"]) for r in rows), "wall_s": round(wall, 2),
            "startup_s": round(timed.startup, 2), "task_s_sum": round(sum(r["wall_time"] for r in rows), 2),
            "overhead_first_s": round(overheads[0], 3) if overheads else None,
            "overhead_median_s": round(statistics.median(overheads[1:] or overheads), 3) if overheads else None,
            "archive_kb_median": round(statistics.median(u["archive_bytes"] for u in timed.units) / 1024, 1),
            "units": timed.units}


def main() -> None:
    from servers import RayCluster, chroma_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only inflection, 1 and 2 workers")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    work = Path(tempfile.mkdtemp(prefix="expagent-ray-bench-"))
    home = work / "home"
    nodes = [work / "node-a", work / "node-b"]
    for node in nodes:  # the nodes share the driver's built repositories and environments (one machine)
        node.mkdir(parents=True)
        (home / "cache").mkdir(parents=True, exist_ok=True)
        (node / "cache").symlink_to(home / "cache")
    suites = ["inflection"] if args.quick else ["inflection", "toolz"]
    cluster = RayCluster(work / "cluster", nodes, {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}, cpus_per_node=2)
    (work / "cluster").mkdir()
    runs: list[dict] = []
    n = 0
    cluster_start = 0.0

    def one(suite: str, **kw) -> dict:
        nonlocal n
        n += 1
        with chroma_server(work / f"chroma-{n}") as url:
            result = replay(str(ROOT / "swe_tasks" / suite), work / f"run-{n}" / "run", home, url, **kw)
        print(json.dumps({k: v for k, v in result.items() if k != "units"}), flush=True)
        runs.append(result)
        save(runs, cluster_start)  # after every run: an interrupted benchmark keeps what it measured
        return result

    for suite in suites:  # warm the repository and environment caches, outside the measurements
        with chroma_server(work / "chroma-warm") as url:
            replay(str(ROOT / "swe_tasks" / suite), work / f"warm-{suite}" / "run", home, url, "local")
    t = time.monotonic()
    cluster.start()
    cluster_start = time.monotonic() - t
    os.environ.update(cluster.env)
    try:
        for suite in suites:
            one(suite, executor="local")
            one(suite, executor="ray", address=cluster.address, workers=1)
            one(suite, executor="local", workers=1, epochs=3)
            for workers in ([1, 2] if args.quick else [1, 2, 4]):
                one(suite, executor="ray", address=cluster.address, workers=workers, epochs=3)
    finally:
        cluster.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(render(save(runs, cluster_start)))


def save(runs: list[dict], cluster_start: float) -> dict:
    report = {"machine": {"cpus": os.cpu_count(), "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
              "cluster": {"nodes": 2, "cpus_per_node": 2, "start_s": round(cluster_start, 1)}, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray_executor.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "ray_executor.md").write_text(render(report))
    return report


def render(report: dict) -> str:
    lines = ["# Replay on Ray against the local executor", "",
             f"Machine: {report['machine']['cpus']} CPUs shared with other jobs (load average at the end "
             f"{report['machine']['loadavg_end']}); a Ray cluster on it: head + {report['cluster']['nodes']} worker "
             f"nodes of {report['cluster']['cpus_per_node']} CPUs, started in {report['cluster']['start_s']} s. "
             "Offline demo (oracle), memory on through a `chroma run` server, local sandbox.", "",
             "Overhead per task = (submission to result on the driver) - (the task's own time on its worker) + "
             "(driver bookkeeping until the next submission). Streams runs are sequential (one stream per suite).", "",
             "| suite | executor | mode | workers | tasks | resolved | wall (s) | sum of task times (s) | "
             "startup (s) | overhead first task (s) | overhead median (s) | archive (KB) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["runs"]:
        mode = f"{r['epochs']} epochs" if r["epochs"] else "streams"
        lines.append(f"| {r['suite']} | {r['executor']} | {mode} | {r['workers'] or 1} | {r['tasks']} | "
                     f"{r['resolved']} | {r['wall_s']} | {r['task_s_sum']} | {r['startup_s']} | "
                     f"{r['overhead_first_s']} | {r['overhead_median_s']} | {r['archive_kb_median']} |")
    ray_med = [r["overhead_median_s"] for r in report["runs"] if r["executor"] == "ray"]
    if ray_med:
        worst = max(ray_med)
        lines += ["", f"Goal: scheduling overhead under 1 s per task on Ray: worst median {worst:.3f} s, "
                      f"{'met' if worst < 1 else 'not met'}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
