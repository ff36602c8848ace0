"""``expagent fix``: one issue, one repository, one patch."""

from __future__ import annotations

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


def apply_patch(repo: Path, patch: str) -> None:
    """Apply ``patch`` to the user's working tree, refusing to touch files with uncommitted changes."""
    from expagent.gitutil import dirty_paths, run_git
    from expagent.patchutil import patch_files

    dirty = dirty_paths(repo, patch_files(patch, include_old=True))
    if dirty:
        names = ", ".join(dirty)
        raise ExpagentError(f"not applying: these files have uncommitted changes: {names} (commit or stash them first)")
    check = run_git(repo, "apply", "--check", "-", input=patch, check=False)
    if check.returncode != 0:
        raise ExpagentError(f"the patch does not apply to the working tree: {check.stderr.strip().splitlines()[0]}")
    run_git(repo, "apply", "-", input=patch)


def run_fix(options: FixOptions) -> int:
    from rich.console import Console
    from rich.markup import escape

    from expagent import paths
    from expagent.config import load_settings
    from expagent.experience import make_distiller, open_memory
    from expagent.gitutil import toplevel
    from expagent.issue_source import read_issue
    from expagent.models import make_model
    from expagent.progress import StepPrinter
    from expagent.runner import new_run_dir
    from expagent.sandbox.config import resolve_sandbox
    from expagent.session import RepoTestsJudge, SessionSpec, run_session

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    say = lambda message: err.print(escape(message))  # noqa: E731  (data, never markup)
    repo = toplevel(options.repo)
    settings = load_settings(repo, options.flags)
    issue = read_issue(options.issue, options.issue_file)
    model = make_model(settings)
    sandbox = resolve_sandbox(settings.sandbox, settings, say)
    store = open_memory(settings)
    try:
        run_dir = new_run_dir(paths.runs_dir(), issue.text)
        err.print(f"[bold]expagent fix[/] in {escape(str(repo))} with {escape(model.name)} "
                  f"({sandbox.kind} sandbox, run {run_dir.name})")
        spec = SessionSpec(issue=issue.text, repo=repo, run_dir=run_dir, settings=settings,
                           issue_source=issue.source, actor="expagent fix")
        judge = RepoTestsJudge(settings) if options.verify else None
        distiller = make_distiller(settings) if store is not None else None
        outcome = run_session(spec, model, sandbox=sandbox, store=store, judge=judge, distiller=distiller,
                              on_event=StepPrinter(err), notice=say)
    finally:
        if store is not None:
            store.close()
    result = outcome.result
    verdict = outcome.verdict
    if outcome.written:
        say(f"memory: remembered {', '.join(outcome.written)}")
    if options.json_out:
        import json

        from expagent.runs import summarize_run

        print(json.dumps({**summarize_run(run_dir).to_dict(), "patch": result.patch,
                          "trajectory": str(outcome.trajectory_path),
                          "verdict": verdict.to_dict() if verdict is not None else None}, indent=2))
    elif result.patch:
        print(result.patch, end="" if result.patch.endswith("\n") else "\n")
    cost = "unknown" if result.cost is None else f"${result.cost:.4f}"
    tests = "not run (interrupted)" if verdict is None else (
        f"{verdict.verdict} ({verdict.reason})" if options.verify else "not run (--no-verify)")
    err.print(f"exit status: [bold]{result.exit_status.value}[/]  steps: {result.steps}  "
              f"tokens: {result.prompt_tokens + result.completion_tokens}  cost: {cost}  tests: {escape(tests)}")
    if result.error:
        say(f"error: {result.error}")
    say(f"trajectory: {outcome.trajectory_path}\npatch: {outcome.patch_path}")
    if result.exit_status.value == "interrupted":
        return 130
    if not result.ok:
        say(f"no fix: the run ended with status {result.exit_status.value}"
            + (" and an empty patch" if not result.patch.strip() else ""))
        return 1
    if options.apply:
        apply_patch(repo, result.patch)
        say(f"applied the patch to {repo}")
    return 0
