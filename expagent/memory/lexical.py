"""The retrieval index: BM25 (bm25s) over every record, the records' vectors, and the arrays retrieval filters on.

Chroma has no keyword search in embedded mode, so expagent keeps its own index. Building it reads every record, so
it is cached twice: in the process (keyed by the store's ``write_token``) and on disk under
``memory/cache/lexical-<token>/`` (bm25s' own save format plus a JSON side file), so a short-lived CLI process loads
it instead of rebuilding. Any add or delete changes the write token, and the next search rebuilds — except that
a few records added to a large index join it as a *delta* (below), so a writer adding one record at a time does not
make every searching process re-index everything.

**The delta.** Re-indexing BM25 costs time linear in the memory (about 2 s at 10k records here), and a store with
a live writer changes its token on every add. When records are only added, and they are few next to the indexed
ones (at most 5 %, and the index has at least 200 records), they are scored by a small exact BM25 with the base index's idf and
average length (what they would score had they been in the index when it was built, give or take their own effect
on idf; a term no base record has gets its idf over everything); the next full rebuild folds them in.

The vectors are the ones stored in Chroma, kept as one matrix so that dense similarity under retrieval's filters
(repo, time, instance) is an exact product over the rows that pass them: Chroma's filtered nearest-neighbour query
grows linearly with the collection (about 48 ms at 2k items on this machine), the product takes a few ms at 100k.

bm25s is there because it is a maintained, numpy-only BM25 whose scoring of one query over 100k documents takes
milliseconds (sparse matrix), and it can save/load (memory-map) its index.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expagent.fsutil import atomic_write_json
from expagent.memory.records import Episode, record_from_dict, record_text
from expagent.memory.tokens import code_tokens, split_identifier

_FORMAT = 6  # bump when the cached layout or the tokenizer changes
_DELTA_MIN_BASE = 200
_DELTA_SHARE = 0.05


@dataclass
class LexicalIndex:
    """Per-record arrays (aligned with ``ids``) and the BM25 index over their code-aware tokens."""

    token: str
    ids: list[str]
    kinds: Any  # numpy array of "episode" / "lesson"
    repos: Any  # numpy array of repo names ("" = general)
    instances: Any  # numpy array of instance ids ("" = none)
    created: Any  # numpy float array, seconds since the epoch
    bm25: Any  # bm25s.BM25 or None when the memory is empty
    vectors: Any = None  # (n, dim) float32, the records' embeddings as stored in Chroma
    avgdl: float = 0.0  # the average token count of the records the BM25 index was built over
    delta_tf: list[dict[str, int]] | None = None  # records after the BM25 base: token -> frequency
    delta_len: list[int] | None = None  # their token counts
    mark: float | None = None  # the store's change mark when this was read (catching up asks what came after it)
    _position: dict[str, int] | None = None
    _kind_masks: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def kind_mask(self, kinds: tuple[str, ...]) -> Any:
        """Which rows are of these kinds (memoised: every search asks, the answer only changes with the index)."""
        import numpy as np

        got = self._kind_masks.get(kinds)
        if got is None:
            got = self._kind_masks[kinds] = np.isin(self.kinds, list(kinds))
        return got

    def position(self) -> dict[str, int]:
        if self._position is None:
            self._position = {i: n for n, i in enumerate(self.ids)}
        return self._position

    def scores(self, query_tokens: list[str]) -> Any:
        import numpy as np

        if self.bm25 is None or not query_tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        base = self.bm25.get_scores(query_tokens)
        if not self.delta_tf:
            return base
        return np.concatenate([base, self._delta_scores(query_tokens)]).astype(base.dtype)

    def _delta_scores(self, query_tokens: list[str]) -> Any:
        """BM25 (bm25s' "lucene" variant) of the delta records, with the base index's statistics."""
        import math

        import numpy as np

        bm25, out = self.bm25, np.zeros(len(self.delta_tf or []), dtype=np.float64)
        n_base = len(self.ids) - len(out)
        indptr = bm25.scores["indptr"]
        k1, b, avgdl = float(bm25.k1), float(bm25.b), self.avgdl or 1.0
        norms = [k1 * ((1 - b) + b * length / avgdl) for length in self.delta_len or []]
        for tok in query_tokens:
            tid = bm25.vocab_dict.get(tok)
            if tid is not None:  # a term of the base: its idf as the base computed it
                df = int(indptr[tid + 1] - indptr[tid])
                idf = math.log(1 + (n_base - df + 0.5) / (df + 0.5))
            else:  # a term only the delta has (no base record contains it): idf over everything
                df = sum(1 for tf in self.delta_tf or [] if tok in tf)
                if not df:
                    continue
                idf = math.log(1 + (len(self.ids) - df + 0.5) / (df + 0.5))
            for j, tf in enumerate(self.delta_tf or []):
                c = tf.get(tok)
                if c:
                    out[j] += idf * c / (norms[j] + c)
        return out


def file_keys_of(files: list[str]) -> list[str]:
    keys: set[str] = set()
    for path in files:
        low = path.lower()
        keys.add(low)
        name = low.rsplit("/", 1)[-1]
        keys.add(name)
        stem = low.rsplit(".", 1)[0]
        keys.add(stem)  # django/db/models/query: what "django.db.models.query" becomes
        parts = stem.split("/")
        for n in range(1, len(parts)):
            keys.add("/".join(parts[n:]))  # db/models/query, models/query, query
    return sorted(keys)


def symbol_keys_of(symbols: list[str]) -> list[str]:
    keys: set[str] = set()
    for sym in symbols:
        low = sym.lower()
        keys.add(low)
        parts = low.split(".")
        keys.update(p for p in parts if len(p) > 2)
        if len(parts) >= 2:
            keys.add(".".join(parts[-2:]))
    return sorted(keys)


def lexical_tokens(record: Any) -> list[str]:
    tokens = code_tokens(record_text(record))
    if isinstance(record, Episode):
        for path in record.files:
            tokens.extend(code_tokens(path))
        for sym in record.symbols:
            tokens.extend(code_tokens(sym))
            tokens.extend(p for p in split_identifier(sym.rsplit(".", 1)[-1]) if len(p) > 2)
        tokens.extend(patch_identifiers(record.patch))
    return tokens


def patch_identifiers(patch: str) -> list[str]:
    """Each distinct code identifier in a patch's hunks, once: the vocabulary of the code the fix lives in
    (names an issue mentions often appear only there). Once each, so a long patch does not swamp the issue text."""
    body = "\n".join(line[1:] for line in patch.splitlines()
                     if line[:1] in (" ", "+", "-", "@") and not line.startswith(("+++", "---")))
    seen: dict[str, None] = {}
    for tok in code_tokens(body):
        if "_" in tok or "." in tok or len(tok) > 3:
            seen.setdefault(tok, None)
    return list(seen)


_token_memo: dict[str, list[str]] = {}


def _build(store: Any, token: str) -> LexicalIndex:
    import bm25s
    import numpy as np

    ids: list[str] = []
    kinds: list[str] = []
    repos: list[str] = []
    instances: list[str] = []
    created: list[float] = []
    corpus: list[list[str]] = []
    vectors: list[list[float]] = []
    mark = store.change_mark()  # taken first: a record written during the read is then read again, never lost
    for item_id, doc, meta, emb in store.iter_raw(include_embeddings=True):
        record = record_from_dict(json.loads(doc))
        ids.append(item_id)
        kinds.append(meta.get("kind", record.kind))
        repos.append(meta.get("repo", "") or "")
        instances.append(meta.get("instance_id", "") or "")
        created.append(float(meta.get("created_ts") or 0.0))
        tokens = _token_memo.get(item_id)
        if tokens is None:
            # records never change text (episodes are immutable, a new lesson version is a new record), so a
            # record's tokens can be kept for the life of the process and reused by every rebuild
            tokens = _token_memo[item_id] = lexical_tokens(record) or ["\u2205"]
        corpus.append(tokens)
        vectors.append(emb or [])
    bm25 = None
    if corpus:
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
    dim = max((len(v) for v in vectors), default=0)
    matrix = np.zeros((len(vectors), dim), dtype=np.float32)
    for n, v in enumerate(vectors):
        if len(v) == dim:
            matrix[n] = v
    return LexicalIndex(token, ids, np.array(kinds, dtype=object), np.array(repos, dtype=object),
                        np.array(instances, dtype=object), np.array(created, dtype=np.float64), bm25, matrix,
                        avgdl=_avgdl(corpus), mark=mark)


def _avgdl(corpus: list[list[str]]) -> float:
    return sum(len(c) for c in corpus) / len(corpus) if corpus else 0.0


def _extend(store: Any, old: LexicalIndex, token: str) -> LexicalIndex | None:
    """``old`` plus the records added since it was built, or None when a full rebuild is needed (records were
    removed, or ``old`` came from disk so this process does not know its records' tokens)."""
    import bm25s
    import numpy as np

    known = old.position()
    new_ids: list[str] | None = None
    if old.mark is not None:  # the store says what was written since: no need to read every id
        since, mark, total = store.ids_since(old.mark)
        new_ids = list(dict.fromkeys(i for i in since if i not in known))
        if total != len(old.ids) + len(new_ids):
            new_ids = None  # records were removed, or (on a server) written outside the window asked about
    if new_ids is None:
        mark = store.change_mark()  # before the read, as in _build
        now = store.all_ids()
        now_set = set(now)
        if len(now_set) < len(old.ids) or any(i not in now_set for i in old.ids):
            return None  # records were removed
        new_ids = [i for i in now if i not in known]
    base = len(old.ids) - len(old.delta_tf or [])
    use_delta = (old.bm25 is not None and base >= _DELTA_MIN_BASE
                 and len(old.delta_tf or []) + len(new_ids) <= _DELTA_SHARE * base)
    if not use_delta and any(i not in _token_memo for i in old.ids):
        return None
    kinds, repos, instances, created, vectors = [], [], [], [], []
    for start in range(0, len(new_ids), 1000):
        got = store.collection.get(ids=new_ids[start:start + 1000], include=["documents", "metadatas", "embeddings"])
        for item_id, doc, meta, emb in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            record = record_from_dict(json.loads(doc))
            kinds.append(meta.get("kind", record.kind))
            repos.append(meta.get("repo", "") or "")
            instances.append(meta.get("instance_id", "") or "")
            created.append(float(meta.get("created_ts") or 0.0))
            vectors.append(np.asarray(emb, dtype=np.float32))
            _token_memo.setdefault(item_id, lexical_tokens(record) or ["\u2205"])
        new_ids[start:start + 1000] = got["ids"]  # Chroma may return them in another order
    ids = list(old.ids) + new_ids
    if vectors and old.vectors is not None and len(old.ids) and old.vectors.shape[1] != len(vectors[0]):
        return None
    matrix = np.vstack([np.asarray(old.vectors, dtype=np.float32).reshape(len(old.ids), -1) if len(old.ids) else
                        np.zeros((0, len(vectors[0]) if vectors else 0), dtype=np.float32),
                        *([np.stack(vectors)] if vectors else [])])
    if use_delta:  # keep the BM25 base; the new records join its delta
        delta_tf, delta_len = list(old.delta_tf or []), list(old.delta_len or [])
        for item_id in new_ids:
            counts: dict[str, int] = {}
            for tok in _token_memo[item_id]:
                counts[tok] = counts.get(tok, 0) + 1
            delta_tf.append(counts)
            delta_len.append(len(_token_memo[item_id]))
        bm25, avgdl = old.bm25, old.avgdl
    else:
        corpus = [_token_memo[i] for i in ids]
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        avgdl, delta_tf, delta_len = _avgdl(corpus), None, None
    return LexicalIndex(token, ids, np.concatenate([old.kinds, np.array(kinds, dtype=object)]),
                        np.concatenate([old.repos, np.array(repos, dtype=object)]),
                        np.concatenate([old.instances, np.array(instances, dtype=object)]),
                        np.concatenate([old.created, np.array(created, dtype=np.float64)]), bm25, matrix,
                        avgdl=avgdl, delta_tf=delta_tf, delta_len=delta_len, mark=mark)


def _cache_dir(store: Any, token: str) -> Path:
    digest = hashlib.sha256(f"{_FORMAT}:{store.chroma_url or ''}:{token}".encode()).hexdigest()[:16]
    return store.memory_dir / "cache" / f"lexical-{digest}"


def _save(index: LexicalIndex, directory: Path, source: str) -> None:
    tmp = directory.with_name(directory.name + ".tmp-" + hashlib.sha256(str(id(index)).encode()).hexdigest()[:6])
    tmp.mkdir(parents=True, exist_ok=True)
    import numpy as np

    if index.bm25 is not None:
        index.bm25.save(str(tmp), show_progress=False)
    np.save(tmp / "vectors.npy", np.asarray(index.vectors, dtype=np.float32))
    atomic_write_json(tmp / "side.json", {
        "format": _FORMAT, "token": index.token, "ids": index.ids, "kinds": list(index.kinds),
        "repos": list(index.repos), "instances": list(index.instances), "created": list(map(float, index.created)),
        "has_bm25": index.bm25 is not None, "avgdl": index.avgdl, "mark": index.mark, "source": source,
    }, indent=None)
    try:
        tmp.rename(directory)
    except OSError:  # another process saved the same index first
        shutil.rmtree(tmp, ignore_errors=True)
    for old in directory.parent.glob("lexical-*"):
        if old.name != directory.name and ".tmp-" not in old.name:
            shutil.rmtree(old, ignore_errors=True)


def _load(directory: Path, token: str | None, source: str = "") -> LexicalIndex | None:
    """The index saved in ``directory`` for ``token`` (None: for whatever token it was saved with, if it knows
    its change mark and comes from ``source``, the store's server URL or "")."""
    import bm25s
    import numpy as np

    side_file = directory / "side.json"
    if not side_file.is_file():
        return None
    try:
        side = json.loads(side_file.read_text(encoding="utf-8"))
        if side.get("format") != _FORMAT:
            return None
        if token is None and (side.get("mark") is None or side.get("source", "") != source):
            return None
        if token is not None and side.get("token") != token:
            return None
        bm25 = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0) if side["has_bm25"] else None
        vectors = np.load(directory / "vectors.npy", mmap_mode="r")
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache is only a cache: rebuild
    return LexicalIndex(side["token"], side["ids"], np.array(side["kinds"], dtype=object),
                        np.array(side["repos"], dtype=object), np.array(side["instances"], dtype=object),
                        np.array(side["created"], dtype=np.float64), bm25, vectors, avgdl=float(side.get("avgdl", 0.0)),
                        mark=side.get("mark"))


def _newest_saved(store: Any) -> LexicalIndex | None:
    """The index saved most recently for this store, whatever its token (``_save`` keeps one)."""
    saved = []
    for directory in (store.memory_dir / "cache").glob("lexical-*"):
        try:
            saved.append((directory.stat().st_mtime, directory))
        except OSError:  # removed by a process saving a newer one
            continue
    for _mtime, directory in sorted(saved, reverse=True):
        if ".tmp-" in directory.name:
            continue
        index = _load(directory, None, store.chroma_url or "")
        if index is not None:
            return index
    return None


_memo: dict[str, LexicalIndex] = {}
_memo_lock = threading.Lock()


def lexical_index(store: Any) -> LexicalIndex:
    """The lexical index for the store's current contents (from memory, disk, or built now)."""
    token = store.write_token()
    key = f"{store.memory_dir}|{store.chroma_url or ''}"
    with _memo_lock:
        cached = _memo.get(key)
        if cached is not None and cached.token == token:
            return cached
    directory = _cache_dir(store, token)
    index = _load(directory, token)
    if index is None:
        # records only change by being added or deleted; after additions, extend the index this process has,
        # or else the newest one saved (a new process while a writer is adding: the saved token is already old)
        base = cached if cached is not None else _newest_saved(store)
        index = _extend(store, base, token) if base is not None else None
        if index is None:
            index = _build(store, token)
        if len(index.ids) >= 200 and not index.delta_tf:  # small memories rebuild faster than they load; an
            _save(index, directory, store.chroma_url or "")  # index with a delta is not saved (the next build is)
    with _memo_lock:
        _memo[key] = index
    return index
