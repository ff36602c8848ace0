"""CLI commands for code intelligence: ``expagent map`` and ``expagent memory learn-git``."""

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
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Mine the repository's history for likely fix commits and store them as "reference fix" episodes."""
    import json

    from expagent.codeintel.history import find_fix_commits, open_repo, shallow_note
    from expagent.errors import ExpagentError

    if max_count is not None and max_count < 1:
        raise ExpagentError("--max must be at least 1")
    repo = open_repo(path)
    note = shallow_note(repo)
    records = find_fix_commits(path, since=since, max_count=max_count)
    stored: object = None
    if not dry_run and records:
        stored = _store_reference_fixes(records)
    if json_out:
        typer.echo(json.dumps({"found": len(records), "stored": stored, "dry_run": dry_run, "shallow": bool(note),
                               "commits": [{k: r[k] for k in ("instance_id", "created_at", "fix_score")}
                                           | {"subject": r["problem_statement"].splitlines()[0]} for r in records]},
                              indent=2, default=str))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("commit", "date", "score", "subject")
        for r in records:
            table.add_row(r["instance_id"], r["created_at"][:10], f"{r['fix_score']:.0f}",
                          r["problem_statement"].splitlines()[0][:70])
        console = Console()
        console.print(table)
        verb = "would store" if dry_run else "stored"
        console.print(f"{len(records)} likely fix commit(s) found; {verb} as reference fixes"
                      + ("" if dry_run or stored is None else f": {stored}"))
    if note:
        typer.echo(note, err=True)


def _store_reference_fixes(records: list) -> object:
    """Hand the SWE-bench-shaped records to the memory package's importer (outcome "reference fix")."""
    from expagent.errors import ExpagentError

    try:
        from expagent.memory import importer  # type: ignore[attr-defined]
    except ImportError:
        importer = None
    fn = getattr(importer, "import_swebench_records", None) if importer is not None else None
    if fn is None:
        raise ExpagentError("this build's memory store has no importer for reference fixes; use --dry-run")
    return fn(records)


def register(app: typer.Typer) -> None:
    app.command("map")(map_command)
