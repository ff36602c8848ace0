"""Core commands: ``fix``, ``config show``, ``traj show`` and ``traj replay``.

Only typer is imported at the top; the machinery is imported inside each command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

# help shared by fix and replay; "(default: the NAME setting, VALUE)" is checked against Settings by a test
HELP_MODEL = "litellm model string, scripted:FILE or replay:TRAJ (default: the model setting)."
HELP_SANDBOX = "docker, local or auto (default: the sandbox setting, auto)."
HELP_MEMORY = "on, off, episodic or semantic (default: the memory setting, on)."
HELP_STEP_LIMIT = "Stop after this many model replies (default: the step_limit setting, 60)."
HELP_COST_LIMIT = "Stop when the run has cost this many dollars (default: the cost_limit setting, 3.0)."

config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
traj_app = typer.Typer(help="Show and re-execute recorded trajectories.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("fix")(fix)
    app.add_typer(config_app, name="config")
    app.add_typer(traj_app, name="traj")


def fix(
    issue: Optional[str] = typer.Argument(None, help='Issue text, "-" for stdin, or a GitHub issue URL.'),
    issue_file: Optional[Path] = typer.Option(None, "--issue-file", help="Read the issue from a file."),
    repo: Path = typer.Option(Path("."), "--repo", help="The git repository to fix (default: current directory)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=HELP_MODEL),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL of an OpenAI-compatible server "
                                           "(default: the api_base setting)."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help=HELP_SANDBOX),
    memory: Optional[str] = typer.Option(None, "--memory", help=HELP_MEMORY),
    step_limit: Optional[int] = typer.Option(None, "--step-limit", min=1, help=HELP_STEP_LIMIT),
    cost_limit: Optional[float] = typer.Option(None, "--cost-limit", help=HELP_COST_LIMIT),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop the run after this many seconds "
                                               "(default: the time_limit setting, 1800.0)."),
    test_command: Optional[str] = typer.Option(None, "--test-command", help="How to run the repo's tests "
                                               "(default: the test_command setting; else detected)."),
    network: Optional[bool] = typer.Option(None, "--network/--no-network",
                                           help="Allow network access in the Docker sandbox (off by default)."),
    apply: bool = typer.Option(False, "--apply", help="Apply the patch to the working tree when done."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Run the tests before and after the patch."),
    json_out: bool = typer.Option(False, "--json", help="Print the run as JSON (patch included) instead of the patch."),
) -> None:
    """Fix an issue in a git repository; prints the patch and saves the run."""
    from expagent.fix import FixOptions, run_fix

    flags = {
        "model": model, "api_base": api_base, "sandbox": sandbox, "memory": memory, "step_limit": step_limit,
        "cost_limit": cost_limit, "time_limit": time_limit, "test_command": test_command, "docker_network": network,
    }
    code = run_fix(FixOptions(issue=issue, issue_file=str(issue_file) if issue_file else None, repo=repo,
                              flags=flags, apply=apply, verify=verify, json_out=json_out))
    raise typer.Exit(code)


@config_app.command("show")
def config_show(
    repo: Path = typer.Option(Path("."), "--repo", help="Repository whose .expagent.toml applies."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the effective settings and where each value came from."""
    import json

    from expagent.config import load_settings

    settings = load_settings(repo)
    rows = [(name, value, settings.sources.get(name, "default")) for name, value in settings.public_dict().items()]
    if json_out:
        typer.echo(json.dumps({name: {"value": value, "source": source} for name, value, source in rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="expagent settings")
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for name, value, source in rows:
        table.add_row(name, "" if value is None else str(value), source)
    Console().print(table)


@traj_app.command("show")
def traj_show(
    path: Path = typer.Argument(..., help="A trajectory.json or a run directory."),
    full: bool = typer.Option(False, "--full", help="Do not shorten long outputs."),
    json_out: bool = typer.Option(False, "--json", help="Print the trajectory file's JSON (its versioned format)."),
) -> None:
    """Render a trajectory readably."""
    if json_out:
        import json

        from expagent.trajectory import load_trajectory, resolve_trajectory_path

        typer.echo(json.dumps(load_trajectory(resolve_trajectory_path(path)), indent=2, ensure_ascii=False))
        return
    from expagent.traj_view import show_trajectory

    show_trajectory(path, full=full)


@traj_app.command("replay")
def traj_replay(
    path: Path = typer.Argument(..., help="A trajectory.json or a run directory."),
    repo: Optional[Path] = typer.Option(None, "--repo", help="Repository to replay in (default: the recorded one)."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="docker, local or auto (default: the recorded one)."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Re-execute a trajectory's model replies in a fresh sandbox and compare the observations."""
    from expagent.traj_view import replay_trajectory

    raise typer.Exit(replay_trajectory(path, repo=repo, sandbox=sandbox, json_out=json_out))
