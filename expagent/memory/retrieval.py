"""Hybrid retrieval with abstention: dense (Chroma) + lexical (BM25) + code keys, filtered against leakage.

``retrieve(store, query, repo=..., before=..., exclude_instance=..., k=3)`` returns at most ``k`` hits, possibly
none. How a hit is scored:

1. Candidates: the nearest records by embedding (cosine against the vectors stored in Chroma, computed exactly
   over the records that pass the filters, see ``lexical``) and the best by BM25 over code-aware tokens
   (``tokens.code_tokens``), both under the same filters: kind, status active, ``created_ts < before``
   (a replay never sees the future), ``instance_id != exclude_instance``, and, when ``repo`` is given, records of
   that repo or general lessons (never other repos' episodes).
2. Each candidate gets ``relevance`` = the weighted mean of ``cosine``, ``bm25_share`` and ``key_match`` where
   ``bm25_share`` is its BM25 score divided by the best possible match (the query's own weight: sum of its terms'
   idf times the saturation limit), so it is comparable across queries, and ``key_match`` measures how many code
   keys of the issue (files and symbols named in its text, plus ``keys`` given by the caller, e.g. from code
   intelligence) the record's files/symbols contain. Records without files/symbols (lessons) are scored on the
   other two signals only.
3. Usefulness re-rank: relevance is multiplied by ``0.85 + 0.3 * usefulness`` (usefulness 0.5 = never injected:
   neutral; items that went with resolved runs rise, others sink).
4. Abstention. Episodes: decided once per query by the gate of :mod:`expagent.memory.abstain` (a small
   logistic model over how many episodes passed the filters, the top score, the top cosine and how often the top
   episode's files recur among the others): when it says "no stored episode is relevant", no episode is
   returned; when it answers, episodes below ``episode_floor`` (a low per-item floor) are still dropped.
   Lessons (which the gate was not fitted on) keep the plain relevance ``floor``. Passing ``floor=`` explicitly
   (or ``settings.gate=False``) replaces the gate by that plain floor for every hit (``floor=0``: never
   abstain).
   With ``checkout=`` (the new task's tree) or ``locations=``, each episode's score also gets ``w_loc`` times its
   ``loc`` part (how close its edited files come to the top of the issue's likely edit locations,
   :mod:`expagent.codeintel.localize`), and the localized gate decides; candidates whose anchors are all gone
   from the checkout are dropped and stale ones labelled (:mod:`expagent.memory.staleness`).
5. Order: same-repo items first, then general lessons, each by score; then ``k`` and the ``token_budget``
   (tokens of :func:`format_hit` text, estimated at 4 characters per token) cut the list.

The gate's coefficients and the other settings (:data:`DEFAULT_SETTINGS`) come from the retrieval benchmark
(``benchmarks/retrieval_quality.py``, which also reports them on held-out repositories); see docs/memory.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from expagent.memory.embedding import EmbeddingError
from expagent.memory.lexical import file_keys_of, lexical_index, symbol_keys_of
from expagent.memory.records import Episode, Record, parse_time
from expagent.memory.store import record_from_document
from expagent.memory.tokens import code_tokens, mentioned_keys


@dataclass(frozen=True)
class RetrievalSettings:
    # relevance is the weighted mean of the three signals (each roughly 0..1); equal weights ranked best on
    # the benchmark. ``floor`` is the plain relevance floor: it decides for lessons, and for everything with the
    # gate off (0.24 was the lowest value at which abstention reached 0.80 on the benchmark). With the gate on,
    # episodes are the gate's decision and ``episode_floor`` only drops weak episodes of an answered query (0.1
    # cost no hit@3 there)
    w_dense: float = 1.0
    w_lex: float = 1.0
    w_keys: float = 1.0
    floor: float = 0.24
    episode_floor: float = 0.1
    candidates: int = 40
    usefulness_weight: float = 0.3
    gate: bool = True
    # with a localization of the new issue (``locations=`` or ``checkout=``): each episode's ``loc`` part is
    # 1/rank of the best of its files in the issue's likely edit locations (0 outside the top ``loc_depth``),
    # added to its score with this weight; the localized gate then decides
    w_loc: float = 0.3
    loc_depth: int = 10


DEFAULT_SETTINGS = RetrievalSettings()


@dataclass
class Hit:
    """One retrieved record. ``score`` is the final score; ``parts`` holds its components for inspection."""

    id: str
    kind: str
    score: float
    record: Record
    parts: dict[str, float] = field(default_factory=dict)
    stale: str = ""  # the staleness label against the new checkout ("" = current or not checked)

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "score": round(self.score, 4),
               "instance_id": getattr(self.record, "instance_id", None), "repo": self.record.repo,
               "parts": {k: round(v, 4) for k, v in self.parts.items()}}
        if self.stale:
            out["stale"] = self.stale
        return out


class ScoredCandidates(list):
    """The scored candidates of one query (a list of :class:`Hit`, best first) and ``pool_size``: how many
    episodes passed the filters (the abstention gate's prior: a repository with many past fixes more likely holds
    a relevant one)."""

    def __init__(self, hits: Iterable[Hit] = (), pool_size: int = 0, localization: Any = None) -> None:
        super().__init__(hits)
        self.pool_size = pool_size
        self.localization = localization  # the issue's likely edit locations, when known


def _where(kinds: Sequence[str], repo: str | None, before_ts: float | None, exclude_instance: str | None
           ) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = [{"status": "active"}]
    clauses.append({"kind": {"$in": list(kinds)}} if len(kinds) > 1 else {"kind": kinds[0]})
    if repo is not None:
        clauses.append({"repo": {"$in": [repo, ""]}})
    if before_ts is not None:
        clauses.append({"created_ts": {"$lt": before_ts}})
    if exclude_instance:
        clauses.append({"instance_id": {"$ne": exclude_instance}})
    return {"$and": clauses}


def _key_match(query_files: set[str], query_symbols: set[str], strong_files: set[str], strong_symbols: set[str],
               meta: dict[str, Any]) -> float:
    """0..1: how strongly the record's files/symbols match keys named in the issue (or given by the caller)."""
    files = json.loads(meta.get("files") or "[]")
    symbols = json.loads(meta.get("symbols") or "[]")
    if not files and not symbols:
        return 0.0
    fkeys = set(file_keys_of(files))
    skeys = set(symbol_keys_of(symbols))
    score = 0.0
    if strong_files & fkeys:
        score += 0.6
    if strong_symbols & skeys:
        score += 0.6
    # keys merely mentioned in the issue text: a file match is strong evidence, symbols add up
    if query_files & fkeys:
        score += 0.5
    sym_hits = len(query_symbols & skeys)
    score += min(0.5, 0.25 * sym_hits)
    return min(1.0, score)


def _bm25_ceiling(index: Any, tokens: list[str]) -> float:
    """The highest BM25 score any document could get for these query tokens (term-frequency saturation limit)."""
    bm25 = index.bm25
    if bm25 is None:
        return 1.0
    k1 = float(getattr(bm25, "k1", 1.5))
    vocab = bm25.vocab_dict
    n_docs = len(index.ids)
    total = 0.0
    for tok in set(tokens):
        tid = vocab.get(tok)
        if tid is None:
            continue
        # idf as bm25s' default ("lucene") method computes it
        df = _doc_freq(bm25, tid)
        total += math.log(1 + (n_docs - df + 0.5) / (df + 0.5)) * (k1 + 1)
    return total or 1.0


def _doc_freq(bm25: Any, tid: int) -> int:
    indptr = bm25.scores["indptr"]
    return int(indptr[tid + 1] - indptr[tid])


def retrieve(store: Any, query: str, *, repo: str | None = None, before: str | float | datetime | None = None,
             exclude_instance: str | None = None, k: int = 3, kinds: Sequence[str] = ("episode", "lesson"),
             keys: dict[str, Iterable[str]] | None = None, token_budget: int | None = None,
             settings: RetrievalSettings | None = None, floor: float | None = None,
             checkout: str | Path | None = None, locations: Any = None, drop_obsolete: bool = True) -> list[Hit]:
    """The records most relevant to ``query`` (an issue text), best first; ``[]`` when nothing is relevant enough.

    ``repo``: the repository of the new issue ("owner/name"); restricts to its records plus general lessons.
    ``before``: only records created strictly before this time (ISO string, datetime or epoch seconds).
    ``exclude_instance``: never return records of this task/instance id (the task being solved).
    ``keys``: optional ``{"files": [...], "symbols": [...]}`` the new issue likely touches (e.g. from code
    intelligence); records that touched them score higher.
    ``token_budget``: the most tokens (of :func:`format_hit` text) the returned hits may take together.
    ``floor``: replaces the abstention gate by this plain floor on each hit's score (0 disables abstention).
    ``checkout``: the new task's repository at its base commit. Localizes the issue there
    (:mod:`expagent.codeintel.localize`, cached per repository and commit) for ranking and the answer decision,
    and checks each candidate's anchors (:mod:`expagent.memory.staleness`): items whose anchored code is all gone
    are dropped (``drop_obsolete``), stale ones carry ``Hit.stale`` (shown by :func:`format_hit`).
    ``locations``: a ready :class:`expagent.codeintel.localize.Localization` (instead of computing it).
    """
    index = None
    if checkout is not None:
        from expagent.codeintel.localize import localizer_for
        from expagent.errors import ExpagentError

        try:
            localizer = localizer_for(checkout)
        except (ExpagentError, OSError):
            localizer = None  # not a readable tree: retrieval still works on the text
        if localizer is not None:
            index = localizer.index
            if locations is None:
                locations = localizer.localize(query, k=max(20, (settings or DEFAULT_SETTINGS).loc_depth))
    hits = score_candidates(store, query, repo=repo, before=before, exclude_instance=exclude_instance,
                            kinds=kinds, keys=keys, settings=settings, locations=locations)
    if index is not None:
        hits = _mark_stale(store, hits, index, drop_obsolete, check=max(20, 3 * k))
    return select_hits(hits, repo=repo, k=k, token_budget=token_budget, settings=settings, floor=floor)


def _mark_stale(store: Any, hits: "ScoredCandidates", index: Any, drop_obsolete: bool, check: int
                ) -> "ScoredCandidates":
    """Label stale candidates and drop obsolete ones (anchors against the new checkout's index). Only the best
    ``check`` candidates are checked (at least 3k: what can be returned unless most of them are obsolete); the
    rest stay as they are, for the gate's features."""
    from expagent.memory.staleness import check_record

    checked = hits[:check]
    source_ids = [e for h in checked if h.kind == "lesson" and not h.record.anchors for e in h.record.source_episodes]
    episodes = {i: r for i, (r, _m) in store.get_many(list(dict.fromkeys(source_ids))).items()} if source_ids else {}
    kept = []
    for n, hit in enumerate(hits):
        if n >= check:
            kept.append(hit)
            continue
        verdict = check_record(hit.record, index, episodes)
        if verdict.obsolete and drop_obsolete:
            continue
        hit.stale = verdict.label()
        kept.append(hit)
    return ScoredCandidates(kept, pool_size=hits.pool_size, localization=hits.localization)


def select_hits(hits: list[Hit], *, repo: str | None = None, k: int = 3, token_budget: int | None = None,
                settings: RetrievalSettings | None = None, floor: float | None = None) -> list[Hit]:
    """Apply abstention (the gate, or ``floor`` when given), the same-repo-first order, ``k`` and the token budget
    to scored candidates (from :func:`score_candidates`; a plain list counts as the whole pool)."""
    cfg = settings or DEFAULT_SETTINGS
    if floor is not None or not cfg.gate:
        threshold = cfg.floor if floor is None else floor
        hits = [h for h in hits if h.score >= threshold]
    else:
        from expagent.memory.abstain import default_gate, query_features

        episodes = sorted((h for h in hits if h.kind == "episode"), key=lambda h: h.score, reverse=True)
        pool = int(getattr(hits, "pool_size", len(episodes)))
        localized = getattr(hits, "localization", None) is not None
        answer = default_gate(localized).answers(query_features(episodes, pool, localized=localized))
        hits = [h for h in hits
                if (answer and h.score >= cfg.episode_floor if h.kind == "episode" else h.score >= cfg.floor)]
    hits.sort(key=lambda h: (repo is not None and h.record.repo == repo, h.score), reverse=True)
    out: list[Hit] = []
    used = 0
    for hit in hits:
        if len(out) >= k:
            break
        if token_budget is not None:
            cost = estimate_tokens(format_hit(hit))
            if used + cost > token_budget:
                continue
            used += cost
        out.append(hit)
    return out


def score_candidates(store: Any, query: str, *, repo: str | None = None,
                     before: str | float | datetime | None = None, exclude_instance: str | None = None,
                     kinds: Sequence[str] = ("episode", "lesson"), keys: dict[str, Iterable[str]] | None = None,
                     settings: RetrievalSettings | None = None, locations: Any = None) -> ScoredCandidates:
    """Every candidate that passes the filters, scored (no floor, no k), best first, with the pool size.
    ``locations``: the issue's likely edit locations (a ``Localization``): adds the ``loc`` part."""
    import numpy as np

    cfg = settings or DEFAULT_SETTINGS
    kinds = tuple(kinds)
    before_ts = parse_time(before, "before") if before is not None else None
    if not query.strip():
        return ScoredCandidates()

    # one mask implements the filters for both signals (the same ones Chroma's metadata would apply)
    index = lexical_index(store)
    mask = index.kind_mask(kinds).copy()
    if repo is not None:
        mask &= (index.repos == repo) | (index.repos == "")
    if before_ts is not None:
        mask &= index.created < before_ts
    if exclude_instance:
        mask &= index.instances != exclude_instance
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return ScoredCandidates()
    n_episodes = int(np.count_nonzero(index.kinds[rows] == "episode"))

    # lexical candidates
    q_tokens = code_tokens(query)
    lex = np.asarray(index.scores(q_tokens), dtype=np.float64)
    ceiling = _bm25_ceiling(index, q_tokens)
    lex_rows = rows[_top(lex[rows], cfg.candidates)]
    lex_rows = lex_rows[lex[lex_rows] > 0]

    # dense candidates: exact cosine over the stored vectors of the rows that pass the filters
    q_vec = np.asarray(store.embedder.embed_query([query])[0], dtype=np.float32)
    if index.vectors is None or index.vectors.shape[1] != q_vec.shape[0]:
        raise EmbeddingError("the memory's vectors do not match the embedding model; re-import the memory")
    dense = np.asarray(index.vectors[rows] @ q_vec, dtype=np.float64)
    dense_rows = rows[_top(dense, cfg.candidates)]
    cand_rows = list(dict.fromkeys([*dense_rows.tolist(), *lex_rows.tolist()]))
    cos_of = {int(r): float(np.dot(index.vectors[r], q_vec)) for r in cand_rows}
    cand_ids = [index.ids[r] for r in cand_rows]
    # one read for the candidates' fresh metadata and their documents (on a server, one request)
    got = store.collection.get(ids=cand_ids, include=["metadatas", "documents"])
    metas: dict[str, dict[str, Any]] = dict(zip(got["ids"], got["metadatas"]))
    docs: dict[str, str] = dict(zip(got["ids"], got["documents"]))
    if not metas:
        return ScoredCandidates(pool_size=n_episodes)
    pos = index.position()
    q_files, q_symbols = mentioned_keys(query)
    strong_files = set(file_keys_of(list((keys or {}).get("files", []) or [])))
    strong_symbols = {s.lower() for s in (keys or {}).get("symbols", []) or []}
    strong_symbols |= {s.lower().rsplit(".", 1)[-1] for s in strong_symbols}

    scored: list[tuple[str, dict[str, Any], dict[str, float], float]] = []
    for item_id, meta in metas.items():
        # re-check the filters on fresh metadata (the index may predate a retire)
        if not _passes(meta, kinds, repo, before_ts, exclude_instance):
            continue
        row = pos[item_id]
        cos = cos_of[row]
        share = min(1.0, float(lex[row]) / ceiling)
        key = _key_match(q_files, q_symbols, strong_files, strong_symbols, meta)
        # a weighted mean over the signals that apply: lessons have no files/symbols, so for them the key
        # signal is left out rather than counted as a zero (which would sink every lesson below the floor)
        has_keys = bool(json.loads(meta.get("files") or "[]") or json.loads(meta.get("symbols") or "[]"))
        weight = cfg.w_dense + cfg.w_lex + (cfg.w_keys if has_keys else 0.0)
        relevance = (cfg.w_dense * cos + cfg.w_lex * share + (cfg.w_keys * key if has_keys else 0.0)) / weight
        n_res, n_unres = int(meta.get("n_resolved") or 0), int(meta.get("n_unresolved") or 0)
        useful = (n_res + 1) / (n_res + n_unres + 2)
        factor = 1.0 - cfg.usefulness_weight / 2 + cfg.usefulness_weight * useful
        parts = {"dense": cos, "lexical": share, "keys": key, "usefulness": useful, "relevance": relevance}
        scored.append((item_id, meta, parts, relevance * factor))
    scored.sort(key=lambda t: t[3], reverse=True)
    top = scored[: max(cfg.candidates, 10)]
    out = ScoredCandidates((Hit(item_id, meta["kind"], score, record_from_document(docs[item_id] or "", meta), parts)
                            for item_id, meta, parts, score in top), pool_size=n_episodes)
    return out if locations is None else localize_candidates(out, locations, cfg)


def localize_candidates(hits: ScoredCandidates, locations: Any, settings: RetrievalSettings | None = None
                        ) -> ScoredCandidates:
    """``hits`` re-scored with the issue's likely edit locations: each episode's ``loc`` part is how close its
    files come to the top of ``locations`` (1/rank within ``loc_depth``), added with weight ``w_loc``; lessons
    (no files) get 0. Returns new hits, best first, marked as localized (the localized gate decides)."""
    cfg = settings or DEFAULT_SETTINGS
    out = []
    for h in hits:
        loc = locations.overlap(getattr(h.record, "files", None) or [], cfg.loc_depth)
        out.append(replace(h, score=h.score + cfg.w_loc * loc, parts={**h.parts, "loc": loc}))
    out.sort(key=lambda h: h.score, reverse=True)
    return ScoredCandidates(out, pool_size=hits.pool_size, localization=locations)


def _top(values: Any, n: int) -> Any:
    """Indices of the ``n`` largest values (unordered)."""
    import numpy as np

    if values.size <= n:
        return np.arange(values.size)
    return np.argpartition(-values, n - 1)[:n]


def _passes(meta: dict[str, Any], kinds: Sequence[str], repo: str | None, before_ts: float | None,
            exclude_instance: str | None) -> bool:
    if meta.get("status", "active") != "active" or meta.get("kind") not in kinds:
        return False
    if repo is not None and meta.get("repo", "") not in (repo, ""):
        return False
    if before_ts is not None and float(meta.get("created_ts") or 0.0) >= before_ts:
        return False
    if exclude_instance and meta.get("instance_id") == exclude_instance:
        return False
    return True


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def format_hit(hit: Hit, max_patch_chars: int = 1500, max_issue_chars: int = 600) -> str:
    """The text of a hit as it would be injected into a prompt (compact, with its provenance)."""
    record = hit.record
    if isinstance(record, Episode):
        s = record.summary
        lines = [f"[episode {record.id}] {record.repo}" + (f" {record.instance_id}" if record.instance_id else "")
                 + f" — outcome: {record.outcome} ({record.outcome_source})"]
        if hit.stale:
            lines.append(hit.stale)
        lines.append("Issue: " + _clip(record.issue, max_issue_chars))
        for label, value in (("Fault location", s.fault_location), ("Root cause", s.root_cause),
                             ("Change", s.change), ("Verified by", s.verification)):
            if value:
                lines.append(f"{label}: {value}")
        if record.files:
            lines.append("Files: " + ", ".join(record.files))
        if record.symbols:
            lines.append("Symbols: " + ", ".join(record.symbols[:12]))
        if record.patch and max_patch_chars > 0:
            lines.append("Patch:\n" + _clip(record.patch, max_patch_chars))
        return "\n".join(lines)
    return (f"[lesson {record.id} v{record.version}, {record.lesson_kind}, scope {record.scope}, "
            f"from {', '.join(record.source_episodes) or 'no episode'}]\n" + (hit.stale + "\n" if hit.stale else "")
            + f"When: {record.applies_when}\nAdvice: {record.advice}")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def with_floor(settings: RetrievalSettings, floor: float) -> RetrievalSettings:
    return replace(settings, floor=floor)
