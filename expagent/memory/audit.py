"""The memory ledger: the append-only audit log, the write journal and the committed records (one SQLite file).

``audit.sqlite`` holds five tables:

* ``audit`` — one row per action (``add``, ``retire``, ``restore``, ``delete``, ``usage``, ``evidence``,
  ``adopt``, ``repair``), to which record, by which actor, when, with a JSON ``detail`` and the ``op`` it belonged
  to. Rows are only ever inserted: SQLite triggers refuse UPDATE and DELETE.
* ``ops`` — the write journal: one row per write operation, ``pending`` from the moment its intent is journaled
  until Chroma has it and the ledger has committed it (``done``).
* ``staged`` — what a pending op will make of each record it touches: the new document, metadata and vector, or
  a deletion. Everything needed to apply the op again, so an op interrupted by a kill is rolled forward.
* ``records`` — the committed state of every record (document, metadata, vector). On this machine this is what
  readers read: one SQLite snapshot, never a half-applied op, never a Chroma error from a concurrent writer.
* ``counted`` — the (task, record) pairs whose usage has been counted, so that a resumed run never counts twice.
* ``info`` — ``schema_version``, ``embedding_model``, ``write_token`` (changes whenever records are added or
  deleted).

A commit (staged rows into ``records``, audit rows, counted pairs, op marked done) is one SQLite transaction, so a
reader sees an op whole or not at all. A damaged file is reported as one line (:class:`LedgerDamaged`).
With a shared Chroma server the ledger is local: it records what *this* machine did.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from expagent.errors import ExpagentError
from expagent.memory.records import now_iso

LEDGER_SCHEMA = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    record_id TEXT NOT NULL,
    kind TEXT,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_record ON audit(record_id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS ops (
    op INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    state TEXT NOT NULL,
    audit_rows TEXT NOT NULL DEFAULT '[]',
    counted TEXT NOT NULL DEFAULT '[]',
    changes_set INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ops_state ON ops(state);
CREATE TABLE IF NOT EXISTS staged (
    op INTEGER NOT NULL,
    id TEXT NOT NULL,
    document TEXT,
    meta TEXT,
    vector BLOB,
    PRIMARY KEY (op, id)
);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    document TEXT NOT NULL,
    meta TEXT NOT NULL,
    vector BLOB
);
CREATE TABLE IF NOT EXISTS counted (
    task_key TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (task_key, record_id)
);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class LedgerDamaged(ExpagentError):
    """The audit database cannot be read (a damaged or foreign file)."""


class LedgerBusy(ExpagentError):
    """Another process held the audit database for longer than the wait allows."""


@dataclass
class AuditEntry:
    seq: int
    at: str
    action: str
    record_id: str
    kind: str | None
    actor: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "action": self.action, "record_id": self.record_id,
                "kind": self.kind, "actor": self.actor, "detail": self.detail}


@dataclass
class Item:
    """One record as stored: its document (the record's JSON), Chroma metadata and vector.

    As a staged change, ``document is None`` means "delete this record"."""

    id: str
    document: str | None
    meta: dict[str, Any] | None = None
    vector: list[float] | None = None

    @property
    def deleted(self) -> bool:
        return self.document is None


@dataclass
class Pending:
    op: int
    action: str
    actor: str
    changes_set: bool
    items: list[Item] = field(default_factory=list)


def pack_vector(vector: Sequence[float] | None) -> bytes | None:
    return None if vector is None else array("f", vector).tobytes()


def unpack_vector(blob: bytes | None) -> list[float] | None:
    if blob is None:
        return None
    values = array("f")
    values.frombytes(blob)
    return values.tolist()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


class AuditLog:
    """The ledger of one memory directory (see the module docstring). ``path=None``: an empty in-memory ledger
    (a listing of a memory that does not exist yet creates no files)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()  # one connection shared by the threads of a process (replay --workers)
        try:
            if path is None:
                self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: BaseException) -> LedgerDamaged:
        return LedgerDamaged(f"the memory's audit database {self.path} is damaged ({_one_line(exc)}); "
                             f"run 'expagent memory check --repair'")

    def _migrate(self) -> None:
        conn = self._conn
        existing = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        conn.executescript(_SCHEMA)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(audit)")}
        if "op" not in columns:  # a schema-1 log: same rows, plus the op they belong to from now on
            conn.execute("ALTER TABLE audit ADD COLUMN op INTEGER")
        if "info" not in existing:
            legacy = "audit" in existing
            conn.execute("INSERT OR IGNORE INTO info(key, value) VALUES ('schema_version', ?)", (str(LEDGER_SCHEMA),))
            conn.execute("INSERT OR IGNORE INTO info(key, value) VALUES ('write_token', ?)", (uuid.uuid4().hex,))
            if legacy:  # records of a schema-1 memory live only in Chroma until the store copies them here
                conn.execute("INSERT OR IGNORE INTO info(key, value) VALUES ('needs_backfill', '1')")

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise LedgerBusy(f"the memory's audit database {self.path} stayed locked by another process "
                                     f"for over a minute ({_one_line(exc)})") from None
                raise self._damaged(exc) from None
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc) from None

    # ----------------------------------------------------------------------------------------------- info
    def info(self, key: str) -> str | None:
        with self._guard() as conn:
            row = conn.execute("SELECT value FROM info WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_info(self, key: str, value: str | None) -> None:
        with self._guard() as conn:
            if value is None:
                conn.execute("DELETE FROM info WHERE key = ?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO info(key, value) VALUES (?, ?)", (key, value))

    def write_token(self) -> str:
        return f"{self.info('write_token') or ''}:{self.count()}"

    # ----------------------------------------------------------------------------------------------- records
    def count(self, kind: str | None = None) -> int:
        with self._guard() as conn:
            if kind:
                return conn.execute("SELECT count(*) FROM records WHERE kind = ?", (kind,)).fetchone()[0]
            return conn.execute("SELECT count(*) FROM records").fetchone()[0]

    def ids(self) -> list[str]:
        with self._guard() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM records ORDER BY rowid")]

    def mark(self) -> int:
        """A position in the records' storage order: records written after it have a larger ``rowid``."""
        with self._guard() as conn:
            return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM records").fetchone()[0])

    def ids_since(self, mark: int) -> tuple[list[str], int, int]:
        """``(ids written after mark, the new mark, the record count)``, read in one snapshot (one statement).
        A record updated since ``mark`` is among the ids (an update rewrites its row); a deleted one only lowers
        the count."""
        with self._guard() as conn:
            count, new_mark, ids = conn.execute(
                "SELECT (SELECT count(*) FROM records), (SELECT coalesce(max(rowid), 0) FROM records), "
                "(SELECT json_group_array(id) FROM (SELECT id FROM records WHERE rowid > ? ORDER BY rowid))",
                (mark,)).fetchone()
        return json.loads(ids), int(new_mark), int(count)

    def items(self, ids: Sequence[str] | None = None, with_vectors: bool = False) -> list[Item]:
        """Committed records (all, or those of ``ids`` that exist; in storage order), read in one snapshot."""
        cols = "id, document, meta" + (", vector" if with_vectors else "")
        with self._guard() as conn:
            if ids is None:
                rows = conn.execute(f"SELECT {cols} FROM records ORDER BY rowid").fetchall()
            else:
                rows = []
                ids = list(ids)
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    rows += conn.execute(f"SELECT {cols} FROM records WHERE id IN ({','.join('?' * len(chunk))})",
                                         chunk).fetchall()
        return [Item(r[0], r[1], json.loads(r[2]), unpack_vector(r[3]) if with_vectors else None) for r in rows]

    def counted_pairs(self, task_key: str, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        with self._guard() as conn:
            rows = conn.execute(f"SELECT record_id FROM counted WHERE task_key = ? AND record_id IN "
                                f"({','.join('?' * len(ids))})", [task_key, *ids]).fetchall()
        return {r[0] for r in rows}

    # ----------------------------------------------------------------------------------------------- ops
    def begin(self, action: str, actor: str, items: Sequence[Item], audit_rows: Sequence[tuple],
              counted: Sequence[tuple[str, str]], changes_set: bool) -> int:
        """Journal an op's intent (one transaction): its staged items, audit rows and counted pairs."""
        with self._guard() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO ops(at, action, actor, state, audit_rows, counted, changes_set) "
                    "VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                    (now_iso(), action, actor, json.dumps(list(audit_rows), ensure_ascii=False, default=str),
                     json.dumps(list(counted)), int(changes_set)))
                op = int(cur.lastrowid)
                conn.executemany(
                    "INSERT INTO staged(op, id, document, meta, vector) VALUES (?, ?, ?, ?, ?)",
                    [(op, i.id, i.document, None if i.meta is None else json.dumps(i.meta, ensure_ascii=False),
                      pack_vector(i.vector)) for i in items])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return op

    def pending(self) -> list[Pending]:
        with self._guard() as conn:
            ops = conn.execute("SELECT op, action, actor, changes_set FROM ops WHERE state = 'pending' ORDER BY op"
                               ).fetchall()
            out = []
            for op, action, actor, changes_set in ops:
                rows = conn.execute("SELECT id, document, meta, vector FROM staged WHERE op = ? ORDER BY rowid",
                                    (op,)).fetchall()
                out.append(Pending(op, action, actor, bool(changes_set),
                                   [Item(r[0], r[1], None if r[2] is None else json.loads(r[2]), unpack_vector(r[3]))
                                    for r in rows]))
        return out

    def has_pending(self) -> bool:
        with self._guard() as conn:
            return conn.execute("SELECT 1 FROM ops WHERE state = 'pending' LIMIT 1").fetchone() is not None

    def commit(self, op: int) -> None:
        """Make a journaled op the committed state: records, audit rows, counted pairs, done — one transaction."""
        with self._guard() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT actor, audit_rows, counted, changes_set, state FROM ops WHERE op = ?",
                                   (op,)).fetchone()
                if row is None or row[4] != "pending":
                    conn.execute("ROLLBACK")
                    return
                actor, audit_rows, counted, changes_set = row[0], json.loads(row[1]), json.loads(row[2]), row[3]
                conn.execute("DELETE FROM records WHERE id IN (SELECT id FROM staged WHERE op = ? AND document IS NULL)",
                             (op,))
                conn.execute("INSERT OR REPLACE INTO records(id, kind, document, meta, vector) "
                             "SELECT id, json_extract(meta, '$.kind'), document, meta, vector FROM staged "
                             "WHERE op = ? AND document IS NOT NULL ORDER BY rowid", (op,))
                at = now_iso()
                conn.executemany(
                    "INSERT INTO audit(at, action, record_id, kind, actor, detail, op) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(at, a, rid, kind, actor, json.dumps(detail, ensure_ascii=False, default=str), op)
                     for a, rid, kind, detail in audit_rows])
                conn.executemany("INSERT OR IGNORE INTO counted(task_key, record_id) VALUES (?, ?)",
                                 [tuple(p) for p in counted])
                if changes_set:
                    conn.execute("INSERT OR REPLACE INTO info(key, value) VALUES ('write_token', ?)",
                                 (uuid.uuid4().hex,))
                conn.execute("DELETE FROM staged WHERE op = ?", (op,))
                conn.execute("UPDATE ops SET state = 'done' WHERE op = ?", (op,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # ----------------------------------------------------------------------------------------------- history
    def append(self, action: str, record_id: str, actor: str, kind: str | None = None,
               detail: dict[str, Any] | None = None) -> None:
        """An audit row outside any op (repairs and backfills, which change nothing a reader could see half)."""
        with self._guard() as conn:
            conn.execute("INSERT INTO audit(at, action, record_id, kind, actor, detail) VALUES (?, ?, ?, ?, ?, ?)",
                         (now_iso(), action, record_id, kind, actor,
                          json.dumps(detail or {}, ensure_ascii=False, default=str)))

    def history(self, record_id: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        sql = "SELECT seq, at, action, record_id, kind, actor, detail FROM audit"
        args: list[Any] = []
        if record_id is not None:
            sql += " WHERE record_id = ?"
            args.append(record_id)
        sql += " ORDER BY seq"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        with self._guard() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    def entry_count(self) -> int:
        with self._guard() as conn:
            return conn.execute("SELECT count(*) FROM audit").fetchone()[0]

    def audited_ids(self) -> dict[str, str]:
        """Each record id the log has seen, with its last add/adopt/delete action."""
        with self._guard() as conn:
            rows = conn.execute("SELECT record_id, action FROM audit WHERE action IN ('add', 'adopt', 'delete') "
                                "ORDER BY seq").fetchall()
        return dict(rows)

    # ----------------------------------------------------------------------------------------------- repair
    def replace_records(self, items: Sequence[Item]) -> None:
        """Set the committed records to exactly ``items`` (repair only; the caller audits what it did)."""
        with self._guard() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM records")
                conn.executemany("INSERT INTO records(id, kind, document, meta, vector) VALUES (?, ?, ?, ?, ?)",
                                 [(i.id, (i.meta or {}).get("kind", ""), i.document,
                                   json.dumps(i.meta or {}, ensure_ascii=False), pack_vector(i.vector))
                                  for i in items])
                conn.execute("INSERT OR REPLACE INTO info(key, value) VALUES ('write_token', ?)", (uuid.uuid4().hex,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def salvage_rows(self, damaged: Path) -> int:
        """Copy whatever audit rows can still be read from a damaged ledger file (repair); returns how many."""
        rows: list[tuple] = []
        try:
            old = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
            try:
                for row in old.execute("SELECT at, action, record_id, kind, actor, detail FROM audit ORDER BY seq"):
                    rows.append(row)
            finally:
                old.close()
        except sqlite3.DatabaseError:
            pass  # rows up to the damage are kept; the rest is lost with the file
        with self._guard() as conn:
            conn.executemany("INSERT INTO audit(at, action, record_id, kind, actor, detail) VALUES (?, ?, ?, ?, ?, ?)",
                             rows)
        return len(rows)

    def close(self) -> None:
        self._conn.close()
