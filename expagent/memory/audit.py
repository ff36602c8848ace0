"""An append-only audit log of every change to memory (SQLite, one row per action).

Each row says what happened (``add``, ``update``, ``retire``, ``restore``, ``delete``, ``usage``, ``evidence``),
to which record, who or what did it (``actor``: "cli:rm", "import-swebench", "loop:distill", a user name...),
when, and a JSON ``detail``. Rows are only ever inserted; nothing in expagent updates or deletes them.
With a shared Chroma server the log is local to each machine: it records what *this* machine did.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expagent.memory.records import now_iso

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
"""


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


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # one connection shared by the threads of a process (replay --workers), serialised by a lock
        self._conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def append(self, action: str, record_id: str, actor: str, kind: str | None = None,
               detail: dict[str, Any] | None = None) -> None:
        self.append_many([(action, record_id, kind, detail or {})], actor)

    def append_many(self, rows: list[tuple[str, str, str | None, dict[str, Any]]], actor: str) -> None:
        at = now_iso()
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT INTO audit(at, action, record_id, kind, actor, detail) VALUES (?, ?, ?, ?, ?, ?)",
                [(at, action, rid, kind, actor, json.dumps(detail, ensure_ascii=False, default=str))
                 for action, rid, kind, detail in rows])

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
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    def close(self) -> None:
        self._conn.close()
