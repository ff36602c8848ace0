"""CLI commands for code intelligence: ``expagent map`` and ``expagent memory learn-git``."""

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


def learn_git_command(
    path: str = typer.Argument(".", help="Repository whose history to mine."),
    since: Optional[str] = typer.Option(None, "--since", help="Only commits after this date (anything git accepts)."),
    max_count: Optional[int] = typer.Option(None, "--max", help="Store at most this many fix commits."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be stored, store nothing."),
    home: Optional[Path] = typer.Option(None, "--home", help="expagent home to use (default: $EXPAGENT_HOME or ~/.expagent)"),
    chroma_url: Optional[str] = typer.Option(None, "--chroma-url", help="use this Chroma server instead of the embedded store"),
    embedding: Optional[str] = typer.Option(None, "--embedding", help="embedding model: minilm-int8 (default) or litellm:<model>"),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Mine the repository's history for likely fix commits and store them as reference-fix episodes."""
    import json
    import os

    from expagent.codeintel.learn import learn_git
    from expagent.errors import ExpagentError

    if max_count is not None and max_count < 1:
        raise ExpagentError("--max must be at least 1")
    if home is not None:
        os.environ["EXPAGENT_HOME"] = str(home)  # as the other memory commands do: settings follow the home
    result = learn_git(path, since=since, max_count=max_count, dry_run=dry_run,
                       store_options={"home": home, "chroma_url": chroma_url, "embedding": embedding})
    records = result.pop("records")
    note = result.pop("shallow_note")
    if json_out:
        result["shallow"] = bool(note)
        result["commits"] = [{"instance_id": r["instance_id"], "created_at": r["created_at"],
                              "fix_score": r["fix_score"], "subject": r["problem_statement"].splitlines()[0]}
                             for r in records]
        typer.echo(json.dumps(result, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("commit", "date", "score", "subject")
        for r in records:
            table.add_row(r["instance_id"], r["created_at"][:10], f"{r['fix_score']:.0f}",
                          r["problem_statement"].splitlines()[0][:70])
        console = Console()
        console.print(table)
        if dry_run:
            console.print(f"{result['found']} likely fix commit(s) found; nothing stored (--dry-run)")
        else:
            console.print(f"{result['found']} likely fix commit(s) found; {result['added']} stored as reference "
                          f"fixes, {result['already_present']} already in memory")
    if note:
        typer.echo(note, err=True)


def _memory_group(app: typer.Typer):
    """The ``memory`` sub-app the memory package registered on the root app, if it did."""
    for group in getattr(app, "registered_groups", []):
        if group.name == "memory" and group.typer_instance is not None:
            return group.typer_instance
    return None


def register(app: typer.Typer) -> None:
    app.command("map")(map_command)
    # ``learn-git`` belongs under ``expagent memory``; the memory package registers that group first
    memory = _memory_group(app)
    if memory is not None:
        memory.command("learn-git")(learn_git_command)
