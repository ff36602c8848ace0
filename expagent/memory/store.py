"""The memory store: episodes and lessons in one Chroma collection, an audit log beside it.

Layout under the memory directory (``$EXPAGENT_HOME/memory`` by default)::

    chroma/        the embedded Chroma database (not used with a Chroma server)
    audit.sqlite   the append-only audit log
    write.lock     the cross-process write lock
    cache/         lexical (BM25) indexes, rebuilt whenever the set of records changes

Each Chroma item is one record. Its *document* is the record's full JSON (so export/import and a shared server
lose nothing); its *embedding* is computed by expagent from ``records.record_text`` (never by Chroma); its
*metadata* holds the scalar fields retrieval filters on: ``kind``, ``repo`` ("" for general lessons),
``instance_id``, ``created_ts``, ``status``, ``files``/``symbols`` (JSON lists) and the usage counters
``n_retrieved``, ``n_resolved``, ``n_unresolved``. Episodes are immutable; their usage counters live only in the
metadata. The collection metadata records ``embedding_model`` (a mismatch is refused) and ``write_token``, which
changes on every add or delete so that caches know when to rebuild.

Collections are never reset or recreated implicitly: a missing collection is created empty, an existing one is
only opened.

Typical use::

    store = MemoryStore.open()                       # or open(home=..., chroma_url="http://host:8000")
    store.add_episode(episode, actor="loop")
    hits = retrieve(store, issue_text, repo="django/django", before="2024-01-01")
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlparse

from expagent import paths
from expagent.errors import ExpagentError
from expagent.fsutil import atomic_write_text
from expagent.memory.audit import AuditEntry, AuditLog
from expagent.memory.embedding import DEFAULT_EMBEDDING, Embedder, EmbeddingError, chroma_function, make_embedder
from expagent.memory.lock import write_lock
from expagent.redact import redact_data
from expagent.memory.records import (
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
# Embedded Chroma keeps per-process state that another process's writes make stale (a deleted id can then break
# a read). Every writer on this machine therefore stamps ``memory/generation``; a store that finds a stamp it did not
# write drops Chroma's per-process client cache and reconnects (about 0.1 s, only after a foreign write).
_epoch = 0  # bumped whenever this process drops Chroma's client cache
_own_generations: set[str] = set()  # stamps written by this process (no reconnect needed for those)
_PAGE = 2000  # Chroma reads are paged: one huge get() holds everything in memory twice


class MemoryOperationError(ExpagentError):
    """A memory operation the user asked for cannot be done (unknown id, immutable record, ...)."""


class UnknownRecord(MemoryOperationError):
    pass


class ChromaUnavailable(ExpagentError):
    pass


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
    meta: dict[str, Any] = {
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
    return meta


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


def _client(memory_dir: Path, chroma_url: str | None) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if chroma_url:
        parsed = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        if not parsed.hostname:
            raise ChromaUnavailable(f"not a Chroma server URL: {chroma_url!r} (expected http://HOST:PORT)")
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        try:
            client = chromadb.HttpClient(host=parsed.hostname, port=port, ssl=parsed.scheme == "https",
                                         settings=settings)
            client.heartbeat()
        except Exception as exc:  # connection refused, DNS, TLS: all mean "cannot use this server"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ChromaUnavailable(f"cannot reach the Chroma server at {chroma_url}: {reason[:200]}") from None
        return client
    (memory_dir / "chroma").mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(memory_dir / "chroma"), settings=settings)


class MemoryStore:
    """Episodes and lessons with provenance, stored in Chroma; every change audited.

    Open with :meth:`open`. All writes hold a cross-process file lock; reads do not.
    """

    def __init__(self, memory_dir: Path, client: Any, collection: Any, embedder: Embedder,
                 chroma_url: str | None) -> None:
        self.memory_dir = memory_dir
        self.chroma_url = chroma_url
        self.embedder = embedder
        self._client = client
        self._collection = collection
        self.audit = AuditLog(memory_dir / "audit.sqlite")
        self._lock_path = memory_dir / "write.lock"
        self._generation = self._read_generation()
        self._epoch = _epoch

    # ----------------------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, home: Path | str | None = None, chroma_url: str | None = None,
             embedding: str = DEFAULT_EMBEDDING) -> "MemoryStore":
        """Open (creating if needed) the memory under ``home`` (an expagent home; default ``paths.home()``).

        ``chroma_url`` selects a Chroma server instead of the embedded database (default: $EXPAGENT_CHROMA_URL).
        ``embedding`` names the embedder ("minilm-int8" or "litellm:<model>"); it must match the one the memory
        was created with.
        """
        home_dir = Path(home).expanduser() if home is not None else paths.home()
        memory_dir = home_dir / "memory"
        if chroma_url is None:
            chroma_url = os.environ.get("EXPAGENT_CHROMA_URL") or None
        memory_dir.mkdir(parents=True, exist_ok=True)
        embedder = make_embedder(embedding)
        with write_lock(memory_dir / "write.lock"):
            client = _client(memory_dir, chroma_url)
            collection = _open_collection(client, embedder)
        return cls(memory_dir, client, collection, embedder, chroma_url)

    def close(self) -> None:
        self.audit.close()

    def __enter__(self) -> "MemoryStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------------- syncing
    def _read_generation(self) -> str:
        try:
            return (self.memory_dir / "generation").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    def _sync(self) -> None:
        """Reconnect to the embedded database when another process has written since we last looked."""
        global _epoch
        if self.chroma_url:
            return  # the server is the single owner of its state
        generation = self._read_generation()
        if generation == self._generation and self._epoch == _epoch:
            return
        if generation != self._generation and generation not in _own_generations and self._epoch == _epoch:
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient.clear_system_cache()
            _epoch += 1
        if self._epoch != _epoch:
            self._client = _client(self.memory_dir, None)
            self._collection = _open_collection(self._client, self.embedder)
            self._epoch = _epoch
        self._generation = generation

    def _stamp(self) -> None:
        """Record (under the write lock) that this process changed the store."""
        if self.chroma_url:
            return
        import uuid as _uuid

        generation = _uuid.uuid4().hex
        _own_generations.add(generation)
        atomic_write_text(self.memory_dir / "generation", generation)
        self._generation = generation

    # ----------------------------------------------------------------------------------------------- reading
    @property
    def collection(self) -> Any:
        self._sync()
        return self._collection

    def write_token(self) -> str:
        """Changes whenever records are added or deleted (caches key on it)."""
        meta = self._collection_metadata()
        return str(meta.get("write_token", "")) + f":{self.collection.count()}"

    def _collection_metadata(self) -> dict[str, Any]:
        # another process (or machine) may have written since our handle was made: ask again, not the handle
        self._sync()
        fresh = self._client.get_collection(COLLECTION, embedding_function=chroma_function(self.embedder))
        return dict(fresh.metadata or {})

    def count(self) -> int:
        return self.collection.count()

    def get(self, record_id: str) -> Record:
        """The record with this id (UnknownRecord if there is none)."""
        got = self.collection.get(ids=[record_id], include=["documents", "metadatas"])
        if not got["ids"]:
            raise UnknownRecord(f"no memory record with id {record_id!r}")
        return record_from_document(got["documents"][0], got["metadatas"][0])

    def get_many(self, ids: Sequence[str]) -> dict[str, tuple[Record, Usage]]:
        if not ids:
            return {}
        got = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
        return {i: (record_from_document(d, m), usage_from(m))
                for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}

    def usage(self, record_id: str) -> Usage:
        got = self.collection.get(ids=[record_id], include=["metadatas"])
        if not got["ids"]:
            raise UnknownRecord(f"no memory record with id {record_id!r}")
        return usage_from(got["metadatas"][0])

    def exists(self, record_id: str) -> bool:
        return bool(self.collection.get(ids=[record_id], include=[])["ids"])

    def iter_raw(self, where: dict[str, Any] | None = None, include_embeddings: bool = False
                 ) -> Iterator[tuple[str, str, dict[str, Any], list[float] | None]]:
        """Every item as ``(id, document, metadata, embedding)``, paged."""
        include = ["documents", "metadatas"] + (["embeddings"] if include_embeddings else [])
        offset = 0
        while True:
            got = self.collection.get(where=where, include=include, limit=_PAGE, offset=offset)
            if not got["ids"]:
                return
            embs = got.get("embeddings") if include_embeddings else None
            for n, item_id in enumerate(got["ids"]):
                emb = [float(x) for x in embs[n]] if embs is not None else None
                yield item_id, got["documents"][n], got["metadatas"][n], emb
            offset += len(got["ids"])

    def all_ids(self) -> list[str]:
        """Every record id (paged reads of ids only)."""
        out: list[str] = []
        while True:
            got = self.collection.get(include=[], limit=_PAGE * 5, offset=len(out))
            if not got["ids"]:
                return out
            out.extend(got["ids"])

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
        """Add records in one batch; records whose id is already stored are skipped. Returns the ids added.

        ``embeddings`` (optional, aligned with ``records``) are used as given (import of an export made with the
        same embedding model); missing ones are computed. ``usages`` carry counters over (import).
        """
        if not records:
            return []
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            raise RecordError("the same record id appears twice in one batch")
        texts = [record_text(r) for r in records]
        vectors: list[list[float] | None] = list(embeddings) if embeddings is not None else [None] * len(records)
        # embedding is the slow part: skip records that are already stored (checked again under the lock)
        already = set(self.collection.get(ids=ids, include=[])["ids"])
        missing = [n for n, v in enumerate(vectors) if v is None and records[n].id not in already]
        if missing:
            computed = self.embedder.embed([texts[n] for n in missing])
            for n, v in zip(missing, computed):
                vectors[n] = v
        with write_lock(self._lock_path):
            existing = set(self.collection.get(ids=ids, include=[])["ids"])
            keep = [n for n, r in enumerate(records) if r.id not in existing]
            if not keep:
                return []
            for start in range(0, len(keep), 1000):
                chunk = keep[start:start + 1000]
                self.collection.add(
                    ids=[records[n].id for n in chunk],
                    documents=[json.dumps(redact_data(records[n].to_dict()), ensure_ascii=False, sort_keys=True)
                               for n in chunk],
                    embeddings=[vectors[n] for n in chunk],
                    metadatas=[_metadata(records[n], (usages[n] if usages and usages[n] else Usage()))
                               for n in chunk],
                )
            self._bump_write_token()
            self.audit.append_many(
                [("add", records[n].id, records[n].kind,
                  {"repo": records[n].repo, "provenance": records[n].provenance, **(audit_detail or {})})
                 for n in keep], actor)
        return [records[n].id for n in keep]

    def retire(self, record_id: str, actor: str, reason: str) -> Lesson:
        """Retire a lesson (it stays stored and visible in ``ls --status retired``, but is never retrieved)."""
        return self._set_status(record_id, "retired", actor, reason)

    def restore(self, record_id: str, actor: str) -> Lesson:
        """Make a retired lesson active again."""
        return self._set_status(record_id, "active", actor, None)

    def _set_status(self, record_id: str, status: str, actor: str, reason: str | None) -> Lesson:
        with write_lock(self._lock_path):
            lesson = self._get_lesson(record_id)
            lesson.status = status  # type: ignore[assignment]
            lesson.retired_reason = reason if status == "retired" else None
            self._rewrite_lesson(lesson)
            self.audit.append("retire" if status == "retired" else "restore", record_id, actor, "lesson",
                              {"reason": reason} if reason else {})
        return lesson

    def _get_lesson(self, record_id: str) -> Lesson:
        record = self.get(record_id)
        if not isinstance(record, Lesson):
            raise MemoryOperationError(f"{record_id} is an episode; episodes are immutable (only lessons change)")
        return record

    def _rewrite_lesson(self, lesson: Lesson) -> None:
        """Update a lesson's stored JSON and metadata in place (same text, so the vector is unchanged)."""
        usage = Usage(lesson.times_retrieved, lesson.injected_resolved, lesson.injected_unresolved)
        self.collection.update(ids=[lesson.id],
                                documents=[json.dumps(lesson.to_dict(), ensure_ascii=False, sort_keys=True)],
                                metadatas=[_metadata(lesson, usage)])
        self._stamp()

    def add_lesson_version(self, old_id: str, new_lesson: Lesson, actor: str) -> str:
        """Add ``new_lesson`` as the next version of ``old_id``: it supersedes the old one, which is retired and
        keeps a link forward (``superseded_by``). The new version inherits the old one's evidence."""
        old = self._get_lesson(old_id)
        new_lesson.supersedes = old_id
        new_lesson.version = old.version + 1
        new_lesson.source_episodes = list(dict.fromkeys(old.source_episodes + new_lesson.source_episodes))
        new_lesson.id = ""
        new_lesson.__post_init__()  # a new id for the new content
        self.add_records([new_lesson], actor, audit_detail={"supersedes": old_id})
        with write_lock(self._lock_path):
            old = self._get_lesson(old_id)
            old.status = "retired"
            old.superseded_by = new_lesson.id
            old.retired_reason = f"superseded by {new_lesson.id}"
            self._rewrite_lesson(old)
            self.audit.append("retire", old_id, actor, "lesson", {"superseded_by": new_lesson.id})
        return new_lesson.id

    def add_evidence(self, lesson_id: str, episode_id: str, actor: str = "memory") -> Lesson:
        """Link one more supporting episode to a lesson (for near-duplicate lessons: the advice is not rewritten,
        only its evidence grows)."""
        if not self.exists(episode_id):
            raise UnknownRecord(f"no memory record with id {episode_id!r}")
        with write_lock(self._lock_path):
            lesson = self._get_lesson(lesson_id)
            if episode_id not in lesson.source_episodes:
                lesson.source_episodes.append(episode_id)
                self._rewrite_lesson(lesson)
                self.audit.append("evidence", lesson_id, actor, "lesson", {"episode": episode_id})
        return lesson

    def delete(self, record_id: str, actor: str) -> Record:
        """Remove a record for good (audited with its full JSON, so the deletion itself is recoverable)."""
        with write_lock(self._lock_path):
            record = self.get(record_id)
            self.collection.delete(ids=[record_id])
            self._bump_write_token()
            self.audit.append("delete", record_id, actor, record.kind, {"record": record.to_dict()})
        return record

    def record_usage(self, ids: Iterable[str], resolved: bool | None, actor: str = "memory") -> None:
        """Count that ``ids`` were retrieved; with ``resolved`` True/False also that they were injected into a run
        that was then resolved / not resolved. Unknown ids are an error (nothing is counted then)."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return
        with write_lock(self._lock_path):
            got = self.collection.get(ids=ids, include=["documents", "metadatas"])
            unknown = sorted(set(ids) - set(got["ids"]))
            if unknown:
                raise UnknownRecord(f"no memory record with id {unknown[0]!r}")
            new_metas = []
            for meta in got["metadatas"]:
                meta = dict(meta)
                meta["n_retrieved"] = int(meta.get("n_retrieved") or 0) + 1
                if resolved is True:
                    meta["n_resolved"] = int(meta.get("n_resolved") or 0) + 1
                elif resolved is False:
                    meta["n_unresolved"] = int(meta.get("n_unresolved") or 0) + 1
                new_metas.append(meta)
            self.collection.update(ids=got["ids"], metadatas=new_metas)
            self._stamp()
            self.audit.append_many([("usage", i, m.get("kind"), {"resolved": resolved})
                                    for i, m in zip(got["ids"], new_metas)], actor)

    def find_similar_lessons(self, text: str, threshold: float = 0.85, scope: str | None = None,
                             include_retired: bool = False) -> list[tuple[Lesson, float]]:
        """Lessons whose text has cosine similarity >= ``threshold`` with ``text``, most similar first."""
        clauses: list[dict[str, Any]] = [{"kind": "lesson"}]
        if not include_retired:
            clauses.append({"status": "active"})
        if scope is not None:
            clauses.append({"repo": "" if scope == "general" else scope})
        where = clauses[0] if len(clauses) == 1 else {"$and": clauses}
        n = self.collection.count()
        if n == 0:
            return []
        vector = self.embedder.embed([text])[0]
        got = self.collection.query(query_embeddings=[vector], n_results=min(20, n), where=where,
                                     include=["documents", "metadatas", "distances"])
        out = []
        for doc, meta, dist in zip(got["documents"][0], got["metadatas"][0], got["distances"][0]):
            sim = 1.0 - float(dist)
            if sim >= threshold:
                out.append((record_from_document(doc, meta), sim))
        return out

    def _bump_write_token(self) -> None:
        meta = self._collection_metadata()
        meta["write_token"] = uuid.uuid4().hex
        self.collection.modify(metadata=meta)
        self._stamp()


def _open_collection(client: Any, embedder: Embedder) -> Any:
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
        metadata={"embedding_model": embedder.name, "schema_version": 1, "write_token": uuid.uuid4().hex},
        configuration={"hnsw": {"space": "cosine"}},
    )
