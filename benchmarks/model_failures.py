"""How fast a misconfigured model fails (issue 16 item 3): `expagent fix` wall time until its one-line error.

Cases: an --api-base where nothing listens (a closed loopback port), a hosted model with no key, Ollama with
no server (its default port, closed here), and a bare model name litellm cannot route.
Goal: each known-cause failure under 5 s with one line that says what to set.

Run: python benchmarks/model_failures.py   -> benchmarks/results/model_failures.{json,md}
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_repo(path: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "a.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "init"], check=True, env=env)
    return path


def run_case(repo: Path, args: list[str], home: Path, runs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("EXPAGENT_")}
    env.update(EXPAGENT_HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONPATH=str(ROOT))
    times, last = [], None
    for _ in range(runs):
        started = time.perf_counter()
        last = subprocess.run([sys.executable, "-m", "expagent", "fix", "the bug", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - started)
    lines = [line for line in last.stderr.splitlines() if line.strip()]
    return {"args": args, "median_s": round(statistics.median(times), 2), "max_s": round(max(times), 2),
            "exit_code": last.returncode, "message": lines[-1] if lines else "", "lines": len(lines)}


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo")
        port = closed_port()
        cases = {
            "api-base, nothing listening": ["--model", "openai/x", "--api-base", f"http://127.0.0.1:{port}/v1"],
            "hosted model, no key": ["--model", "openai/gpt-4o"],
            "ollama, no server": ["--model", "ollama/qwen2.5-coder", "--api-base", f"http://localhost:{port}"],
            "unknown bare model name": ["--model", "no-such-provider-model"],
        }
        results = {name: run_case(repo, args, Path(tmp) / "home", runs) for name, args in cases.items()}
    data = {"runs_per_case": runs, "load_average": os.getloadavg(), "goal_s": 5.0, "cases": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "model_failures.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = ["# Model misconfiguration: time to a one-line failure (`expagent fix`)", "",
             f"{runs} runs per case; load average during the run {', '.join(f'{x:.1f}' for x in data['load_average'])} "
             "(a shared 2-core machine). Goal: under 5 s for each known cause.", "",
             "| case | median | max | exit | message |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['median_s']} s | {r['max_s']} s | {r['exit_code']} | `{r['message'][:110]}` |")
    (RESULTS / "model_failures.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
