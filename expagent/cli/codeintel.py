"""``expagent map``: the ranked repository outline the agent gets."""

from pathlib import Path
from typing import Optional

import typer


def map_command(
    path: str = typer.Argument(".", help="Repository (or any directory) to outline."),
    focus: str = typer.Option("", "--focus", "-f", help="Issue text, identifiers or file names to rank towards."),
    tokens: int = typer.Option(1024, "--tokens", "-t", help="Token budget (estimated as characters / 4)."),
    json_out: bool = typer.Option(False, "--json", help="Print the map, index statistics and warnings as JSON."),
) -> None:
    """Print a ranked outline of the repository (files and key symbols) that fits a token budget."""
    import json
    import time
    from pathlib import Path

    from expagent.codeintel.index import SymbolIndex
    from expagent.codeintel.repomap import build_repo_map, estimate_tokens
    from expagent.errors import ExpagentError

    if tokens < 64:
        raise ExpagentError("--tokens must be at least 64")
    if not Path(path).expanduser().is_dir():
        raise ExpagentError(f"not a directory: {path}")
    started = time.perf_counter()
    index = SymbolIndex.build(path)
    text = build_repo_map(index.root, focus_text=focus, token_budget=tokens, index=index)
    elapsed = time.perf_counter() - started
    warnings = index.stats.warnings()
    if json_out:
        typer.echo(json.dumps({
            "root": str(index.root), "tokens_budget": tokens, "tokens_estimate": estimate_tokens(text),
            "map": text, "files_indexed": index.stats.indexed, "files_parsed": index.stats.parsed,
            "warnings": warnings, "seconds": round(elapsed, 4),
        }, indent=2))
        return
    typer.echo(text, nl=False)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if index.stats.indexed == 0:
        typer.echo("warning: no source files with a supported grammar were found", err=True)


def register(app: typer.Typer) -> None:
    app.command("map")(map_command)
