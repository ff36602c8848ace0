"""Sandbox overhead: time until a sandbox is ready, and per-command overhead, Docker vs local.

Usage: python benchmarks/sandbox_overhead.py [--repeats 10] [--commands 50] [--files 600]
                                            [--local-only] [--compare-with DIR]

``--compare-with DIR`` also measures the local backend of the expagent code in DIR (e.g. ``git archive <commit>
expagent prompts | tar -x -C DIR``), in a subprocess of this script, right before this code's: the before/after
numbers of a change come from one run on the same machine load.

"Ready" is the wall time from constructing a sandbox to ``start()`` returning with the repository
copied in (the Docker image already present). "Per-command overhead" is the wall time of
``sandbox.run("true")`` minus the wall time of running ``bash -c true`` directly on the host, so it
measures what the sandbox adds (exec round trips, bubblewrap set-up), not the shell.

Goals (issue 3): Docker ready under 1.5 s, per-command overhead under 100 ms median.
Goals (issue 12): local ready under 0.3 s on a 600-file repository, per-command overhead under 30 ms median.
Writes benchmarks/results/sandbox_overhead.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GOAL_READY_S = 1.5
GOAL_OVERHEAD_MS = 100.0
GOAL_LOCAL_READY_S = 0.3
GOAL_LOCAL_OVERHEAD_MS = 30.0


def make_repo(path: Path, files: int) -> Path:
    """A synthetic Python project with ``files`` modules of ~2 KB (about a small real project)."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for i in range(files):
        module = path / f"pkg{i % 20}" / f"mod{i}.py"
        module.parent.mkdir(exist_ok=True)
        module.write_text("".join(f"def f{i}_{j}(x):\n    return x + {j}\n\n" for j in range(50)))
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "bench"], check=True, env=env)
    return path


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 4),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 4),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
        "n": len(ordered),
    }


def host_bash_baseline(n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(["bash", "-c", "true"], check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def raw_docker_exec(sandbox, n: int) -> dict[str, float]:
    """``docker exec <container> true`` through the SDK, no wrapper: Docker's own per-command cost."""
    api, container = sandbox._client.api, sandbox.container.id
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        exec_id = api.exec_create(container, ["true"])["Id"]
        for _chunk in api.exec_start(exec_id, stream=True):
            pass
        api.exec_inspect(exec_id)
        samples.append((time.perf_counter() - t0) * 1000)
    return summarize(samples)


def measure(factory, repeats: int, commands: int, baseline: float) -> dict:
    return summarize_samples(measure_samples(factory, repeats, commands), baseline)


def measure_samples(factory, repeats: int, commands: int) -> dict:
    ready, close, per_command = [], [], []
    raw = None
    for attempt in range(repeats):
        started = time.perf_counter()
        sandbox = factory()
        sandbox.start()
        ready.append(time.perf_counter() - started)
        try:
            if attempt == 0:
                for _ in range(commands):
                    t0 = time.perf_counter()
                    result = sandbox.run("true", timeout=30)
                    per_command.append(time.perf_counter() - t0)
                    assert result.exit_code == 0, result.output
                if sandbox.kind == "docker":
                    raw = raw_docker_exec(sandbox, commands)
        finally:
            t0 = time.perf_counter()
            sandbox.close()
            close.append(time.perf_counter() - t0)
    return {"ready": ready, "close": close, "per_command": per_command, "raw": raw}


def summarize_samples(samples: dict, baseline: float) -> dict:
    overhead_ms = [max(0.0, (s - baseline) * 1000) for s in samples["per_command"]]
    return {
        "ready_s": summarize(samples["ready"]),
        "close_s": summarize(samples["close"]),
        "command_wall_ms": summarize([s * 1000 for s in samples["per_command"]]),
        "command_overhead_ms": summarize(overhead_ms),
        **({"raw_docker_exec_true_ms": samples["raw"]} if samples["raw"] else {}),
    }


def local_samples_of(code: Path, files: int, repeats: int, commands: int) -> dict:
    """Samples of the local backend of the expagent code in ``code``, taken in a subprocess of this script."""
    child = subprocess.run(
        [sys.executable, __file__, "--emit-local-json", "--code", str(code), "--files", str(files),
         "--repeats", str(repeats), "--commands", str(commands)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code.resolve())},
    )
    if child.returncode != 0:
        raise SystemExit(f"measuring {code} failed: {child.stderr.strip()[-500:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def compare_local(before: Path, after: Path, files: int, repeats: int, commands: int, baseline: float,
                  rounds: int = 5) -> tuple[dict, dict]:
    """Before and after measured in alternating rounds (one process each), so that both see the same load."""
    merged = {name: {"ready": [], "close": [], "per_command": [], "raw": None} for name in ("before", "after")}
    for _ in range(rounds):
        for name, code in (("before", before), ("after", after)):
            samples = local_samples_of(code, files, max(1, repeats // rounds), max(1, commands // rounds))
            for key in ("ready", "close", "per_command"):
                merged[name][key] += samples[key]
    return summarize_samples(merged["before"], baseline), summarize_samples(merged["after"], baseline)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--local-only", action="store_true", help="skip the Docker backend")
    parser.add_argument("--compare-with", type=Path, help="a tree with other expagent code to measure first (before)")
    parser.add_argument("--code", type=Path, default=ROOT, help=argparse.SUPPRESS)  # whose expagent to import
    parser.add_argument("--emit-local-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    if args.emit_local_json:  # a child of --compare-with: raw samples of the local backend of args.code, as JSON
        from expagent.sandbox.local import LocalSandbox

        with tempfile.TemporaryDirectory() as tmp:
            repo = make_repo(Path(tmp) / "repo", args.files)
            print(json.dumps(measure_samples(lambda: LocalSandbox(repo, warn=lambda _m: None), args.repeats,
                                             args.commands)))
        return 0

    from expagent.config import Settings
    from expagent.sandbox import images
    from expagent.sandbox.docker import DockerSandbox, connect, docker_available
    from expagent.sandbox.local import LocalSandbox, bwrap_path

    settings = Settings()
    baseline = host_bash_baseline(args.commands)
    results: dict = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    # the machine may be shared: a high load inflates every number here
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "repo_files": args.files,
        "host_bash_true_ms": round(baseline * 1000, 2),
        "goals": {"docker_ready_s": GOAL_READY_S, "command_overhead_ms_median": GOAL_OVERHEAD_MS,
                  "local_ready_s": GOAL_LOCAL_READY_S, "local_command_overhead_ms_median": GOAL_LOCAL_OVERHEAD_MS},
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", args.files)
        if args.compare_with:
            before, after = compare_local(args.compare_with, args.code, args.files, args.repeats, args.commands,
                                          baseline)
            results["backends"]["local (before)"] = {**before, "code": str(args.compare_with)}
            results["backends"]["local"] = after
        else:
            results["backends"]["local"] = measure(lambda: LocalSandbox(repo, warn=lambda _m: None), args.repeats,
                                                   args.commands, baseline)
        results["backends"]["local"]["bwrap"] = bool(bwrap_path())
        if args.local_only:
            results["backends"]["docker"] = {"skipped": "--local-only"}
        elif docker_available():
            client = connect()
            results["docker_image"] = images.find_default_image(client)
            client.close()
            results["backends"]["docker"] = measure(lambda: DockerSandbox(repo, settings), args.repeats,
                                                    args.commands, baseline)
        else:
            results["backends"]["docker"] = {"skipped": "no Docker daemon"}

    docker, local = results["backends"]["docker"], results["backends"]["local"]
    results["goals_met"] = {
        "local_ready": local["ready_s"]["median"] < GOAL_LOCAL_READY_S,
        "local_command_overhead": local["command_overhead_ms"]["median"] < GOAL_LOCAL_OVERHEAD_MS,
    }
    if "ready_s" in docker:
        results["goals_met"].update({
            "docker_ready": docker["ready_s"]["median"] < GOAL_READY_S,
            "docker_command_overhead": docker["command_overhead_ms"]["median"] < GOAL_OVERHEAD_MS,
        })
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sandbox_overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "sandbox_overhead.md").write_text(render_markdown(results))
    print(render_markdown(results))
    return 0


def render_markdown(results: dict) -> str:
    lines = [
        "# Sandbox overhead: local (before / after) and Docker",
        "",
        f"Repository: {results['repo_files']} Python files (synthetic). Host `bash -c true`: "
        f"{results['host_bash_true_ms']} ms (subtracted to get the overhead). Machine: {results['machine']['cpus']} CPUs, "
        f"{results['machine']['platform']}, load average at start {results['machine']['load_average_at_start']}.",
        "",
        "| backend | ready median (s) | ready p90 (s) | close median (s) | run('true') median (ms) | overhead median (ms) | overhead p90 (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, data in results["backends"].items():
        if "skipped" in data:
            lines.append(f"| {name} | skipped: {data['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {name} | {data['ready_s']['median']} | {data['ready_s']['p90']} | {data['close_s']['median']} | "
            f"{data['command_wall_ms']['median']} | {data['command_overhead_ms']['median']} | "
            f"{data['command_overhead_ms']['p90']} |"
        )
    docker = results["backends"].get("docker", {})
    if "raw_docker_exec_true_ms" in docker:
        lines += ["", f"For reference, a bare `docker exec <container> true` through the SDK (no wrapper, no timeout "
                      f"handling) takes {docker['raw_docker_exec_true_ms']['median']} ms median on the same machine in "
                      "the same run: nearly all of the Docker per-command overhead is Docker's own exec cost."]
    if "local (before)" in results["backends"]:
        lines += ["", "`local (before)` is the local backend of the code in "
                      f"`{results['backends']['local (before)']['code']}`; before and after were measured in the same "
                      "run, in alternating rounds of one process each, so that both saw the same machine load."]
    met = results["goals_met"]
    yes = lambda key: "yes" if met[key] else "NO"  # noqa: E731
    lines += ["", f"Goals: local ready < {GOAL_LOCAL_READY_S} s on a 600-file repository, per-command overhead < "
                  f"{GOAL_LOCAL_OVERHEAD_MS} ms median. Met: ready {yes('local_ready')}, command overhead "
                  f"{yes('local_command_overhead')}."]
    if "docker_ready" in met:
        lines += [f"Docker: ready < {GOAL_READY_S} s (image present); per-command overhead < {GOAL_OVERHEAD_MS} ms "
                  f"median. Met: ready {yes('docker_ready')}, command overhead {yes('docker_command_overhead')}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
