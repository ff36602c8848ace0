"""Foundation benchmarks (issue 2): CLI start-up, agent-loop overhead per step, local sandbox start.

Run: python benchmarks/foundation.py   -> benchmarks/results/foundation.{json,md}
Numbers are wall-clock on whatever machine runs this; compare them within one run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def bench_help(runs: int = 7) -> dict:
    def timed(args):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=True)
        return time.perf_counter() - started

    bare = statistics.median(timed(["-c", "pass"]) for _ in range(runs))
    help_ = statistics.median(timed(["-m", "expagent", "--help"]) for _ in range(runs))
    return {"help_median_s": round(help_, 3), "python_bare_median_s": round(bare, 3),
            "help_minus_interpreter_s": round(help_ - bare, 3), "goal_s": 0.5}


def bench_sandbox_start(repo: Path, runs: int = 5) -> dict:
    from expagent.sandbox.local import LocalSandbox

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        sandbox = LocalSandbox(repo)
        sandbox.start()
        times.append(time.perf_counter() - started)
        sandbox.close()
    return {"files": 600, "start_median_s": round(statistics.median(times), 3), "goal_s": 1.0}


def bench_loop_overhead(repo: Path, steps: int = 200) -> dict:
    from expagent.agent.loop import Agent, Limits
    from expagent.agent.prompting import build_messages
    from expagent.agent.tools import ToolBox
    from expagent.models.scripted import SourceModel, load_scripted_source
    from expagent.sandbox.local import LocalSandbox
    from expagent.trajectory import TrajectoryWriter

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "s.json"
        replies = [{"tool_calls": [{"name": "bash", "arguments": {"command": "true"}}]}] * steps
        script.write_text(json.dumps({"replies": [*replies, {"tool_calls": [{"name": "submit"}]}]}))
        model = SourceModel("scripted", load_scripted_source(script))
        toolbox = ToolBox()
        command_time = 0.0
        original = LocalSandbox.run

        def timed_run(self, command, timeout=None, cwd=None):
            nonlocal command_time
            started = time.perf_counter()
            result = original(self, command, timeout, cwd)
            command_time += time.perf_counter() - started  # every command, incl. the final git diff
            return result

        LocalSandbox.run = timed_run
        try:
            with LocalSandbox(repo) as sandbox:
                writer = TrajectoryWriter(Path(tmp) / "traj.json", {"run_id": "bench", "protocol": "native"})
                agent = Agent(model, sandbox, toolbox, writer, Limits(step_limit=steps + 5))
                messages = build_messages("bench", workdir=sandbox.workdir, protocol="native",
                                          tool_schemas=toolbox.schemas())
                started = time.perf_counter()
                agent.run(messages)
                total = time.perf_counter() - started
        finally:
            LocalSandbox.run = original
    overhead = (total - command_time) / (steps + 1)
    return {"steps": steps + 1, "total_s": round(total, 3), "command_s": round(command_time, 3),
            "overhead_per_step_ms": round(overhead * 1000, 2), "goal_ms": 5.0,
            "note": "model parse, tool dispatch, prompt rendering and the atomic trajectory rewrite after every step; sandbox commands excluded"}


def main() -> None:
    results = {"help": bench_help()}
    from sandbox_overhead import make_repo  # the same synthetic project as the sandbox benchmark

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", 600)
        results["sandbox_start"] = bench_sandbox_start(repo)
        results["loop_overhead"] = bench_loop_overhead(repo)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "foundation.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
