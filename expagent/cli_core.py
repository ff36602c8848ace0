"""Core commands: fix, config, traj (placeholder; filled by the foundation work)."""

import typer


def register(app: typer.Typer) -> None:
    pass
