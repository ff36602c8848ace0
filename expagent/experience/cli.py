"""CLI for the experience loop: ``replay`` and the maintenance commands under ``expagent memory``.

Only typer is imported here; everything else inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def replay_command(
    suite: str = typer.Argument(..., help="A suite directory (swe_tasks/NAME), its name, or a SWE-bench JSONL file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="litellm model string, or scripted:DIR."),
    memory: Optional[str] = typer.Option(None, "--memory", help="on, off, episodic or semantic."),
    workers: int = typer.Option(1, "--workers", help="Repository streams run in parallel."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out, skipping finished tasks."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default under $EXPAGENT_HOME/runs)."),
    repos: Optional[str] = typer.Option(None, "--repos", help="Directory of local clones named owner__name."),
    instance: Optional[List[str]] = typer.Option(None, "--instance", help="Only these tasks (repeatable)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most N tasks per repository stream."),
    memory_home: Optional[Path] = typer.Option(None, "--memory-home",
                                               help="Use this expagent home's memory instead of a fresh one."),
    distill_model: Optional[str] = typer.Option(None, "--distill-model", help="Model for distillation, or none."),
    step_limit: Optional[int] = typer.Option(None, "--step-limit"),
    cost_limit: Optional[float] = typer.Option(None, "--cost-limit"),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="local or auto (task environments are local)."),
) -> None:
    """Run a suite's tasks in order (retrieve, fix, grade, remember) and report; compare runs with 'report'."""
    from expagent.replay import ReplayOptions, run_replay

    flags = {"model": model, "memory": memory, "distill_model": distill_model, "step_limit": step_limit,
             "cost_limit": cost_limit, "sandbox": sandbox}
    raise typer.Exit(run_replay(ReplayOptions(suite=suite, flags=flags, out=out, resume=resume, workers=workers,
                                              repos_dir=repos, instances=instance, memory_home=memory_home,
                                              limit=limit)))


def _store(home: Optional[Path]):
    from expagent.config import load_settings
    from expagent.memory.store import MemoryStore

    settings = load_settings(None)
    return settings, MemoryStore.open(home=home, chroma_url=settings.chroma_url, embedding=settings.embedding_model)


def consolidate_command(
    repo: Optional[str] = typer.Option(None, "--repo", help="Only lessons scoped to this repository."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the clusters that would be merged."),
    threshold: float = typer.Option(0.85, "--threshold", help="Cosine similarity that makes two lessons one."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The LLM that writes merged lessons."),
    home: Optional[Path] = typer.Option(None, "--home", help="Another expagent home."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Merge near-duplicate lessons into new versions (old ones retired, never deleted). Never runs implicitly."""
    import json

    from rich.console import Console

    from expagent.config import replace
    from expagent.experience.maintain import consolidate
    from expagent.experience.remember import make_distiller

    settings, store = _store(home)
    console = Console(stderr=True)
    with store:
        llm = None
        if not dry_run:
            if model:
                settings = replace(settings, distill_model=model)
            llm = make_distiller(settings)
        results = consolidate(store, llm, repo=repo, dry_run=dry_run, threshold=threshold, notice=console.print)
    if json_out:
        print(json.dumps({"dry_run": dry_run, "clusters": results}, indent=2))
        return
    if not results:
        console.print("no near-duplicate lessons")
    for entry in results:
        target = "would merge" if dry_run else f"merged into {entry['merged_into']}:"
        console.print(f"{target} {', '.join(entry['members'])} (scope {entry['scope']})")


def prune_command(
    min_uses: int = typer.Option(3, "--min-uses", help="Only lessons injected at least this often."),
    max_usefulness: float = typer.Option(0.34, "--max-usefulness", help="Retire at or below this usefulness."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be retired."),
    home: Optional[Path] = typer.Option(None, "--home", help="Another expagent home."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Retire (not delete) lessons that were used often and rarely helped."""
    import json

    from rich.console import Console
    from rich.table import Table

    from expagent.experience.maintain import prune

    _settings, store = _store(home)
    with store:
        items = prune(store, min_uses=min_uses, max_usefulness=max_usefulness, dry_run=dry_run)
    if json_out:
        print(json.dumps({"dry_run": dry_run, "retired" if not dry_run else "would_retire": items}, indent=2))
        return
    table = Table(title=("would retire" if dry_run else "retired") + f" ({len(items)})")
    for column in ("id", "uses", "helped", "usefulness", "advice"):
        table.add_column(column)
    for item in items:
        table.add_row(item["id"], str(item["uses"]), str(item["helped"]), str(item["usefulness"]), item["advice"][:60])
    Console().print(table)


def history_command(
    record_id: str = typer.Argument(..., help="A lesson or episode id."),
    home: Optional[Path] = typer.Option(None, "--home", help="Another expagent home."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Every change to a memory item (audit log), with its versions and merges."""
    import json
    from dataclasses import asdict, is_dataclass

    from rich.console import Console
    from rich.table import Table

    _settings, store = _store(home)
    with store:
        record = store.get(record_id)
        entries = store.history(record_id)
    rows = [asdict(e) if is_dataclass(e) else dict(e) for e in entries]
    links = {k: v for k, v in {
        "supersedes": getattr(record, "supersedes", None), "superseded_by": getattr(record, "superseded_by", None),
        "merged_from": record.provenance.get("merged_from"), "status": getattr(record, "status", None),
        "retired_reason": getattr(record, "retired_reason", None)}.items() if v}
    if json_out:
        print(json.dumps({"id": record_id, "links": links, "history": rows}, indent=2, default=str))
        return
    table = Table(title=f"history of {record_id}")
    columns = list(rows[0].keys()) if rows else ["action"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v) for v in row.values()])
    console = Console()
    console.print(table)
    for key, value in links.items():
        console.print(f"{key}: {value}")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay_command)
    for group in getattr(app, "registered_groups", []):
        if group.name == "memory" and group.typer_instance is not None:
            group.typer_instance.command("consolidate")(consolidate_command)
            group.typer_instance.command("prune")(prune_command)
            group.typer_instance.command("history")(history_command)
