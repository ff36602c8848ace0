"""``expagent memory ...``: inspect, search, import and export the experience memory.

Only typer is imported at module level; everything else is imported inside the commands so that
``expagent --help`` stays fast. Every command takes ``--home DIR`` (default $EXPAGENT_HOME or ~/.expagent),
``--chroma-url`` (default $EXPAGENT_CHROMA_URL / settings) and ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

memory_app = typer.Typer(name="memory", help="Inspect and manage the experience memory (episodes and lessons).",
                         no_args_is_help=True)

_HOME = typer.Option(None, "--home", help="expagent home to use (default: $EXPAGENT_HOME or ~/.expagent)")
_URL = typer.Option(None, "--chroma-url", help="use this Chroma server (http://HOST:PORT) instead of the embedded store")
_EMB = typer.Option(None, "--embedding", help="embedding model: minilm-int8 (default) or litellm:<model>")
_JSON = typer.Option(False, "--json", help="machine-readable output")


def register(app: typer.Typer) -> None:
    memory_app.command("consolidate")(consolidate_command)
    memory_app.command("prune")(prune_command)
    memory_app.command("history")(history_command)
    memory_app.command("learn-git")(learn_git_command)
    app.add_typer(memory_app, name="memory")


def _open(home: Optional[Path], chroma_url: Optional[str], embedding: Optional[str]) -> Any:
    import os

    from expagent.config import load_settings
    from expagent.memory.store import MemoryStore

    if home is not None:
        os.environ["EXPAGENT_HOME"] = str(home)  # so settings and every path follow the chosen home
    settings = load_settings(None)
    return MemoryStore.open(home=home, chroma_url=chroma_url or settings.chroma_url,
                            embedding=embedding or settings.embedding_model)


def _print_json(data: Any) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


def _summary_row(record: Any, usage: Any) -> dict[str, Any]:
    from expagent.memory.records import Episode

    if isinstance(record, Episode):
        title = record.issue.strip().splitlines()[0] if record.issue.strip() else ""
        status, detail = "-", f"{record.outcome} ({record.outcome_source})"
    else:
        title = record.advice.strip().splitlines()[0]
        status, detail = record.status, f"{record.lesson_kind}, v{record.version}"
    return {"id": record.id, "kind": record.kind, "repo": record.repo or "general",
            "instance_id": getattr(record, "instance_id", None), "created_at": record.created_at,
            "status": status, "detail": detail, "title": title[:100], "usage": usage.to_dict()}


@memory_app.command("ls")
def ls_cmd(kind: Optional[str] = typer.Option(None, "--kind", help="episode or lesson"),
           repo: Optional[str] = typer.Option(None, "--repo", help="only this repo (owner/name; 'general' for general lessons)"),
           status: Optional[str] = typer.Option(None, "--status", help="active or retired (lessons)"),
           sort: str = typer.Option("created", "--sort", help="created | id | repo | retrieved | usefulness"),
           limit: Optional[int] = typer.Option(None, "--limit", help="show at most N records"),
           stale_for: Optional[Path] = typer.Option(None, "--stale-for", help="show each record's staleness "
                                                    "against this checkout (its files and symbols)"),
           home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
           as_json: bool = _JSON) -> None:
    """List memory records."""
    from expagent.errors import ExpagentError

    if kind not in (None, "episode", "lesson"):
        raise ExpagentError(f"--kind must be episode or lesson (got {kind!r})")
    if status not in (None, "active", "retired"):
        raise ExpagentError(f"--status must be active or retired (got {status!r})")
    keys = {"created": lambda r: r["created_at"], "id": lambda r: r["id"], "repo": lambda r: r["repo"],
            "retrieved": lambda r: -r["usage"]["retrieved"], "usefulness": lambda r: -r["usage"]["usefulness"]}
    if sort not in keys:
        raise ExpagentError(f"--sort must be one of {', '.join(keys)} (got {sort!r})")
    store = _open(home, chroma_url, embedding)
    repo_filter = "" if repo == "general" else repo
    records = store.list(kind=kind, repo=repo_filter, status=None)
    usages = store.get_many([r.id for r in records]) if records else {}
    rows = [_summary_row(r, usages[r.id][1]) for r in records]
    if stale_for is not None:
        from expagent.memory.staleness import check_records

        verdicts = check_records(records, stale_for, {r.id: r for r in records if r.kind == "episode"})
        for row in rows:
            row["staleness"] = {"state": verdicts[row["id"]].state, "label": verdicts[row["id"]].label()}
    if status:
        rows = [r for r in rows if r["kind"] == "lesson" and r["status"] == status]
    rows.sort(key=keys[sort])
    if limit is not None:
        rows = rows[:limit]
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"memory: {len(rows)} record(s)")
    cols = ["id", "kind", "repo", "instance", "created", "status", "outcome/kind", "used", "title"]
    for col in cols + (["staleness"] if stale_for is not None else []):
        table.add_column(col, overflow="fold")
    for r in rows:
        u = r["usage"]
        extra = [r["staleness"]["label"] or r["staleness"]["state"]] if stale_for is not None else []
        table.add_row(r["id"], r["kind"], r["repo"], r["instance_id"] or "", r["created_at"][:19], r["status"],
                      r["detail"], f"{u['retrieved']} ({u['resolved']}/{u['unresolved']})", r["title"], *extra)
    Console().print(table)


@memory_app.command("show")
def show_cmd(record_id: str = typer.Argument(..., help="record id (ep-... or ls-...)"),
             home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
             as_json: bool = _JSON) -> None:
    """Show one record in full, with its usage and audit history."""
    store = _open(home, chroma_url, embedding)
    record = store.get(record_id)
    usage = store.usage(record_id)
    history = [h.to_dict() for h in store.history(record_id)]
    if as_json:
        _print_json({"record": record.to_dict(), "usage": usage.to_dict(), "history": history})
        return
    import json

    from rich.console import Console
    from rich.syntax import Syntax

    console = Console()
    data = record.to_dict()
    patch = data.pop("patch", None)
    console.print(Syntax(json.dumps(data, indent=2, ensure_ascii=False), "json", word_wrap=True))
    if patch:
        console.print(Syntax(patch, "diff", word_wrap=True))
    console.print(f"usage: {usage.to_dict()}")
    for h in history:
        console.print(f"  {h['at']}  {h['action']:<8} by {h['actor']}  {json.dumps(h['detail'])[:120]}")


@memory_app.command("search")
def search_cmd(text: Optional[str] = typer.Argument(None, help="the issue text to search for"),
               repo: Optional[str] = typer.Option(None, "--repo", help="the repo of the issue (owner/name)"),
               before: Optional[str] = typer.Option(None, "--before", help="only records created before this ISO time"),
               exclude_instance: Optional[str] = typer.Option(None, "--exclude-instance", help="never return this instance's records"),
               k: int = typer.Option(3, "--k", min=1, help="at most this many results"),
               kind: Optional[str] = typer.Option(None, "--kind", help="episode or lesson (default both)"),
               floor: Optional[float] = typer.Option(None, "--floor", help="relevance floor (default: tuned value; 0 = never abstain)"),
               batch: Optional[Path] = typer.Option(None, "--batch", help="JSONL file, one query object per line"),
               home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
               as_json: bool = _JSON) -> None:
    """Search memory the way a new issue would (may return nothing: that is abstention, not an error)."""
    from expagent.errors import ExpagentError
    from expagent.memory.retrieval import retrieve

    kinds = ("episode", "lesson") if kind is None else (kind,)
    if kind not in (None, "episode", "lesson"):
        raise ExpagentError(f"--kind must be episode or lesson (got {kind!r})")
    if batch is None and not (text or "").strip():
        raise ExpagentError("give the text to search for, or --batch FILE.jsonl")
    if batch is not None:
        queries = _read_batch(batch)
        store = _open(home, chroma_url, embedding)
        for q in queries:
            hits = retrieve(store, q["query"], repo=q.get("repo"), before=q.get("before"),
                            exclude_instance=q.get("exclude_instance"), k=int(q.get("k") or k), kinds=kinds,
                            floor=floor)
            _print_json({"results": [_hit_row(h) for h in hits]})
        return
    store = _open(home, chroma_url, embedding)
    hits = retrieve(store, text or "", repo=repo, before=before, exclude_instance=exclude_instance, k=k,
                    kinds=kinds, floor=floor)
    if as_json:
        _print_json({"results": [{**_hit_row(h), "parts": h.to_dict()["parts"]} for h in hits]})
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not hits:
        console.print("nothing relevant enough in memory (abstained)")
        return
    table = Table(title=f"{len(hits)} result(s)")
    for col in ("score", "id", "kind", "repo", "instance", "dense", "lexical", "keys", "summary"):
        table.add_column(col, overflow="fold")
    for h in hits:
        row = _summary_row(h.record, store.usage(h.id))
        table.add_row(f"{h.score:.3f}", h.id, h.kind, row["repo"], row["instance_id"] or "",
                      f"{h.parts['dense']:.2f}", f"{h.parts['lexical']:.2f}", f"{h.parts['keys']:.2f}", row["title"])
    console.print(table)


def _hit_row(hit: Any) -> dict[str, Any]:
    return {"id": hit.id, "kind": hit.kind, "instance_id": getattr(hit.record, "instance_id", None),
            "repo": hit.record.repo, "score": round(hit.score, 4)}


def _read_batch(path: Path) -> list[dict[str, Any]]:
    from expagent.errors import ExpagentError
    from expagent.memory.jsonl import read_jsonl
    from expagent.memory.records import parse_time

    allowed = {"query", "repo", "before", "exclude_instance", "k"}

    def parse(obj: dict[str, Any], _n: int) -> dict[str, Any]:
        extra = sorted(set(obj) - allowed)
        if extra:
            raise ExpagentError(f"unknown field(s) {', '.join(extra)}")
        if not isinstance(obj.get("query"), str) or not obj["query"].strip():
            raise ExpagentError("'query' must be non-empty text")
        if obj.get("k") is not None and (not isinstance(obj["k"], int) or obj["k"] < 1):
            raise ExpagentError("'k' must be a positive integer")
        parse_time(obj.get("before"), "before")
        return obj

    return read_jsonl(path, parse)[0]


@memory_app.command("rm")
def rm_cmd(record_id: str = typer.Argument(..., help="record id to delete"),
           home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
           as_json: bool = _JSON) -> None:
    """Delete a record (episode or lesson) for good; the audit log keeps a copy."""
    store = _open(home, chroma_url, embedding)
    record = store.delete(record_id, actor="cli:rm")
    if as_json:
        _print_json({"deleted": record.id, "kind": record.kind})
    else:
        typer.echo(f"deleted {record.kind} {record.id}")


@memory_app.command("retire")
def retire_cmd(record_id: str = typer.Argument(...), reason: str = typer.Option(..., "--reason"),
               home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
               as_json: bool = _JSON) -> None:
    """Retire a lesson (kept, never retrieved)."""
    store = _open(home, chroma_url, embedding)
    lesson = store.retire(record_id, actor="cli:retire", reason=reason)
    _print_json({"retired": lesson.id}) if as_json else typer.echo(f"retired lesson {lesson.id}")


@memory_app.command("restore")
def restore_cmd(record_id: str = typer.Argument(...),
                home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
                as_json: bool = _JSON) -> None:
    """Make a retired lesson active again; for a consolidated lesson, undo the whole merge."""
    from expagent.experience.maintain import undo_merge

    store = _open(home, chroma_url, embedding)
    undone = undo_merge(store, record_id, actor="cli:restore")
    if undone:
        _print_json({"restored": undone, "merge_undone": True}) if as_json else \
            typer.echo(f"undid the consolidation: restored {', '.join(undone)}")
        return
    lesson = store.restore(record_id, actor="cli:restore")
    _print_json({"restored": lesson.id}) if as_json else typer.echo(f"restored lesson {lesson.id}")


@memory_app.command("export")
def export_cmd(file: Path = typer.Argument(..., help="JSONL file to write"),
               embeddings: bool = typer.Option(False, "--embeddings", help="include the vectors (import then skips re-embedding)"),
               home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
               as_json: bool = _JSON) -> None:
    """Write every record (with usage counters, optionally vectors) to a JSONL file."""
    from expagent.memory.transfer import export_jsonl

    store = _open(home, chroma_url, embedding)
    n = export_jsonl(store, file, with_embeddings=embeddings)
    _print_json({"exported": n, "file": str(file)}) if as_json else typer.echo(f"exported {n} record(s) to {file}")


@memory_app.command("import")
def import_cmd(file: Path = typer.Argument(..., help="JSONL file written by 'memory export'"),
               skip_bad: bool = typer.Option(False, "--skip-bad", help="import the good lines, report the bad ones"),
               home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
               as_json: bool = _JSON) -> None:
    """Import records from an export (existing ids are left alone)."""
    from expagent.memory.transfer import import_jsonl

    store = _open(home, chroma_url, embedding)
    added, present, problems = import_jsonl(store, file, actor="cli:import", skip_bad=skip_bad)
    _report_import(added, present, problems, as_json)


@memory_app.command("import-swebench")
def import_swebench_cmd(file: Path = typer.Argument(..., help="SWE-bench-format JSONL (repo, instance_id, base_commit, problem_statement, patch[, created_at])"),
                        skip_bad: bool = typer.Option(False, "--skip-bad", help="import the good lines, report the bad ones"),
                        home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL,
                        embedding: Optional[str] = _EMB, as_json: bool = _JSON) -> None:
    """Seed memory with reference-fix episodes from a project's past fixes (no LLM involved)."""
    from expagent.memory.swebench import import_swebench

    store = _open(home, chroma_url, embedding)
    added, present, problems = import_swebench(store, file, actor="cli:import-swebench", skip_bad=skip_bad)
    _report_import(added, present, problems, as_json)


def _report_import(added: list[str], present: int, problems: list[str], as_json: bool) -> None:
    if as_json:
        _print_json({"added": len(added), "already_present": present, "skipped_bad": problems})
        return
    for p in problems:
        typer.echo(f"skipped: {p}", err=True)
    typer.echo(f"added {len(added)} record(s); {present} already present; {len(problems)} bad line(s) skipped")


@memory_app.command("stats")
def stats_cmd(home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
              as_json: bool = _JSON) -> None:
    """Counts by kind, status and repo; where the memory lives; which embedding model it uses."""
    from collections import Counter

    store = _open(home, chroma_url, embedding)
    kinds: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    repos: Counter[str] = Counter()
    retrieved = 0
    for _id, _doc, meta, _e in store.iter_raw():
        kinds[meta.get("kind", "?")] += 1
        if meta.get("kind") == "lesson":
            statuses[meta.get("status", "?")] += 1
        repos[meta.get("repo") or "general"] += 1
        retrieved += int(meta.get("n_retrieved") or 0)
    data = {"memory_dir": str(store.memory_dir), "chroma": store.chroma_url or "embedded",
            "embedding_model": store.embedder.name, "total": sum(kinds.values()),
            "episodes": kinds.get("episode", 0), "lessons": kinds.get("lesson", 0),
            "lessons_by_status": dict(statuses), "by_repo": dict(repos.most_common()),
            "times_retrieved": retrieved, "audit_entries": len(store.audit.history())}
    if as_json:
        _print_json(data)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="memory stats", show_header=False)
    for key in ("memory_dir", "chroma", "embedding_model", "total", "episodes", "lessons", "lessons_by_status",
                "times_retrieved", "audit_entries"):
        table.add_row(key, str(data[key]))
    for repo_name, n in data["by_repo"].items():
        table.add_row(f"  {repo_name}", str(n))
    Console().print(table)


# -- maintenance: consolidate, prune, history, learn-git ------------------------

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


