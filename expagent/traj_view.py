"""Rendering and re-execution of recorded trajectories."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from expagent.errors import ExpagentError
from expagent.trajectory import load_trajectory, resolve_trajectory_path


def _short(text: str, limit: int) -> str:
    if limit <= 0 or len(text) <= limit:
        return text
    return text[: limit // 2] + f"\n… ({len(text) - limit} characters hidden; --full shows them) …\n" + text[-limit // 2 :]


def show_trajectory(path: Path, full: bool = False) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.table import Table

    data = load_trajectory(resolve_trajectory_path(path))
    console = Console()
    limit = 0 if full else 1500
    header = Table.grid(padding=(0, 2))
    totals = data.get("totals") or {}
    cost = totals.get("cost")
    for key, value in (
        ("run", data.get("run_id")),
        ("repo", f"{data['repo'].get('path')} @ {str(data['repo'].get('base_commit'))[:12]}"),
        ("model", data["model"].get("name")),
        ("sandbox", data.get("sandbox")),
        ("exit status", data.get("exit_status")),
        ("steps", totals.get("steps")),
        ("tokens", (totals.get("prompt_tokens") or 0) + (totals.get("completion_tokens") or 0)),
        ("cost", "unknown" if cost is None else f"${cost:.4f}"),
        ("memory", f"{data['memory'].get('mode')}: injected {data['memory'].get('injected')}, "
                   f"recalled {data['memory'].get('recalled')}"),
        ("outcome", (data.get("outcome") or {}).get("verdict", "not verified")),
    ):
        header.add_row(f"[bold]{key}[/]", str(value))
    console.print(Panel(header, title="trajectory"))
    console.print(Panel(_short(data["issue"]["text"], limit), title="issue"))
    for step in data["steps"]:
        reply = step["reply"]
        if reply.get("content", "").strip():
            console.print(Panel(_short(reply["content"], limit), title=f"step {step['index'] + 1}: model",
                                border_style="blue"))
        for action in step["actions"]:
            args = json.dumps(action.get("arguments"), ensure_ascii=False)
            console.print(f"[bold cyan]{action['tool']}[/] {_short(args, 300)}  [dim]exit {action.get('exit_code')}[/]")
            console.print(Panel(_short(action.get("output", ""), limit), border_style="dim"))
    if data.get("patch"):
        console.print(Panel(Syntax(data["patch"], "diff", word_wrap=True), title="patch"))


_TIMING = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|sec|secs|seconds)\b")
_SANDBOX_DIR = re.compile(r"/tmp/expagent-sb-[\w]+")


def normalize_output(text: str) -> str:
    """Blank out what legitimately differs between two executions: timings and sandbox paths."""
    return _SANDBOX_DIR.sub("<sandbox>", _TIMING.sub("<time>", text or ""))


def compare_runs(recorded: dict[str, Any], replayed: dict[str, Any]) -> dict[str, Any]:
    """Compare the observations of two runs of the same replies, action by action (timings ignored)."""
    mismatches = []
    old_actions = [a for s in recorded["steps"] for a in s["actions"]]
    new_actions = [a for s in replayed["steps"] for a in s["actions"]]
    for index, (old, new) in enumerate(zip(old_actions, new_actions)):
        same_output = normalize_output(old.get("output", "")) == normalize_output(new.get("output", ""))
        if not same_output or old.get("exit_code") != new.get("exit_code"):
            mismatches.append({"action": index, "tool": old["tool"], "recorded": old.get("output", "")[:500],
                               "replayed": new.get("output", "")[:500]})
    return {
        "actions_recorded": len(old_actions),
        "actions_replayed": len(new_actions),
        "mismatches": mismatches,
        "patch_matches": recorded.get("patch", "") == replayed.get("patch", ""),
        "exit_status_recorded": recorded.get("exit_status"),
        "exit_status_replayed": replayed.get("exit_status"),
    }


def replay_trajectory(path: Path, repo: Path | None = None, sandbox: str | None = None, json_out: bool = False) -> int:
    from rich.console import Console
    from rich.markup import escape

    from expagent import paths
    from expagent.config import load_settings, replace
    from expagent.models import make_model
    from expagent.runner import new_run_dir
    from expagent.sandbox.config import resolve_sandbox
    from expagent.session import SessionSpec, TrajectoryView, run_session

    traj_path = resolve_trajectory_path(path)
    raw = load_trajectory(traj_path)
    recorded = TrajectoryView.of(raw)
    repo = Path(repo or recorded.repo_path)
    if not (repo / ".git").exists():
        raise ExpagentError(f"the recorded repository {repo} is not available; pass --repo")
    settings = load_settings(repo, {"sandbox": sandbox or recorded.sandbox or None})
    config = raw.get("config") or {}
    limits = {k: config[k] for k in ("step_limit", "cost_limit", "time_limit", "max_format_errors",
                                      "command_timeout", "output_limit", "repo_map") if k in config}
    # the recorded limits, so the replay stops where the recording stopped; memory stays off (a replay learns
    # nothing), and the recorded repo map keeps the prompt identical
    settings = replace(settings, **limits, model=f"replay:{traj_path}", memory="off")
    model = make_model(settings)
    err = Console(stderr=True)
    say = lambda message: err.print(escape(message))  # noqa: E731
    run_dir = new_run_dir(paths.runs_dir(), "replay-" + (recorded.run_id or "run"))
    spec = SessionSpec(issue=recorded.issue, repo=repo, run_dir=run_dir, settings=settings,
                       issue_source=f"replay of {traj_path}", base_commit=recorded.base_commit,
                       repo_name=recorded.repo_name, instance_id=recorded.instance_id,
                       repo_map=_recorded_repo_map(raw))
    outcome = run_session(spec, model, sandbox=resolve_sandbox(settings.sandbox, settings, say), notice=say)
    report = compare_runs(raw, outcome.trajectory)
    report["trajectory"] = str(outcome.trajectory_path)
    report["sandbox"] = outcome.sandbox_kind
    matches = not report["mismatches"] and report["patch_matches"] and \
        report["actions_recorded"] == report["actions_replayed"]
    report["matches"] = matches
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        console = Console()
        verdict = "[green]observations match[/]" if matches else "[red]observations differ[/]"
        console.print(f"{verdict}: {report['actions_replayed']}/{report['actions_recorded']} actions replayed, "
                      f"{len(report['mismatches'])} mismatches, patch {'identical' if report['patch_matches'] else 'differs'}")
        for mismatch in report["mismatches"][:10]:
            console.print(escape(f"  action {mismatch['action']} ({mismatch['tool']}): recorded "
                                 f"{mismatch['recorded'][:80]!r} != replayed {mismatch['replayed'][:80]!r}"))
        console.print(escape(f"replay trajectory: {outcome.trajectory_path}"))
    return 0 if matches else 1


def _recorded_repo_map(recorded: dict[str, Any]) -> str:
    """The repo map that was in the recorded prompt, so the replayed prompt is the same."""
    for message in recorded.get("messages", []):
        if message.get("role") == "user":
            text = message.get("content", "")
            start, end = text.find("<repository_map>"), text.find("</repository_map>")
            if start != -1 and end != -1:
                body = text[start + len("<repository_map>") : end].strip()
                return body.split("\n", 1)[1] if "\n" in body else ""
            return ""
    return ""

