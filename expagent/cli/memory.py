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


def _settings(home: Optional[Path]) -> Any:
    from expagent import paths
    from expagent.config import load_settings

    paths.select_home(home)  # settings and every path follow the chosen home for this command
    return load_settings(None)


def _open(home: Optional[Path], chroma_url: Optional[str], embedding: Optional[str], create: bool = True) -> Any:
    """The memory store, after the cheap check. ``create=False`` for commands that only read: a memory that does
    not exist reads as empty and nothing is created."""
    from expagent.memory.opening import open_store

    settings = _settings(home)
    return open_store(home, settings=settings, chroma_url=chroma_url, embedding=embedding, create=create)


def _width() -> int:
    import shutil

    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _cut(text: str, width: int) -> str:
    """One line of at most ``width`` characters (cut with an ellipsis, never wrapped)."""
    text = str(text).replace("\n", " ").replace("\t", " ")
    return text if len(text) <= width else text[: max(0, width - 1)] + "\u2026"


def _print_json(data: Any) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


def _title(record: Any) -> str:
    from expagent.memory.records import Episode

    text = record.issue if isinstance(record, Episode) else record.advice
    first = text.strip().splitlines()[0] if text.strip() else ""
    instance = getattr(record, "instance_id", None)
    return f"{instance}: {first}" if instance else first


def _state(record: Any) -> str:
    return record.outcome if record.kind == "episode" else record.status


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
    """List memory records (one line each, cut to the terminal's width; --json: every field)."""
    from expagent.errors import ExpagentError
    from expagent.memory.store import usage_from

    if kind not in (None, "episode", "lesson"):
        raise ExpagentError(f"--kind must be episode or lesson (got {kind!r})")
    if status not in (None, "active", "retired"):
        raise ExpagentError(f"--status must be active or retired (got {status!r})")
    keys = {"created": lambda r, u: r.created_at, "id": lambda r, u: r.id, "repo": lambda r, u: r.repo,
            "retrieved": lambda r, u: -u.retrieved, "usefulness": lambda r, u: -u.usefulness}
    if sort not in keys:
        raise ExpagentError(f"--sort must be one of {', '.join(keys)} (got {sort!r})")
    from expagent.memory.store import record_from_document

    store = _open(home, chroma_url, embedding, create=False)
    where = [c for c in ({"kind": kind} if kind else None,
                         {"repo": "" if repo == "general" else repo} if repo is not None else None) if c]
    rows = [(record_from_document(doc, meta), usage_from(meta))
            for _id, doc, meta, _e in store.iter_raw(None if not where else where[0] if len(where) == 1
                                                     else {"$and": where})]
    if status:
        rows = [(r, u) for r, u in rows if r.kind == "lesson" and r.status == status]
    rows.sort(key=lambda ru: keys[sort](*ru))
    if limit is not None:
        rows = rows[:limit]
    staleness: dict[str, dict[str, str]] = {}
    if stale_for is not None:
        from expagent.memory.staleness import check_records

        records = [r for r, _u in rows]
        verdicts = check_records(records, stale_for, {r.id: r for r in records if r.kind == "episode"})
        staleness = {i: {"state": v.state, "label": v.label()} for i, v in verdicts.items()}
    if as_json:
        _print_json([{**r.to_dict(), "usage": u.to_dict(), **({"staleness": staleness[r.id]} if staleness else {})}
                     for r, u in rows])
        return
    width = _width()
    stale_width = 28 if stale_for is not None else 0
    title_width = max(8, width - (19 + 16 + 10 + 8 + 4) - (stale_width + 1 if stale_width else 0))
    line = "{:<19} {:<16} {:<10} {:<8} " + ("{:<%d} " % stale_width if stale_width else "{}") + "{}"
    header = ("id", "repo", "state", "used", "staleness" if stale_width else "", "title")
    typer.echo(_cut(line.format(*header), width))
    for r, u in rows:
        stale = _cut(staleness[r.id]["label"] or staleness[r.id]["state"], stale_width) if stale_width else ""
        typer.echo(_cut(line.format(r.id, _cut(r.repo or "general", 16), _state(r),
                                    f"{u.retrieved} {u.resolved}/{u.unresolved}", stale,
                                    _cut(" ".join(_title(r).split()), title_width)), width))
    typer.echo(f"{len(rows)} record(s)" + ("" if rows else " (memory is empty)"))


@memory_app.command("show")
def show_cmd(record_id: str = typer.Argument(..., help="record id (ep-... or ls-...)"),
             home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
             as_json: bool = _JSON) -> None:
    """Show one record in full, with its usage and audit history."""
    import json

    store = _open(home, chroma_url, embedding, create=False)
    record = store.get(record_id)
    usage = store.usage(record_id)
    history = [h.to_dict() for h in store.history(record_id)]
    if as_json:
        _print_json({"record": record.to_dict(), "usage": usage.to_dict(), "history": history})
        return
    data = record.to_dict()
    patch = data.pop("patch", None)
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))  # plain: a copy of it is valid JSON
    if patch:
        typer.echo(patch.rstrip("\n"))
    u = usage.to_dict()
    typer.echo(f"usage: retrieved {u['retrieved']}, resolved {u['resolved']}, unresolved {u['unresolved']}, "
               f"usefulness {u['usefulness']}")
    _print_history(history)


def _print_history(history: list[dict[str, Any]]) -> None:
    import json

    width = _width()
    for h in history:
        head = f"  {h['at']}  {h['action']:<8} by {h['actor']}  "
        typer.echo(head + _cut(json.dumps(h["detail"], ensure_ascii=False), max(10, width - len(head))))


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
        store = _open(home, chroma_url, embedding, create=False)
        for q in queries:
            hits = retrieve(store, q["query"], repo=q.get("repo"), before=q.get("before"),
                            exclude_instance=q.get("exclude_instance"), k=int(q.get("k") or k), kinds=kinds,
                            floor=floor)
            _print_json({"results": [_hit_row(h) for h in hits]})
        return
    store = _open(home, chroma_url, embedding, create=False)
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
        table.add_row(f"{h.score:.3f}", h.id, h.kind, h.record.repo or "general",
                      getattr(h.record, "instance_id", None) or "", f"{h.parts['dense']:.2f}",
                      f"{h.parts['lexical']:.2f}", f"{h.parts['keys']:.2f}", _title(h.record)[:100])
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
def retire_cmd(record_id: str = typer.Argument(...), reason: str = typer.Option(..., "--reason", help="why it is retired (kept in the audit log)"),
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

    store = _open(home, chroma_url, embedding, create=False)
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

    store = _open(home, chroma_url, embedding, create=False)
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
            "embedding_model": store.embedding_name, "total": sum(kinds.values()),
            "episodes": kinds.get("episode", 0), "lessons": kinds.get("lesson", 0),
            "lessons_by_status": dict(statuses), "by_repo": dict(repos.most_common()),
            "times_retrieved": retrieved, "audit_entries": store.audit.entry_count()}
    if as_json:
        _print_json(data)
        return
    width = _width()
    for key in ("memory_dir", "chroma", "embedding_model", "total", "episodes", "lessons", "lessons_by_status",
                "times_retrieved", "audit_entries"):
        typer.echo(_cut(f"{key:<18} {data[key]}", width))
    for repo_name, n in data["by_repo"].items():
        typer.echo(_cut(f"  {repo_name:<16} {n}", width))


@memory_app.command("check")
def check_cmd(repair: bool = typer.Option(False, "--repair", help="restore what the audit log (or Chroma) can restore"),
              home: Optional[Path] = _HOME, chroma_url: Optional[str] = _URL, embedding: Optional[str] = _EMB,
              as_json: bool = _JSON) -> None:
    """Compare the audit log with Chroma (records, ids, embedding model, schema, interrupted writes); exit 1 on a
    problem. --repair fixes what can be fixed and checks again."""
    from expagent.memory.check import check_memory

    settings = _settings(home)
    report = check_memory(home, chroma_url or settings.chroma_url, embedding or settings.embedding_model,
                          repair=repair)
    if as_json:
        _print_json(report.to_dict())
    else:
        for note in report.repaired:
            typer.echo(f"repaired: {note}")
        for problem in report.problems:
            typer.echo(f"{problem.code}: {problem.message}")
        typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


# -- maintenance: consolidate, prune, history, learn-git ------------------------

def _store(home: Optional[Path], create: bool = True):
    return _settings(home), _open(home, None, None, create=create)


def consolidate_command(
    repo: Optional[str] = typer.Option(None, "--repo", help="Only lessons scoped to this repository."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the clusters that would be merged."),
    threshold: float = typer.Option(0.85, "--threshold", help="Cosine similarity that makes two lessons one."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The LLM that writes merged lessons."),
    home: Optional[Path] = typer.Option(None, "--home", help="Another expagent home."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Merge near-duplicate lessons into new versions (old ones retired, never deleted). Never runs implicitly."""
    import json

    from rich.console import Console

    from expagent.config import replace
    from expagent.experience.maintain import consolidate
    from expagent.experience.remember import make_distiller

    settings, store = _store(home, create=not dry_run)
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
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Retire (not delete) lessons that were used often and rarely helped."""
    import json

    from rich.console import Console
    from rich.table import Table

    from expagent.experience.maintain import prune

    _settings_, store = _store(home, create=not dry_run)
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
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every change to a memory item (audit log), with its versions and merges."""
    import json

    _settings_, store = _store(home, create=False)
    with store:
        record = store.get(record_id)
        entries = store.history(record_id)
    rows = [e.to_dict() for e in entries]
    links = {k: v for k, v in {
        "supersedes": getattr(record, "supersedes", None), "superseded_by": getattr(record, "superseded_by", None),
        "merged_from": record.provenance.get("merged_from"), "status": getattr(record, "status", None),
        "retired_reason": getattr(record, "retired_reason", None)}.items() if v}
    if json_out:
        typer.echo(json.dumps({"id": record_id, "links": links, "history": rows}, indent=2, default=str))
        return
    typer.echo(f"history of {record_id}")
    _print_history(rows)
    width = _width()
    for key, value in links.items():
        typer.echo(_cut(f"{key}: {value}", width))


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

    from expagent import paths
    from expagent.codeintel.learn import learn_git
    from expagent.errors import ExpagentError

    if max_count is not None and max_count < 1:
        raise ExpagentError("--max must be at least 1")
    paths.select_home(home)  # as the other memory commands do: settings follow the home
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


