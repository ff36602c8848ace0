"""``expagent runs ls``: the past runs under $EXPAGENT_HOME/runs."""

from __future__ import annotations

from typing import Optional

import typer

runs_app = typer.Typer(help="Find past runs (fix, traj replay and suite replays).", no_args_is_help=True)

KINDS = ("fix", "traj-replay", "replay")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


@runs_app.command("ls")
def ls_command(
    kind: Optional[str] = typer.Option(None, "--kind", help=f"Only runs of this kind: {', '.join(KINDS)}."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N runs, newest first (default: all)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (a list of runs)."),
) -> None:
    """List past runs, newest first: id, date, kind, repository or suite, status, resolved."""
    import json

    from expagent import paths
    from expagent.errors import UsageError
    from expagent.runs import list_runs

    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)} (got {kind!r})")
    runs = list_runs(paths.runs_dir(), kind=kind)[:limit]
    if json_out:
        typer.echo(json.dumps([r.to_dict() for r in runs], indent=2))
        return
    if not runs:
        typer.echo(f"no runs under {paths.runs_dir()}", err=True)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"runs in {escape(str(paths.runs_dir()))}")
    for column in ("id", "date", "kind", "repo / suite", "status", "resolved"):
        table.add_column(column, overflow="fold")
    for r in runs:
        table.add_row(*(escape(v) for v in (r.id, r.date[:19], r.kind, r.target, r.status, r.resolved)))
    Console().print(table)
