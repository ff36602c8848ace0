"""Where will an issue be fixed? A ranked list of likely edit locations, without a model.

From the issue text and the repository at the task's commit, four signals per non-test source file, each 0..1:

* ``mention``: files and symbols the text names (paths, traceback frames, code spans, identifiers), resolved
  against the tree-sitter index (:func:`expagent.codeintel.issuekeys.score_keys`), squashed by ``1 - exp(-s/2)``
  (one path mention, weight 3, gives 0.78);
* ``content``: BM25 (bm25s, code-aware tokens of :mod:`expagent.memory.tokens`) of the issue against the file's
  contents, divided by the best file's score for this query;
* ``names``: the same over the file's path and the names it defines (a shorter document: an issue that says
  "separability matrix" meets ``separable.py`` / ``separability_matrix`` here even when the body is long);
* ``prior``: the repo map's PageRank of the file in the reference graph (:mod:`expagent.codeintel.repomap`),
  log-scaled to 0..1: files much of the code depends on are edited more often.

``score`` = the weighted sum (:data:`DEFAULT_WEIGHTS`, chosen on the retrieval benchmark's 407 SWE-bench
Verified issues, see docs/memory.md). Symbols: the mentioned definitions (qualified names) of the top files.

Everything that depends only on the tree (the index, both BM25 indexes, the prior) is built once per
(repository, commit) and kept in the process (:func:`localizer_for`); a query then costs two sparse BM25 products
and the mention lookup, a few milliseconds. Uncommitted changes of a dirty work tree are not seen by the cached
localizer of its commit (the SymbolIndex on disk is still incremental by mtime and content).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expagent.gitutil import read_head

DEFAULT_WEIGHTS = {"mention": 1.0, "content": 0.6, "names": 0.4, "prior": 0.15}
_CACHE_SIZE = 8
_MAX_DOC_BYTES = 400_000


@dataclass(frozen=True)
class Location:
    """One likely edit location: a repository-relative file, its score and the signals it came from."""

    path: str
    score: float
    parts: dict[str, float] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class Localization:
    """Likely edit locations of one issue, best first (files), with the likely symbols."""

    files: tuple[Location, ...] = ()
    symbols: tuple[str, ...] = ()
    commit: str = ""

    def paths(self, k: int | None = None) -> list[str]:
        return [loc.path for loc in self.files[:k]]

    def rank_of(self) -> dict[str, int]:
        """``path -> rank`` (1 = most likely)."""
        return {loc.path: n for n, loc in enumerate(self.files, 1)}

    def overlap(self, files: Any, depth: int = 10) -> float:
        """How close ``files`` (an episode's edited files) come to the top of this ranking: 1/rank of the best
        of them within ``depth``, else 0."""
        ranks = self.rank_of()
        best = min((ranks[f] for f in files or () if ranks.get(f, depth + 1) <= depth), default=None)
        return 0.0 if best is None else 1.0 / best

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "symbols": list(self.symbols),
                "files": [{"path": loc.path, "score": round(loc.score, 4),
                           "parts": {k: round(v, 4) for k, v in loc.parts.items()},
                           "symbols": list(loc.symbols)} for loc in self.files]}


class RepoLocalizer:
    """The per-(repository, commit) part of localization: the symbol index, two BM25 indexes and the prior."""

    def __init__(self, index: Any, commit: str = "", prior: dict[str, float] | None = None) -> None:
        import bm25s
        import numpy as np

        from expagent.codeintel.history import is_test_path
        from expagent.memory.tokens import code_tokens

        self.index = index
        self.commit = commit
        self.paths = [p for p in index.file_paths() if not is_test_path(p)]
        self._pos = {p: i for i, p in enumerate(self.paths)}
        content_docs, name_docs = [], []
        for path in self.paths:
            content_docs.append(_content_tokens(Path(index.root) / path))
            names = [d.qualname for d in index.files[path].symbols.definitions if not d.local]
            name_docs.append(code_tokens(path) + code_tokens(" ".join(names)))
        self._content = _bm25(bm25s, content_docs)
        self._names = _bm25(bm25s, name_docs)
        self.prior = np.zeros(len(self.paths))
        if prior is not None:  # a caller that visits many commits of one repository may reuse an earlier prior
            self.prior = np.array([prior.get(p, 0.0) for p in self.paths])
        elif self.paths:
            from expagent.codeintel.repomap import _graph, _pagerank_arrays

            graph = _graph(index)
            n = len(graph.files)
            rank = _pagerank_arrays(n, graph.src, graph.dst, graph.weight, np.full(n, 1.0 / n)) if n else []
            by_file = {f: float(rank[i]) * n for i, f in enumerate(graph.files)}
            rel = np.array([by_file.get(p, 0.0) for p in self.paths])
            logs = np.log1p(rel)
            self.prior = logs / (logs.max() or 1.0)

    def prior_by_path(self) -> dict[str, float]:
        return {p: float(v) for p, v in zip(self.paths, self.prior)}

    @classmethod
    def build(cls, root: str | Path, commit: str = "") -> "RepoLocalizer":
        from expagent.codeintel.index import SymbolIndex

        return cls(SymbolIndex.build(root), commit)

    def signals(self, issue: str) -> tuple[dict[str, Any], dict[str, float]]:
        """Each signal as an array aligned with ``self.paths``, and the mentioned symbols' scores."""
        import numpy as np

        from expagent.codeintel.issuekeys import extract_mentions, score_keys
        from expagent.memory.tokens import code_tokens

        n = len(self.paths)
        tokens = code_tokens(issue)
        file_scores, symbol_scores = score_keys(extract_mentions(issue), self.index)
        mention = np.zeros(n)
        for path, s in file_scores.items():
            i = self._pos.get(path)
            if i is not None:
                mention[i] = 1.0 - math.exp(-s / 2.0)
        return ({"mention": mention, "content": _shares(self._content, tokens, n),
                 "names": _shares(self._names, tokens, n), "prior": self.prior}, symbol_scores)

    def localize(self, issue: str, k: int = 20, weights: dict[str, float] | None = None) -> Localization:
        """The ``k`` most likely edit locations of ``issue`` in this tree."""
        import numpy as np

        w = weights or DEFAULT_WEIGHTS
        n = len(self.paths)
        if n == 0 or not issue.strip():
            return Localization(commit=self.commit)
        signals, symbol_scores = self.signals(issue)
        total = sum(w[name] * signals[name] for name in w)
        top = np.argsort(-total, kind="stable")[:k]
        sym_by_file: dict[str, list[tuple[float, str]]] = {}
        for qual, s in symbol_scores.items():
            for path, _d in self.index.lookup(qual):
                sym_by_file.setdefault(path, []).append((s, qual))
        files = []
        for i in top:
            if total[i] <= 0:
                break
            path = self.paths[int(i)]
            syms = tuple(q for _s, q in sorted(sym_by_file.get(path, []), key=lambda t: (-t[0], t[1]))[:5])
            files.append(Location(path, float(total[i]), {name: float(v[i]) for name, v in signals.items()}, syms))
        symbols = tuple(dict.fromkeys(s for loc in files[:5] for s in loc.symbols))
        return Localization(tuple(files), symbols, self.commit)


def _bm25(bm25s: Any, docs: list[list[str]]) -> Any:
    if not any(docs):
        return None
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in docs]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    return retriever


def _shares(retriever: Any, tokens: list[str], n: int) -> Any:
    """BM25 scores of every document divided by the best one (0 when nothing matches)."""
    import numpy as np

    if retriever is None:
        return np.zeros(n)
    known = [t for t in tokens if t in retriever.vocab_dict]
    if not known:
        return np.zeros(n)
    scores = np.asarray(retriever.get_scores(known), dtype=np.float64)
    top = scores.max()
    return scores / top if top > 0 else scores


_TOKEN_MEMO: dict[str, list[str]] = {}


def _content_tokens(path: Path) -> list[str]:
    """Code-aware tokens of a file's text, memoised by content hash (successive commits share most files)."""
    from expagent.memory.tokens import code_token_counts

    try:
        data = path.read_bytes()[:_MAX_DOC_BYTES]
    except OSError:
        return []
    digest = hashlib.sha1(data).hexdigest()
    got = _TOKEN_MEMO.get(digest)
    if got is None:
        got = [t for t, n in code_token_counts(data.decode("utf-8", "replace")).items() for _ in range(n)]
        if len(_TOKEN_MEMO) > 50_000:
            _TOKEN_MEMO.clear()
        _TOKEN_MEMO[digest] = got
    return got


_LOCALIZERS: "OrderedDict[tuple[str, str], RepoLocalizer]" = OrderedDict()
_LOCK = threading.Lock()


def localizer_for(root: str | Path, commit: str | None = None) -> RepoLocalizer:
    """The cached localizer of ``root`` at ``commit`` (default: its HEAD; a tree outside git is keyed by its
    index fingerprint, so it is rebuilt when files change)."""
    root = Path(root).resolve()
    commit = read_head(root) if commit is None else commit
    key = (str(root), commit)
    with _LOCK:
        got = _LOCALIZERS.get(key) if commit else None
        if got is not None:
            _LOCALIZERS.move_to_end(key)
            return got
    from expagent.codeintel.index import SymbolIndex

    index = SymbolIndex.build(root)
    if not commit:
        key = (str(root), "index:" + index.fingerprint)
        with _LOCK:
            got = _LOCALIZERS.get(key)
            if got is not None:
                return got
    built = RepoLocalizer(index, commit)
    with _LOCK:
        _LOCALIZERS[key] = built
        while len(_LOCALIZERS) > _CACHE_SIZE:
            _LOCALIZERS.popitem(last=False)
    return built


def localize(issue: str, root: str | Path, k: int = 20, commit: str | None = None) -> Localization:
    """Likely edit locations of ``issue`` in the checkout at ``root`` (see the module docstring)."""
    return localizer_for(root, commit).localize(issue, k=k)
