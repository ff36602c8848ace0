"""``expagent memory check [--repair]``: does the ledger (audit.sqlite) agree with Chroma?

The full check compares the two databases: both readable, the same record ids, the same documents and metadata
(status, counters), the embedding model and schema versions, and no write left pending by a killed writer. Every
problem is one line saying what is wrong and what ``--repair`` does about it. The cheap part (no chromadb) runs on
every open (``MemoryStore.quick_check``).

``--repair`` restores what can be restored:

* a pending write is rolled forward (its journal holds everything needed);
* a missing or damaged Chroma database is moved aside (``chroma.damaged-<time>``) and rebuilt from the ledger's
  committed records, with their stored vectors;
* a missing or damaged ledger is moved aside (``audit.damaged-<time>.sqlite``), a new one is made from Chroma's
  records, and whatever audit rows of the old file can still be read are carried over;
* records only Chroma has (written by a writer that died before its ledger commit, by an older expagent) are
  adopted into the ledger and audited (``adopt``); records whose Chroma copy is missing or differs are written to
  Chroma again from the ledger.

An embedding-model mismatch is not repairable in place (export, and import into a new home).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from expagent import paths
from expagent.memory.audit import AuditLog, Item, LedgerDamaged
from expagent.memory.records import SCHEMA_VERSION


@dataclass
class Problem:
    code: str  # audit_missing | audit_damaged | chroma_missing | chroma_damaged | diverged | pending | model | schema
    message: str
    repairable: bool = True


@dataclass
class CheckReport:
    memory_dir: str
    records: int | None = None
    chroma_records: int | None = None
    audit_entries: int | None = None
    embedding_model: str | None = None
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (f"memory ok: {self.records or 0} record(s) in the audit log and in Chroma, "
                    f"{self.audit_entries or 0} audit entries, embedding {self.embedding_model or '-'} "
                    f"({self.memory_dir})")
        return f"memory has {len(self.problems)} problem(s) ({self.memory_dir})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


def _move_aside(path: Path, stem: str, suffix: str = "") -> Path:
    target = path.with_name(f"{stem}.damaged-{_stamp()}{suffix}")
    path.rename(target)
    for extra in ("-wal", "-shm"):  # SQLite's side files belong to the moved database
        side = path.with_name(path.name + extra)
        if side.exists():
            side.rename(target.with_name(target.name + extra))
    return target


def _open_store(home: Path, chroma_url: str | None, embedding: str) -> Any:
    from expagent.memory.opening import open_store

    return open_store(home, chroma_url=chroma_url, embedding=embedding, create=True, check=False)


def check_memory(home: Path | str | None = None, chroma_url: str | None = None, embedding: str = "minilm-int8",
                 repair: bool = False, actor: str = "cli:check") -> CheckReport:
    """Compare the ledger with Chroma; with ``repair`` fix what can be fixed, then check again."""
    home = Path(home).expanduser() if home is not None else paths.home()
    memory_dir = home / "memory"
    report = CheckReport(str(memory_dir))
    if not memory_dir.is_dir():
        return report  # no memory yet: nothing to disagree
    if repair:
        report.repaired = _repair(home, memory_dir, chroma_url, embedding, actor)
        repaired = report.repaired
        report = _check(home, memory_dir, chroma_url, embedding)
        report.repaired = repaired
        return report
    return _check(home, memory_dir, chroma_url, embedding)


def _check(home: Path, memory_dir: Path, chroma_url: str | None, embedding: str) -> CheckReport:
    from expagent.errors import ExpagentError
    from expagent.memory.store import StoreDamaged

    report = CheckReport(str(memory_dir))
    audit_path, chroma_file = memory_dir / "audit.sqlite", memory_dir / "chroma" / "chroma.sqlite3"
    if not audit_path.exists() and chroma_file.exists() and not chroma_url:
        report.problems.append(Problem("audit_missing", f"the audit database {audit_path} is missing; --repair "
                                                         f"makes a new one from Chroma's records"))
        return report
    try:
        store = _open_store(home, chroma_url, embedding)
    except LedgerDamaged as exc:
        report.problems.append(Problem("audit_damaged", f"{str(exc).split(';')[0]}; --repair moves it aside and "
                                                         f"rebuilds it from Chroma's records"))
        return report
    with store:
        report.records = store.audit.count()
        report.audit_entries = store.audit.entry_count()
        report.embedding_model = store.audit.info("embedding_model")
        pending = store.audit.pending()
        if pending:
            report.problems.append(Problem("pending", f"{len(pending)} write(s) interrupted before they committed "
                                                      f"(op {', '.join(str(p.op) for p in pending)}); the next write "
                                                      f"or --repair finishes them"))
        if chroma_url:
            return report  # a shared server holds other machines' records too: only the local journal is checked
        try:
            store.chroma_sqlite_count()
            coll = store.chroma_collection()
            chroma = {i.id: i for i in store._chroma_items(None, None, with_vectors=False)}
        except StoreDamaged as exc:
            missing = not chroma_file.exists()
            code = "chroma_missing" if missing else "chroma_damaged"
            what = "missing" if missing else f"damaged ({_reason(exc)})"
            report.problems.append(Problem(code, f"the Chroma database {chroma_file.parent} is {what} while the "
                                                 f"audit log holds {report.records} record(s); --repair rebuilds "
                                                 f"it from the audit log"))
            return report
        except ExpagentError as exc:
            report.problems.append(Problem("chroma_damaged", f"cannot read the Chroma database: {_reason(exc)}"))
            return report
        report.chroma_records = len(chroma)
        meta = dict(coll.metadata or {})
        if report.embedding_model and meta.get("embedding_model") != report.embedding_model:
            report.problems.append(Problem("model", f"Chroma's collection says embedding model "
                                                    f"{meta.get('embedding_model')!r}, the audit log "
                                                    f"{report.embedding_model!r}; export and import into a new home",
                                           repairable=False))
        if int(meta.get("schema_version") or SCHEMA_VERSION) != SCHEMA_VERSION:
            report.problems.append(Problem("schema", f"Chroma's collection has record schema "
                                                     f"{meta.get('schema_version')}, this expagent {SCHEMA_VERSION}",
                                           repairable=False))
        if pending:
            return report  # the comparison is only meaningful once the pending writes are finished
        ledger = {i.id: i for i in store.audit.items()}
        only_chroma, only_ledger, differ = _diff(ledger, chroma)
        if only_chroma or only_ledger or differ:
            parts = [f"{len(only_chroma)} record(s) only in Chroma (unaudited)" if only_chroma else "",
                     f"{len(only_ledger)} only in the audit log" if only_ledger else "",
                     f"{len(differ)} differ" if differ else ""]
            example = (only_chroma or only_ledger or differ)[0]
            report.problems.append(Problem("diverged", f"the audit log and Chroma disagree: "
                                                       f"{', '.join(p for p in parts if p)} (e.g. {example}); "
                                                       f"--repair adopts unaudited records and rewrites the rest "
                                                       f"from the audit log"))
    return report


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "(" in text and ")" in text:
        return text[text.index("(") + 1: text.index(")")]
    return text.split(";")[0]


def _diff(ledger: dict[str, Item], chroma: dict[str, Item]) -> tuple[list[str], list[str], list[str]]:
    only_chroma = sorted(set(chroma) - set(ledger))
    only_ledger = sorted(set(ledger) - set(chroma))
    differ = sorted(i for i in set(ledger) & set(chroma)
                    if json.loads(ledger[i].document or "{}") != json.loads(chroma[i].document or "{}")
                    or (ledger[i].meta or {}) != (chroma[i].meta or {}))
    return only_chroma, only_ledger, differ


def _repair(home: Path, memory_dir: Path, chroma_url: str | None, embedding: str, actor: str) -> list[str]:
    from expagent.memory.lock import write_lock

    done: list[str] = []
    with write_lock(memory_dir / "write.lock"):
        before = _check(home, memory_dir, chroma_url, embedding)
        codes = {p.code for p in before.problems}
        if codes & {"audit_missing", "audit_damaged"}:
            done.append(_rebuild_ledger(home, memory_dir, chroma_url, embedding, actor))
            before = _check(home, memory_dir, chroma_url, embedding)
            codes = {p.code for p in before.problems}
        if not codes - {"model", "schema"}:
            return done
        store = _open_store(home, chroma_url, embedding)
        with store:
            if "pending" in codes:
                finished = store._finish_pending_locked()
                done.append(f"finished {len(finished)} interrupted write(s)")
            if codes & {"chroma_missing", "chroma_damaged"}:
                done.append(_rebuild_chroma(store, memory_dir, actor))
            elif "diverged" in codes or "pending" in codes:
                note = _reconcile(store, actor)
                if note:
                    done.append(note)
    return done


def _drop_chroma_handles(store: Any) -> None:
    from chromadb.api.shared_system_client import SharedSystemClient

    import expagent.memory.store as store_module

    SharedSystemClient.clear_system_cache()
    store_module._epoch += 1
    store._chroma_coll = None


def _rebuild_chroma(store: Any, memory_dir: Path, actor: str) -> str:
    chroma_dir = memory_dir / "chroma"
    moved = None
    if chroma_dir.exists():
        moved = _move_aside(chroma_dir, "chroma")
    _drop_chroma_handles(store)
    items = store.audit.items(with_vectors=True)
    store._apply(items, changes_set=True)
    store.audit.append("repair", "*", actor, None, {"rebuilt_chroma": len(items),
                                                   "moved_aside": str(moved) if moved else None})
    return (f"rebuilt Chroma from the audit log ({len(items)} record(s))"
            + (f"; the damaged copy is in {moved}" if moved else ""))


def _rebuild_ledger(home: Path, memory_dir: Path, chroma_url: str | None, embedding: str, actor: str) -> str:
    audit_path = memory_dir / "audit.sqlite"
    moved = _move_aside(audit_path, "audit", ".sqlite") if audit_path.exists() else None
    ledger = AuditLog(audit_path)
    salvaged = ledger.salvage_rows(moved) if moved else 0
    ledger.set_info("needs_backfill", "1")  # the store copies Chroma's records in when it opens
    ledger.close()
    store = _open_store(home, chroma_url, embedding)
    with store:
        n = store.audit.count()
        store.audit.append("repair", "*", actor, None, {"rebuilt_ledger_from_chroma": n,
                                                       "moved_aside": str(moved) if moved else None,
                                                       "audit_rows_salvaged": salvaged})
    return (f"rebuilt the audit database from Chroma ({n} record(s), {salvaged} old audit row(s) salvaged)"
            + (f"; the damaged copy is in {moved}" if moved else ""))


def _reconcile(store: Any, actor: str) -> str:
    ledger = {i.id: i for i in store.audit.items(with_vectors=True)}
    chroma = {i.id: i for i in store._chroma_items(None, None, with_vectors=True)}
    only_chroma, only_ledger, differ = _diff(ledger, chroma)
    if only_chroma:
        tx_items = [chroma[i] for i in only_chroma]
        from expagent.memory.store import _Tx

        tx = _Tx(actor)
        for item in tx_items:
            tx.put(item, new=True)
            tx.audit("adopt", item.id, (item.meta or {}).get("kind"), {"from": "chroma", "reason": "unaudited"})
        store._run_op(tx)
    rewrite = [ledger[i] for i in only_ledger + differ]
    if rewrite:
        store._apply(rewrite, changes_set=bool(only_ledger))
        for item in rewrite:
            store.audit.append("repair", item.id, actor, (item.meta or {}).get("kind"),
                               {"rewrote_chroma_from_ledger": True})
    if not (only_chroma or rewrite):
        return ""
    return f"adopted {len(only_chroma)} unaudited record(s); rewrote {len(rewrite)} Chroma record(s) from the audit log"
