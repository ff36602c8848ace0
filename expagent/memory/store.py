"""The memory store: episodes and lessons in one Chroma collection, with a ledger beside it.

Layout under the memory directory (``$EXPAGENT_HOME/memory`` by default)::

    chroma/        the embedded Chroma database (not used with a Chroma server)
    audit.sqlite   the ledger: append-only audit log, write journal, committed records (see ``audit.py``)
    write.lock     the cross-process write lock
    generation     stamp every writer rewrites (lets other writers notice their Chroma handle is stale)
    cache/         lexical (BM25) indexes, rebuilt whenever the set of records changes

Each Chroma item is one record. Its *document* is the record's full JSON; its *embedding* is computed by expagent
from ``records.record_text`` (never by Chroma); its *metadata* holds the scalar fields retrieval filters on:
``kind``, ``repo`` ("" for general lessons), ``instance_id``, ``created_ts``, ``status``, ``files``/``symbols``
(JSON lists) and the usage counters ``n_retrieved``, ``n_resolved``, ``n_unresolved``.

**One writer protocol.** Every write (add, usage counters, retire/restore, evidence, delete, a consolidation, an
import) runs as one *op* under the write lock: (1) its intent — the new state of every record it touches — is
journaled in the ledger; (2) it is applied to Chroma (an idempotent upsert/delete); (3) the ledger commits it (records,
audit rows, counted usage pairs, op done) in one SQLite transaction. An op left pending by a killed writer is rolled
forward by the next writer (or ``memory check --repair``): its journal holds everything needed to apply it again.
Several writes can be grouped into one op with :meth:`MemoryStore.transaction`.

**Readers** of the embedded store read the ledger's committed records (one SQLite snapshot per call): they never
touch Chroma's per-process state, so a concurrent writer can neither fail them nor show them half an op. With a
Chroma server, reads go to the server (the ledger then only knows this machine's writes).

**On open** the cheap part of ``memory check`` runs: the ledger is readable, its embedding model and schema match,
Chroma's database exists when the ledger says it should and holds as many records. Anything else is a one-line
:class:`StoreDamaged` naming ``expagent memory check --repair``; a damaged memory is never silently empty.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlparse

from expagent import paths
from expagent.errors import ExpagentError, RuntimeFailure, UsageError
from expagent.fsutil import atomic_write_text
from expagent.memory.audit import LEDGER_SCHEMA, AuditEntry, AuditLog, Item
from expagent.memory.embedding import DEFAULT_EMBEDDING, Embedder, EmbeddingError, chroma_function, make_embedder
from expagent.memory.lock import LockTimeout, write_lock
from expagent.redact import redact_data
from expagent.memory.records import (
    SCHEMA_VERSION,
    Episode,
    Lesson,
    Record,
    RecordError,
    parse_time,
    record_from_dict,
    record_text,
    usefulness,
)

COLLECTION = "expagent_memory"
# Embedded Chroma keeps per-process state that another process's writes make stale. Every writer on this machine
# therefore stamps ``memory/generation``; a writer that finds a stamp it did not write drops Chroma's per-process
# client cache and reconnects (about 0.1 s, only after a foreign write). Readers never use Chroma.
_epoch = 0  # bumped whenever this process drops Chroma's client cache
_own_generations: set[str] = set()  # stamps written by this process (no reconnect needed for those)
_connected: set[str] = set()  # embedded Chroma directories this process has opened (its client cache holds them)
_PAGE = 2000  # Chroma reads are paged: one huge get() holds everything in memory twice
_CHUNK = 500  # items per Chroma upsert
WRITTEN_TS = "written_ts"  # server only: when a record was last written (seconds since the epoch)
SERVER_MARK_SLACK = 120.0  # seconds a server catch-up looks back before its mark


class MemoryOperationError(ExpagentError):
    """A memory operation the user asked for cannot be done (unknown id, immutable record, ...)."""


class UnknownRecord(MemoryOperationError):
    pass


class ChromaUnavailable(RuntimeFailure):
    """The Chroma server (or embedded database) cannot be reached or used: exit code 1."""


class StoreDamaged(ExpagentError):
    """The memory's databases are missing, damaged or disagree (``expagent memory check`` says how)."""


REPAIR_HINT = "run 'expagent memory check' for details, 'expagent memory check --repair' to fix it"


@dataclass
class Usage:
    """How often an item was retrieved and how the runs it was injected into ended."""

    retrieved: int = 0
    resolved: int = 0
    unresolved: int = 0

    @property
    def usefulness(self) -> float:
        return usefulness(self.resolved, self.unresolved)

    def to_dict(self) -> dict[str, Any]:
        return {"retrieved": self.retrieved, "resolved": self.resolved, "unresolved": self.unresolved,
                "usefulness": round(self.usefulness, 4)}


def _metadata(record: Record, usage: Usage) -> dict[str, Any]:
    return {
        "kind": record.kind,
        "repo": record.repo,
        "instance_id": getattr(record, "instance_id", None) or "",
        "created_ts": float(parse_time(record.created_at) or 0.0),
        "status": getattr(record, "status", "active"),
        "files": json.dumps(getattr(record, "files", []), ensure_ascii=False),
        "symbols": json.dumps(getattr(record, "symbols", []), ensure_ascii=False),
        "n_retrieved": usage.retrieved,
        "n_resolved": usage.resolved,
        "n_unresolved": usage.unresolved,
    }


def usage_from(meta: dict[str, Any]) -> Usage:
    return Usage(int(meta.get("n_retrieved") or 0), int(meta.get("n_resolved") or 0),
                 int(meta.get("n_unresolved") or 0))


def record_from_document(doc: str, meta: dict[str, Any]) -> Record:
    record = record_from_dict(json.loads(doc))
    if isinstance(record, Lesson):
        # the counters and status of a lesson live in metadata (updated without re-embedding); mirror them
        usage = usage_from(meta)
        record.times_retrieved, record.injected_resolved, record.injected_unresolved = (
            usage.retrieved, usage.resolved, usage.unresolved)
    return record


def _document(record: Record) -> str:
    # what is stored never holds a credential, whatever the run or import it came from
    return json.dumps(redact_data(record.to_dict()), ensure_ascii=False, sort_keys=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


def _matches(meta: dict[str, Any], where: dict[str, Any] | None) -> bool:
    """Chroma's ``where`` for the equality filters the store itself builds (``{k: v}`` and ``{"$and": [...]}``)."""
    if not where:
        return True
    if "$and" in where:
        return all(_matches(meta, clause) for clause in where["$and"])
    return all(meta.get(k) == v for k, v in where.items())


def _client(memory_dir: Path, chroma_url: str | None) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if chroma_url:
        parsed = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        if not parsed.hostname:
            raise UsageError(f"not a Chroma server URL: {chroma_url!r} (expected http://HOST:PORT)")
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        try:
            client = chromadb.HttpClient(host=parsed.hostname, port=port, ssl=parsed.scheme == "https",
                                         settings=settings)
            client.heartbeat()
        except Exception as exc:  # connection refused, DNS, TLS: all mean "cannot use this server"
            raise ChromaUnavailable(f"cannot reach the Chroma server at {chroma_url}: {_one_line(exc)[:200]}") from None
        return client
    (memory_dir / "chroma").mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(memory_dir / "chroma"), settings=settings)


@dataclass
class _Tx:
    """The changes of one op, collected before it is journaled (reads inside the op see them)."""

    actor: str
    overlay: dict[str, Item] = field(default_factory=dict)  # id -> new state (document None: deleted)
    audit_rows: list[tuple[str, str, str | None, dict[str, Any]]] = field(default_factory=list)
    counted: list[tuple[str, str]] = field(default_factory=list)
    changes_set: bool = False  # a record was added or deleted (caches keyed on the write token must rebuild)

    def put(self, item: Item, new: bool = False) -> None:
        self.overlay[item.id] = item
        self.changes_set = self.changes_set or new

    def delete(self, record_id: str) -> None:
        self.overlay[record_id] = Item(record_id, None)
        self.changes_set = True

    def audit(self, action: str, record_id: str, kind: str | None, detail: dict[str, Any] | None = None) -> None:
        self.audit_rows.append((action, record_id, kind, detail or {}))


class ReadView:
    """A Chroma-shaped, read-only view of the committed records (``get`` and ``count``), for code that reads the
    collection directly (retrieval, the lexical index). Embedded: served by the ledger; server: by Chroma."""

    def __init__(self, store: "MemoryStore") -> None:
        self._store = store

    def count(self) -> int:
        return self._store.count()

    def get(self, ids: Sequence[str] | None = None, where: dict[str, Any] | None = None,
            include: Sequence[str] = ("documents", "metadatas"), limit: int | None = None,
            offset: int = 0) -> dict[str, Any]:
        items = self._store._read(ids, where, with_vectors="embeddings" in include)
        if limit is not None or offset:
            items = items[offset: None if limit is None else offset + limit]
        return {"ids": [i.id for i in items],
                "documents": [i.document for i in items] if "documents" in include else None,
                "metadatas": [i.meta for i in items] if "metadatas" in include else None,
                "embeddings": [i.vector for i in items] if "embeddings" in include else None}


class MemoryStore:
    """Episodes and lessons with provenance, stored in Chroma; every change journaled and audited.

    Open with :meth:`open`. Writes hold a cross-process file lock; reads take no lock.
    """

    def __init__(self, memory_dir: Path, audit: AuditLog, embedding: str, chroma_url: str | None,
                 writable: bool) -> None:
        self.memory_dir = memory_dir
        self.chroma_url = chroma_url
        self.embedding_name = embedding
        self.audit = audit
        self.writable = writable
        self._embedder: Embedder | None = None
        self._client: Any = None
        self._chroma_coll: Any = None
        self._lock_path = memory_dir / "write.lock"
        self._generation = ""
        self._epoch = _epoch
        self._local = threading.local()
        self._connect_lock = threading.RLock()

    # ----------------------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, home: Path | str | None = None, chroma_url: str | None = None,
             embedding: str = DEFAULT_EMBEDDING, create: bool = True, check: bool = True) -> "MemoryStore":
        """Open the memory under ``home`` (an expagent home; default ``paths.home()``).

        ``chroma_url`` selects a Chroma server instead of the embedded database (default: $EXPAGENT_CHROMA_URL).
        ``embedding`` names the embedder ("minilm-int8" or "litellm:<model>"); it must match the one the memory
        was created with; it is loaded only when something is embedded. ``create=False`` opens for reading: a
        memory that does not exist reads as empty and no file is created. ``check=False`` skips the cheap check
        (``memory check`` runs the full one itself).
        """
        home_dir = Path(home).expanduser() if home is not None else paths.home()
        memory_dir = home_dir / "memory"
        if chroma_url is None:
            chroma_url = os.environ.get("EXPAGENT_CHROMA_URL") or None
        name = (embedding or DEFAULT_EMBEDDING).strip()
        if name != "minilm-int8" and not (name.startswith("litellm:") and len(name) > len("litellm:")):
            raise EmbeddingError(f"unknown embedding model {name!r} (use 'minilm-int8' or 'litellm:<model>')")
        audit_path = memory_dir / "audit.sqlite"
        if not create and not audit_path.exists():
            if check and (memory_dir / "chroma" / "chroma.sqlite3").exists() and not chroma_url:
                raise StoreDamaged(f"the memory's audit database {audit_path} is missing but {memory_dir / 'chroma'} "
                                   f"exists; {REPAIR_HINT}")
            store = cls(memory_dir, AuditLog(None), name, chroma_url, writable=False)
        else:
            memory_dir.mkdir(parents=True, exist_ok=True)
            store = cls(memory_dir, AuditLog(audit_path), name, chroma_url, writable=True)
        try:
            store._check_model(adopt=create)
            if chroma_url:
                store._connect()
            if check:
                store.quick_check()
            if store.writable:
                store._finish_pending()
                if store.audit.info("needs_backfill") and not chroma_url:
                    with write_lock(store._lock_path):
                        store._backfill()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.audit.close()

    def __enter__(self) -> "MemoryStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def embedder(self) -> Embedder:
        """The embedding model (loaded on first use: listing and showing records never load it)."""
        if self._embedder is None:
            self._embedder = make_embedder(self.embedding_name)
        return self._embedder

    def _check_model(self, adopt: bool) -> None:
        stored = self.audit.info("embedding_model")
        if stored is None:
            if adopt and self.audit.path is not None and not self.audit.info("needs_backfill"):
                self.audit.set_info("embedding_model", self.embedding_name)
            return
        if stored != self.embedding_name:
            raise EmbeddingError(
                f"this memory was built with embedding model {stored!r}, not {self.embedding_name!r}; "
                f"use --embedding {stored} (or EXPAGENT_EMBEDDING_MODEL), or export and re-import into a new home")

    @property
    def chroma_path(self) -> Path:
        return self.memory_dir / "chroma" / "chroma.sqlite3"

    def chroma_sqlite_count(self) -> int | None:
        """How many items the embedded Chroma database holds, read from its SQLite file without chromadb (None
        when the file has a layout this does not know). A missing or damaged file raises :class:`StoreDamaged`."""
        if not self.chroma_path.is_file():
            raise StoreDamaged(f"the memory's Chroma database {self.chroma_path.parent} is missing while the audit "
                               f"log holds {self.audit.count()} record(s); {REPAIR_HINT}")
        try:
            conn = sqlite3.connect(f"file:{self.chroma_path}?mode=ro", uri=True, timeout=2)
        except sqlite3.DatabaseError as exc:
            raise StoreDamaged(f"the memory's Chroma database {self.chroma_path} is damaged ({_one_line(exc)}); "
                               f"{REPAIR_HINT}") from None
        try:
            conn.execute("PRAGMA schema_version").fetchone()
            try:
                return int(conn.execute("SELECT count(*) FROM embeddings").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None
                raise
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            raise StoreDamaged(f"the memory's Chroma database {self.chroma_path} is damaged ({_one_line(exc)}); "
                               f"{REPAIR_HINT}") from None
        finally:
            conn.close()

    def _ledger_version(self) -> tuple[Any, ...]:
        return (self.audit.info("write_token"), self.audit.count(), self.audit.has_pending())

    def quick_check(self) -> None:
        """The cheap part of ``memory check`` (no chromadb, no embedding model): raises :class:`StoreDamaged`."""
        schema = self.audit.info("schema_version")
        if schema is not None and int(schema) > LEDGER_SCHEMA:
            raise StoreDamaged(f"the memory's audit database has schema {schema}; this expagent knows up to "
                               f"{LEDGER_SCHEMA} (upgrade expagent)")
        if self.chroma_url or self.audit.path is None or self.audit.info("needs_backfill"):
            return
        before = self._ledger_version()
        if not self.chroma_path.is_file() and not self.audit.info("chroma_created") and not before[1]:
            return  # a new memory: Chroma's database is created by the first write
        chroma = self.chroma_sqlite_count()
        if chroma is None or before[2]:
            return  # an unknown layout, or a write in progress (finished by the next writer)
        if self._ledger_version() == before and chroma != before[1]:
            raise StoreDamaged(f"the memory has diverged: Chroma holds {chroma} record(s), the audit log "
                               f"{before[1]}; {REPAIR_HINT}")

    # ----------------------------------------------------------------------------------------------- Chroma
    def _connect(self, force: bool = False) -> Any:
        """The Chroma collection (connecting, or reconnecting after another process wrote, as needed)."""
        global _epoch
        with self._connect_lock:
            if self.chroma_url:
                if self._chroma_coll is None:
                    self._client = _client(self.memory_dir, self.chroma_url)
                    self._chroma_coll = _open_collection(self._client, self.embedder_for_chroma())
                return self._chroma_coll
            generation = self._read_generation()
            stale = generation != self._generation and generation not in _own_generations
            known = self._chroma_coll is not None or str(self.memory_dir) in _connected
            if known and (stale or force) and self._epoch == _epoch:
                from chromadb.api.shared_system_client import SharedSystemClient

                SharedSystemClient.clear_system_cache()
                _epoch += 1
            if self._chroma_coll is None or self._epoch != _epoch:
                try:
                    self._client = _client(self.memory_dir, None)
                    self._chroma_coll = _open_collection(self._client, self.embedder_for_chroma())
                except ExpagentError:
                    raise
                except Exception as exc:
                    raise StoreDamaged(f"cannot open the memory's Chroma database {self.memory_dir / 'chroma'} "
                                       f"({_one_line(exc)}); {REPAIR_HINT}") from None
                self._epoch = _epoch
                _connected.add(str(self.memory_dir))
                if self.audit.path is not None and not self.audit.info("chroma_created"):
                    self.audit.set_info("chroma_created", "1")
            self._generation = generation
            return self._chroma_coll

    def embedder_for_chroma(self) -> Any:
        """A light stand-in carrying the model name (Chroma only needs the name; vectors come from expagent)."""
        return _NamedEmbedder(self.embedding_name, self)

    def chroma_collection(self) -> Any:
        """The real Chroma collection (for ``memory check`` and tests); writes go through the store only."""
        return self._connect()

    def _read_generation(self) -> str:
        try:
            return (self.memory_dir / "generation").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    def _stamp(self) -> None:
        """Record (under the write lock) that this process changed the embedded store."""
        if self.chroma_url:
            return
        generation = uuid.uuid4().hex
        _own_generations.add(generation)
        atomic_write_text(self.memory_dir / "generation", generation)
        self._generation = generation

    @contextmanager
    def _chroma_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except ExpagentError:
            raise
        except Exception as exc:  # chromadb's Rust core raises its own errors; the user gets one line
            raise StoreDamaged(f"Chroma failed while {doing} ({_one_line(exc)}); the write stays journaled and "
                               f"is finished by the next write; {REPAIR_HINT}") from None

    def _apply(self, items: Sequence[Item], changes_set: bool) -> None:
        """Apply an op's items to Chroma: upserts and deletes, both idempotent (so an op can be applied again)."""
        coll = self._connect()
        puts = [i for i in items if not i.deleted]
        dels = [i.id for i in items if i.deleted]
        missing = [i for i in puts if i.vector is None]
        if missing:  # only a repair of records written without a vector gets here
            vectors = self.embedder.embed([record_text(record_from_dict(json.loads(i.document or "{}")))
                                           for i in missing])
            for i, v in zip(missing, vectors):
                i.vector = v
        # on a server, each record carries when it was written, so other processes catch up by asking what
        # was written since a time (``ids_since``) instead of reading every id
        stamp = {WRITTEN_TS: time.time()} if self.chroma_url else {}
        with self._chroma_errors("applying a write"):
            for start in range(0, len(puts), _CHUNK):
                chunk = puts[start:start + _CHUNK]
                coll.upsert(ids=[i.id for i in chunk], documents=[i.document for i in chunk],
                            metadatas=[{**(i.meta or {}), **stamp} for i in chunk],
                            embeddings=[i.vector for i in chunk])
            if dels:
                coll.delete(ids=dels)
            if changes_set:
                meta = dict(coll.metadata or {})
                meta["write_token"] = uuid.uuid4().hex
                coll.modify(metadata=meta)
        self._stamp()

    # ----------------------------------------------------------------------------------------------- ops
    @contextmanager
    def transaction(self, actor: str = "memory") -> Iterator[_Tx]:
        """Group writes into one op: journaled, applied and committed together, visible to readers only whole.

        Nested calls (and the store's own write methods inside the block) join the outer op. An exception inside
        the block writes nothing."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx
            return
        if not self.writable:
            raise MemoryOperationError("this memory was opened read-only")
        with write_lock(self._lock_path):
            self._finish_pending_locked()
            tx = _Tx(actor)
            self._local.tx = tx
            try:
                yield tx
            finally:
                self._local.tx = None
            self._run_op(tx)

    def _run_op(self, tx: _Tx) -> None:
        if not tx.overlay and not tx.audit_rows:
            return
        action = tx.audit_rows[0][0] if tx.audit_rows else "write"
        items = list(tx.overlay.values())
        op = self.audit.begin(action, tx.actor, items, tx.audit_rows, tx.counted, tx.changes_set)
        self._apply(items, tx.changes_set)
        self.audit.commit(op)

    def _finish_pending(self) -> None:
        """Roll forward ops a killed writer left pending. When the lock is taken, the pending op is a live writer's
        own (it commits it itself): nothing to do, and no waiting for it."""
        if not self.audit.has_pending():
            return
        try:
            with write_lock(self._lock_path, timeout=0.0):
                self._finish_pending_locked()
        except LockTimeout:
            pass

    def _finish_pending_locked(self) -> list[int]:
        done = []
        for pending in self.audit.pending():
            self._apply(pending.items, pending.changes_set)
            self.audit.commit(pending.op)
            done.append(pending.op)
        return done

    def _backfill(self) -> None:
        """Copy the records of a memory written before the ledger existed into it (once)."""
        coll = self._connect()
        items = self._chroma_items(None, None, with_vectors=True)
        stored = (coll.metadata or {}).get("embedding_model")
        if stored and self.audit.info("embedding_model") is None:
            self.audit.set_info("embedding_model", str(stored))
            self._check_model(adopt=False)
        self.audit.replace_records(items)
        self.audit.append("backfill", "*", "memory", None, {"records": len(items)})
        self.audit.set_info("needs_backfill", None)

    # ----------------------------------------------------------------------------------------------- reading
    def _chroma_items(self, ids: Sequence[str] | None, where: dict[str, Any] | None,
                      with_vectors: bool) -> list[Item]:
        coll = self._connect()
        include = ["documents", "metadatas"] + (["embeddings"] if with_vectors else [])
        out: list[Item] = []
        with self._chroma_errors("reading"):
            if ids is not None:
                ids = list(ids)
                for start in range(0, len(ids), _PAGE):
                    got = coll.get(ids=ids[start:start + _PAGE], where=where, include=include)
                    out += _items_of(got, with_vectors)
                return out
            offset = 0
            while True:
                got = coll.get(where=where, include=include, limit=_PAGE, offset=offset)
                if not got["ids"]:
                    return out
                out += _items_of(got, with_vectors)
                offset += len(got["ids"])

    def _read(self, ids: Sequence[str] | None = None, where: dict[str, Any] | None = None,
              with_vectors: bool = False) -> list[Item]:
        """Committed records (with this thread's op in progress applied), optionally filtered."""
        if ids is not None:
            ids = list(dict.fromkeys(ids))
        if self.chroma_url:
            items = self._chroma_items(ids, where, with_vectors)
        else:
            items = self.audit.items(ids, with_vectors=with_vectors)
            if where:
                items = [i for i in items if _matches(i.meta or {}, where)]
        tx = getattr(self._local, "tx", None)
        if tx is None or not tx.overlay:
            return items
        by_id = {i.id: i for i in items}
        for item_id, item in tx.overlay.items():
            if ids is not None and item_id not in ids:
                continue
            if item.deleted or not _matches(item.meta or {}, where):
                by_id.pop(item_id, None)
            else:
                by_id[item_id] = item
        if ids is not None:
            return [by_id[i] for i in ids if i in by_id]
        return list(by_id.values())

    @property
    def collection(self) -> ReadView:
        """The committed records through Chroma's ``get``/``count`` interface (read-only)."""
        return ReadView(self)

    def write_token(self) -> str:
        """Changes whenever records are added or deleted (caches key on it)."""
        if self.chroma_url:
            coll = self._connect()
            with self._chroma_errors("reading"):
                # one request: every add or delete through expagent sets a new token (``_apply``); a collection
                # written before tokens existed has none, and its count stands in
                fresh = self._client.get_collection(COLLECTION, embedding_function=chroma_function(
                    self.embedder_for_chroma()))
                token = str((fresh.metadata or {}).get("write_token", ""))
                return token if token else f":{coll.count()}"
        return self.audit.write_token()

    def count(self) -> int:
        if self.chroma_url:
            with self._chroma_errors("reading"):
                return int(self._connect().count())
        return self.audit.count()

    def get(self, record_id: str) -> Record:
        """The record with this id (UnknownRecord if there is none)."""
        got = self._read([record_id])
        if not got:
            raise UnknownRecord(f"no memory record with id {record_id!r}")
        return record_from_document(got[0].document or "", got[0].meta or {})

    def get_many(self, ids: Sequence[str]) -> dict[str, tuple[Record, Usage]]:
        if not ids:
            return {}
        return {i.id: (record_from_document(i.document or "", i.meta or {}), usage_from(i.meta or {}))
                for i in self._read(ids)}

    def usage(self, record_id: str) -> Usage:
        got = self._read([record_id])
        if not got:
            raise UnknownRecord(f"no memory record with id {record_id!r}")
        return usage_from(got[0].meta or {})

    def exists(self, record_id: str) -> bool:
        return bool(self._read([record_id]))

    def iter_raw(self, where: dict[str, Any] | None = None, include_embeddings: bool = False
                 ) -> Iterator[tuple[str, str, dict[str, Any], list[float] | None]]:
        """Every item as ``(id, document, metadata, embedding)``."""
        for item in self._read(None, where, with_vectors=include_embeddings):
            yield item.id, item.document or "", item.meta or {}, item.vector

    def all_ids(self) -> list[str]:
        """Every record id (ids only: cheap on a server too)."""
        if not self.chroma_url:
            return self.audit.ids()
        coll, out = self._connect(), []
        with self._chroma_errors("reading"):
            while True:
                got = coll.get(include=[], limit=_PAGE * 5, offset=len(out))
                if not got["ids"]:
                    return out
                out.extend(got["ids"])

    def change_mark(self) -> float:
        """A mark to ask :meth:`ids_since` about later: the ledger's position (embedded), or this machine's
        clock (server: records carry the time they were written)."""
        return time.time() if self.chroma_url else float(self.audit.mark())

    def ids_since(self, mark: float) -> tuple[list[str], float, int]:
        """``(ids written since mark, the new mark, how many records there are)``: what a cache of the records
        needs to catch up without reading every id. On a server the ids are those stamped within
        ``SERVER_MARK_SLACK`` seconds before the mark or later (a write in flight, other machines' clocks), so
        some may be known already; one the window misses (a clock further off, a foreign client) makes the count
        disagree, and the caller reads every id."""
        if not self.chroma_url:
            ids, new_mark, count = self.audit.ids_since(int(mark))
            return ids, float(new_mark), count
        coll = self._connect()
        now = time.time()
        with self._chroma_errors("reading"):
            count = int(coll.count())
            got = coll.get(where={WRITTEN_TS: {"$gte": mark - SERVER_MARK_SLACK}}, include=[])
        return list(got["ids"]), now, count

    def list(self, kind: str | None = None, repo: str | None = None, status: str | None = None
             ) -> list[Record]:
        """Records filtered by kind ("episode" | "lesson"), repo and status ("active" | "retired" | None = all)."""
        clauses = []
        if kind:
            clauses.append({"kind": kind})
        if repo is not None:
            clauses.append({"repo": repo})
        if status:
            clauses.append({"status": status})
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        return [record_from_document(doc, meta) for _id, doc, meta, _e in self.iter_raw(where)]

    def history(self, record_id: str) -> list[AuditEntry]:
        """Every audited action on this record, oldest first."""
        return self.audit.history(record_id)

    # ----------------------------------------------------------------------------------------------- writing
    def add_episode(self, episode: Episode, actor: str) -> str:
        """Store an episode (immutable). Adding an episode that already exists (same id) is a no-op."""
        if not isinstance(episode, Episode):
            raise RecordError("add_episode needs an Episode")
        self.add_records([episode], actor)
        return episode.id

    def add_lesson(self, lesson: Lesson, actor: str) -> str:
        if not isinstance(lesson, Lesson):
            raise RecordError("add_lesson needs a Lesson")
        self.add_records([lesson], actor)
        return lesson.id

    def add_records(self, records: Sequence[Record], actor: str,
                    embeddings: Sequence[list[float] | None] | None = None,
                    usages: Sequence[Usage | None] | None = None,
                    audit_detail: dict[str, Any] | None = None) -> list[str]:
        """Add records in one op (all or nothing); records whose id is already stored are skipped. Returns the ids
        added.

        ``embeddings`` (optional, aligned with ``records``) are used as given (import of an export made with the
        same embedding model); missing ones are computed. ``usages`` carry counters over (import).
        """
        if not records:
            return []
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            raise RecordError("the same record id appears twice in one batch")
        vectors: list[list[float] | None] = list(embeddings) if embeddings is not None else [None] * len(records)
        # embedding is the slow part: do it before taking the lock, for records not already stored
        present = {i.id for i in self._read(ids)}
        missing = [n for n, v in enumerate(vectors) if v is None and ids[n] not in present]
        if missing:
            for n, v in zip(missing, self.embedder.embed([record_text(records[n]) for n in missing])):
                vectors[n] = v
        with self.transaction(actor) as tx:
            present = {i.id for i in self._read(ids)}
            keep = [n for n in range(len(records)) if ids[n] not in present]
            late = [n for n in keep if vectors[n] is None]  # deleted by someone else since the first look
            for n, v in zip(late, self.embedder.embed([record_text(records[n]) for n in late]) if late else []):
                vectors[n] = v
            for n in keep:
                record = records[n]
                usage = usages[n] if usages and usages[n] else Usage()
                tx.put(Item(record.id, _document(record), _metadata(record, usage), list(vectors[n] or [])), new=True)
                tx.audit("add", record.id, record.kind,
                         {"repo": record.repo, "provenance": record.provenance, **(audit_detail or {})})
        return [ids[n] for n in keep]

    def _current(self, record_id: str) -> tuple[Record, Item]:
        got = self._read([record_id], with_vectors=True)
        if not got:
            raise UnknownRecord(f"no memory record with id {record_id!r}")
        return record_from_document(got[0].document or "", got[0].meta or {}), got[0]

    def _get_lesson(self, record_id: str) -> tuple[Lesson, Item]:
        record, item = self._current(record_id)
        if not isinstance(record, Lesson):
            raise MemoryOperationError(f"{record_id} is an episode; episodes are immutable (only lessons change)")
        return record, item

    def _rewrite_lesson(self, tx: _Tx, lesson: Lesson, item: Item) -> None:
        """Stage a lesson's new JSON and metadata (same text, so the same vector)."""
        usage = Usage(lesson.times_retrieved, lesson.injected_resolved, lesson.injected_unresolved)
        tx.put(Item(lesson.id, _document(lesson), _metadata(lesson, usage), item.vector))

    def retire(self, record_id: str, actor: str, reason: str) -> Lesson:
        """Retire a lesson (it stays stored and visible in ``ls --status retired``, but is never retrieved)."""
        return self._set_status(record_id, "retired", actor, reason)

    def restore(self, record_id: str, actor: str) -> Lesson:
        """Make a retired lesson active again."""
        return self._set_status(record_id, "active", actor, None)

    def _set_status(self, record_id: str, status: str, actor: str, reason: str | None,
                    detail: dict[str, Any] | None = None) -> Lesson:
        with self.transaction(actor) as tx:
            lesson, item = self._get_lesson(record_id)
            lesson.status = status  # type: ignore[assignment]
            lesson.retired_reason = reason if status == "retired" else None
            self._rewrite_lesson(tx, lesson, item)
            tx.audit("retire" if status == "retired" else "restore", record_id, "lesson",
                     detail if detail is not None else ({"reason": reason} if reason else {}))
        return lesson

    def add_lesson_version(self, old_id: str, new_lesson: Lesson, actor: str) -> str:
        """Add ``new_lesson`` as the next version of ``old_id`` (one op): it supersedes the old one, which is retired
        and keeps a link forward (``superseded_by``). The new version inherits the old one's evidence."""
        old, _item = self._get_lesson(old_id)
        new_lesson.supersedes = old_id
        new_lesson.version = old.version + 1
        new_lesson.source_episodes = list(dict.fromkeys(old.source_episodes + new_lesson.source_episodes))
        new_lesson.id = ""
        new_lesson.__post_init__()  # a new id for the new content
        with self.transaction(actor) as tx:
            self.add_records([new_lesson], actor, audit_detail={"supersedes": old_id})
            old, item = self._get_lesson(old_id)
            old.status = "retired"
            old.superseded_by = new_lesson.id
            old.retired_reason = f"superseded by {new_lesson.id}"
            self._rewrite_lesson(tx, old, item)
            tx.audit("retire", old_id, "lesson", {"superseded_by": new_lesson.id})
        return new_lesson.id

    def add_evidence(self, lesson_id: str, episode_id: str, actor: str = "memory") -> Lesson:
        """Link one more supporting episode to a lesson (for near-duplicate lessons: the advice is not rewritten,
        only its evidence grows)."""
        with self.transaction(actor) as tx:
            if not self.exists(episode_id):
                raise UnknownRecord(f"no memory record with id {episode_id!r}")
            lesson, item = self._get_lesson(lesson_id)
            if episode_id not in lesson.source_episodes:
                lesson.source_episodes.append(episode_id)
                self._rewrite_lesson(tx, lesson, item)
                tx.audit("evidence", lesson_id, "lesson", {"episode": episode_id})
        return lesson

    def delete(self, record_id: str, actor: str) -> Record:
        """Remove a record for good (audited with its full JSON, so the deletion itself is recoverable)."""
        with self.transaction(actor) as tx:
            record, _item = self._current(record_id)
            tx.delete(record_id)
            tx.audit("delete", record_id, record.kind, {"record": record.to_dict()})
        return record

    def record_usage(self, ids: Iterable[str], resolved: bool | None, actor: str = "memory",
                     key: str | None = None) -> list[str]:
        """Count that ``ids`` were retrieved; with ``resolved`` True/False also that they were injected into a run
        that was then resolved / not resolved. Unknown ids are an error (nothing is counted then).

        With ``key`` (the task: e.g. a replay's episode key) each (key, record) pair is counted at most once, so a
        resumed run never counts twice. Returns the ids counted."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        with self.transaction(actor) as tx:
            items = self._read(ids, with_vectors=True)
            unknown = sorted(set(ids) - {i.id for i in items})
            if unknown:
                raise UnknownRecord(f"no memory record with id {unknown[0]!r}")
            done = (self.audit.counted_pairs(key, ids) | {r for k, r in tx.counted if k == key}) if key else set()
            counted = []
            for item in items:
                if item.id in done:
                    continue
                meta = dict(item.meta or {})
                meta["n_retrieved"] = int(meta.get("n_retrieved") or 0) + 1
                if resolved is True:
                    meta["n_resolved"] = int(meta.get("n_resolved") or 0) + 1
                elif resolved is False:
                    meta["n_unresolved"] = int(meta.get("n_unresolved") or 0) + 1
                tx.put(Item(item.id, item.document, meta, item.vector))
                tx.audit("usage", item.id, meta.get("kind"), {"resolved": resolved, **({"task": key} if key else {})})
                if key:
                    tx.counted.append((key, item.id))
                counted.append(item.id)
        return counted

    def find_similar_lessons(self, text: str, threshold: float = 0.85, scope: str | None = None,
                             include_retired: bool = False) -> list[tuple[Lesson, float]]:
        """Lessons whose text has cosine similarity >= ``threshold`` with ``text``, most similar first (exact
        cosine over the stored vectors; lessons are few)."""
        import numpy as np

        clauses: list[dict[str, Any]] = [{"kind": "lesson"}]
        if not include_retired:
            clauses.append({"status": "active"})
        if scope is not None:
            clauses.append({"repo": "" if scope == "general" else scope})
        items = [i for i in self._read(None, {"$and": clauses}, with_vectors=True) if i.vector]
        if not items:
            return []
        query = np.asarray(self.embedder.embed([text])[0], dtype=np.float32)
        matrix = np.asarray([i.vector for i in items], dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
        sims = (matrix @ query) / np.where(norms == 0, 1.0, norms)
        order = np.argsort(-sims)
        return [(record_from_document(items[n].document or "", items[n].meta or {}), float(sims[n]))  # type: ignore[misc]
                for n in order if sims[n] >= threshold][:20]


def _items_of(got: dict[str, Any], with_vectors: bool) -> list[Item]:
    embs = got.get("embeddings") if with_vectors else None
    return [Item(item_id, got["documents"][n], dict(got["metadatas"][n] or {}),
                 [float(x) for x in embs[n]] if embs is not None else None)
            for n, item_id in enumerate(got["ids"])]


class _NamedEmbedder:
    """What Chroma's embedding-function wrapper needs from an embedder: its name (and, if Chroma ever asks for a
    vector, the real model, loaded then)."""

    def __init__(self, name: str, store: MemoryStore) -> None:
        self.name = name
        self._store = store

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self._store.embedder.embed(texts)

    def embed_query(self, texts: list[str]) -> list[list[float]]:
        return self._store.embedder.embed_query(texts)


def _open_collection(client: Any, embedder: Any) -> Any:
    """Get the memory collection, creating it only when it does not exist; refuse a different embedder."""
    function = chroma_function(embedder)
    names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
    if COLLECTION in names:
        # read the stored model name before handing Chroma our function, so a mismatch gets our message
        stored = (client.get_collection(COLLECTION).metadata or {}).get("embedding_model")
        if stored != embedder.name:
            raise EmbeddingError(
                f"this memory was built with embedding model {stored!r}, not {embedder.name!r}; "
                f"use --embedding {stored} (or EXPAGENT_EMBEDDING_MODEL), or export and re-import into a new home")
        try:
            return client.get_collection(COLLECTION, embedding_function=function)
        except ValueError as exc:
            raise EmbeddingError(f"cannot open memory collection: {str(exc).splitlines()[0]}") from None
    return client.create_collection(
        COLLECTION,
        embedding_function=function,
        metadata={"embedding_model": embedder.name, "schema_version": SCHEMA_VERSION,
                  "write_token": uuid.uuid4().hex},
        configuration={"hnsw": {"space": "cosine"}},
    )
