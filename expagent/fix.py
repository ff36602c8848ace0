"""``expagent fix``: one issue, one repository, one patch."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expagent.errors import ExpagentError


@dataclass
class FixOptions:
    issue: str | None
    issue_file: str | None
    repo: Path
    flags: dict[str, Any] = field(default_factory=dict)
    apply: bool = False
    verify: bool = True
    json_out: bool = False  # stdout: the run's summary and patch as JSON (expagent.runs) instead of the patch


def git_toplevel(path: Path) -> Path:
    if not path.exists():
        raise ExpagentError(f"no such directory: {path}")
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExpagentError(f"not a git repository: {path.resolve()} (run expagent fix inside one, or pass --repo)")
    top = Path(proc.stdout.strip())
    head = subprocess.run(["git", "-C", str(top), "rev-parse", "--verify", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        raise ExpagentError(f"the repository at {top} has no commits yet; commit something first")
    return top


def patch_files(patch: str) -> list[str]:
    files = []
    for match in re.finditer(r"^diff --git a/(.+?) b/(.+)$", patch, re.M):
        for name in match.groups():
            if name not in files:
                files.append(name)
    return files


def apply_patch(repo: Path, patch: str) -> None:
    """Apply ``patch`` to the user's working tree, refusing to touch files with uncommitted changes."""
    files = patch_files(patch)
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", *files],
                            capture_output=True, text=True).stdout
    dirty = [line[3:] for line in status.splitlines() if line.strip()]  # "XY name": the status columns come first
    if dirty:
        names = ", ".join(dirty)
        raise ExpagentError(f"not applying: these files have uncommitted changes: {names} (commit or stash them first)")
    check = subprocess.run(["git", "-C", str(repo), "apply", "--check", "-"], input=patch, capture_output=True, text=True)
    if check.returncode != 0:
        raise ExpagentError(f"the patch does not apply to the working tree: {check.stderr.strip().splitlines()[0]}")
    subprocess.run(["git", "-C", str(repo), "apply", "-"], input=patch, capture_output=True, text=True, check=True)


def run_fix(options: FixOptions) -> int:
    from rich.console import Console

    from expagent import paths
    from expagent.config import load_settings
    from expagent.issue_source import read_issue
    from expagent.models import make_model
    from expagent.progress import StepPrinter
    from expagent.runner import RunRequest, new_run_dir, run_agent

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    repo = git_toplevel(options.repo)
    settings = load_settings(repo, options.flags)
    issue = read_issue(options.issue, options.issue_file)
    model = make_model(settings)
    from expagent import experience

    store = experience.open_memory(settings)
    try:
        context = experience.prepare_context(issue.text, repo, settings, store=store, notice=err.print)
        run_dir = new_run_dir(paths.runs_dir(), issue.text)
        request = RunRequest(issue=issue.text, repo=repo, settings=settings, run_dir=run_dir,
                             issue_source=issue.source, repo_name=context.repo_name, repo_map=context.repo_map,
                             experience=context.experience, extra_tools=context.tools)
        err.print(f"[bold]expagent fix[/] in {repo} with {model.name} (run {run_dir.name})")
        verifier = experience.make_verifier(settings) if options.verify else None
        outcome = run_agent(request, model, on_event=StepPrinter(err), notice=err.print,
                            after_run=verifier.after_run if verifier else None)
        result = outcome.result
        verdict = outcome.trajectory.get("outcome") or {"verdict": "unknown", "method": "none",
                                                        "reason": "verification skipped (--no-verify)"}
        if store is not None and result.exit_status.value != "interrupted":
            distiller = experience.make_distiller(settings)
            written = experience.remember_run(outcome, settings, context, store=store, verdict=verdict,
                                              distiller=distiller, episode_key=f"run:{run_dir.name}",
                                              actor="expagent fix", notice=err.print)
            if written:
                err.print(f"memory: remembered {', '.join(written)}")
    finally:
        if store is not None:
            store.close()
    if options.json_out:
        import json

        from expagent.runs import summarize_run

        print(json.dumps({**summarize_run(run_dir).to_dict(), "patch": result.patch,
                          "trajectory": str(outcome.trajectory_path), "verdict": verdict}, indent=2))
    elif result.patch:
        print(result.patch, end="" if result.patch.endswith("\n") else "\n")
    cost = "unknown" if result.cost is None else f"${result.cost:.4f}"
    err.print(f"exit status: [bold]{result.exit_status.value}[/]  steps: {result.steps}  "
              f"tokens: {result.prompt_tokens + result.completion_tokens}  cost: {cost}  "
              f"tests: {verdict['verdict']} ({verdict.get('reason', '')})")
    if result.error:
        err.print(f"error: {result.error}")
    err.print(f"trajectory: {outcome.trajectory_path}\npatch: {outcome.patch_path}")
    if result.exit_status.value == "interrupted":
        return 130
    if not result.ok:
        err.print(f"no fix: the run ended with status {result.exit_status.value}"
                  + (" and an empty patch" if not result.patch.strip() else ""))
        return 1
    if options.apply:
        apply_patch(repo, result.patch)
        err.print(f"applied the patch to {repo}")
    return 0
