"""CLI commands for tasks (placeholder until the feature lands)."""

import typer


def register(app: typer.Typer) -> None:
    pass
