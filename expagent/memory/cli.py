"""CLI commands for memory (placeholder until the feature lands)."""

import typer


def register(app: typer.Typer) -> None:
    pass
