"""CLI commands for codeintel (placeholder until the feature lands)."""

import typer


def register(app: typer.Typer) -> None:
    pass
