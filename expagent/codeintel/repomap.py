"""A compact, ranked outline of a repository that fits a token budget.

Ranking, in three steps:

1. A file graph: file A has an edge to file B for each name A references that B defines. An edge's weight
   falls with how many files define the name (a name defined everywhere, like ``__init__``, links nothing in
   particular) and with private names; names the focus mentions weigh ten times more.
2. A personalised PageRank over that graph. The personalisation puts the random walker's restarts on the files
   the focus points at (paths mentioned, files defining mentioned identifiers); without a focus it is uniform,
   which ranks the files most of the code depends on first.
3. Each definition inherits rank from the files that reference it; definitions the focus names get a large
   boost, so the mentioned symbol's file comes first.

The outline is then filled greedily, best definition first, until the budget is reached. Tokens are estimated
as characters / 4 (``estimate_tokens``): close enough for English and code with the usual BPE tokenizers, and
free to compute. The budget is never exceeded by that estimate.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from expagent.codeintel.filekinds import is_peripheral
from expagent.codeintel.issuekeys import extract_mentions, generic_names, resolve_paths

CHARS_PER_TOKEN = 4
_DAMPING = 0.85
_ITERATIONS = 100


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def pagerank(nodes: list[str], edges: dict[str, dict[str, float]], personalization: dict[str, float] | None = None,
             damping: float = _DAMPING, iterations: int = _ITERATIONS) -> dict[str, float]:
    """Personalised PageRank by power iteration; ``edges[a][b]`` is the weight of a -> b."""
    n = len(nodes)
    if n == 0:
        return {}
    if personalization:
        total = sum(personalization.values())
        restart = {v: personalization.get(v, 0.0) / total for v in nodes}
    else:
        restart = {v: 1.0 / n for v in nodes}
    out_weight = {a: sum(targets.values()) for a, targets in edges.items()}
    rank = dict(restart)
    for _ in range(iterations):
        nxt = {v: 0.0 for v in nodes}
        dangling = 0.0
        for a in nodes:
            ra = rank[a]
            total = out_weight.get(a, 0.0)
            if total <= 0:
                dangling += ra
                continue
            share = damping * ra / total
            for b, w in edges[a].items():
                nxt[b] += share * w
        leftover = (1 - damping) + damping * dangling
        for v in nodes:
            nxt[v] += leftover * restart[v]
        rank = nxt
    return rank


@dataclass
class _Graph:
    """The focus-independent part of the ranking: one row per (referencing file, defining file, name)."""

    files: list[str]
    src: Any  # numpy int arrays / float arrays, one entry per edge
    dst: Any
    key: Any  # index into ``keys``: the (defining file id, name) pair the edge points at
    name: Any  # index into ``names``
    weight: Any  # base weight: sqrt(occurrences) / number of definers, damped for private and generic names
    keys: dict[tuple[int, str], int]
    names: dict[str, int]


_GRAPH_CACHE: dict[tuple[str, str], _Graph] = {}


def _graph(index: Any) -> _Graph:
    """Build (or reuse, for an unchanged index) the reference graph as flat numpy arrays."""
    import numpy as np

    cache_key = (str(index.root), getattr(index, "fingerprint", "") or str(id(index)))
    cached = _GRAPH_CACHE.get(cache_key)
    if cached is not None:
        return cached

    files = list(index.files)
    file_id = {f: i for i, f in enumerate(files)}
    defines: dict[str, list[int]] = defaultdict(list)
    for path, entry in index.files.items():
        seen: set[str] = set()
        for d in entry.symbols.definitions:
            if not d.local and d.name not in seen:
                seen.add(d.name)
                defines[d.name].append(file_id[path])

    generic = generic_names()
    keys: dict[tuple[int, str], int] = {}
    names: dict[str, int] = {}
    src_l: list[int] = []
    dst_l: list[int] = []
    key_l: list[int] = []
    name_l: list[int] = []
    w_l: list[float] = []
    for path, entry in index.files.items():
        src = file_id[path]
        for name, count in entry.symbols.references.items():
            definers = defines.get(name)
            if not definers:
                continue
            mul = 0.1 if name.startswith("_") else 1.0
            if name in generic:
                mul *= 0.05
            weight = mul * math.sqrt(count) / len(definers)
            nid = names.setdefault(name, len(names))
            for dst in definers:
                if dst == src:
                    continue
                src_l.append(src)
                dst_l.append(dst)
                key_l.append(keys.setdefault((dst, name), len(keys)))
                name_l.append(nid)
                w_l.append(weight)
    graph = _Graph(files, np.asarray(src_l, dtype=np.int64), np.asarray(dst_l, dtype=np.int64),
                   np.asarray(key_l, dtype=np.int64), np.asarray(name_l, dtype=np.int64),
                   np.asarray(w_l, dtype=np.float64), keys, names)
    if len(_GRAPH_CACHE) > 8:
        _GRAPH_CACHE.clear()
    _GRAPH_CACHE[cache_key] = graph
    return graph


def _pagerank_arrays(n: int, src: Any, dst: Any, weight: Any, restart: Any, damping: float = _DAMPING,
                     iterations: int = 100, tolerance: float = 1e-9) -> Any:
    """Personalised PageRank over edge arrays (same maths as :func:`pagerank`, vectorised)."""
    import numpy as np

    out_weight = np.bincount(src, weights=weight, minlength=n)
    dangling = out_weight <= 0
    norm = np.where(dangling, 1.0, out_weight)
    edge_share = weight / norm[src]
    rank = restart.copy()
    for _ in range(iterations):
        nxt = damping * np.bincount(dst, weights=rank[src] * edge_share, minlength=n)
        nxt += ((1 - damping) + damping * rank[dangling].sum()) * restart
        if np.abs(nxt - rank).sum() < tolerance:
            rank = nxt
            break
        rank = nxt
    return rank


def rank_definitions(index: Any, focus_text: str = "") -> tuple[list[tuple[float, str, Any]], dict[str, float]]:
    """``(score, path, definition)`` best first, and the file ranks; the heart of the map."""
    import numpy as np


    mentions = extract_mentions(focus_text)
    mentioned_names: dict[str, float] = dict(mentions.identifiers)
    graph = _graph(index)
    n = len(graph.files)
    if n == 0:
        return [], {}
    file_id = {f: i for i, f in enumerate(graph.files)}

    weight = graph.weight
    mentioned_ids = [graph.names[name] for name in mentioned_names if name in graph.names]
    if mentioned_ids:
        weight = weight * np.where(np.isin(graph.name, mentioned_ids), 10.0, 1.0)

    mentioned_files = resolve_paths(mentions.paths, graph.files)
    personalization: dict[str, float] = dict(mentioned_files)
    for name, w in mentioned_names.items():
        hits = index.lookup(name)
        for path, _d in hits:
            # a name defined in many places points at each of them weakly
            personalization[path] = personalization.get(path, 0.0) + w / math.sqrt(len(hits))
    restart = np.full(n, 1.0 / n)
    if personalization:
        restart = np.zeros(n)
        for path, w in personalization.items():
            restart[file_id[path]] += w
        restart /= restart.sum()
    rank = _pagerank_arrays(n, graph.src, graph.dst, weight, restart)
    file_rank = {f: float(rank[i]) for i, f in enumerate(graph.files)}

    # the rank each referencing file passes along each (defining file, name), as in the PageRank step
    out_weight = np.bincount(graph.src, weights=weight, minlength=n)
    flow = rank[graph.src] * weight / np.where(out_weight > 0, out_weight, 1.0)[graph.src]
    from_refs_by_key = np.bincount(graph.key, weights=flow, minlength=len(graph.keys))

    focused = set(personalization)
    scored: list[tuple[float, str, Any]] = []
    for path, entry in index.files.items():
        fid = file_id[path]
        base = file_rank[path]
        peripheral = path not in focused and is_peripheral(path)
        if path in focused:
            base *= 5  # the focus points here: show more of this file than its link structure alone would
        elif peripheral:
            base *= 0.3
        n_defs = math.sqrt(len(entry.symbols.definitions) or 1)
        path_boost = mentioned_files.get(path, 0.0)
        for d in entry.symbols.definitions:
            if d.local:
                continue
            k = graph.keys.get((fid, d.name))
            from_refs = float(from_refs_by_key[k]) if k is not None else 0.0
            # a file's own rank also lifts its definitions a little, classes and functions more than methods
            own = base * (0.3 if d.kind != "method" else 0.1) / n_defs
            if d.name.startswith("_") and not d.name.endswith("__"):
                own *= 0.3  # private helpers after the public API
            score = own + from_refs * (0.3 if peripheral else 1.0)
            boost = max(mentioned_names.get(d.name, 0.0), mentioned_names.get(d.qualname, 0.0) * 1.5)
            if boost:
                # the named definition in the named file (a traceback frame) above the same name elsewhere
                boost += path_boost
                definers = len(index.lookup(d.name)) or 1
                score = (score + base + 1e-6) * (1 + 100 * boost / math.sqrt(definers))
            scored.append((score, path, d))
    scored.sort(key=lambda t: (-t[0], t[1], t[2].start_line))
    return scored, file_rank


def render_map(index: Any, scored: list[tuple[float, str, Any]], file_rank: dict[str, float],
               token_budget: int) -> str:
    """Fill the outline best-first until ``token_budget`` (estimated tokens) is reached."""
    budget_chars = max(0, token_budget) * CHARS_PER_TOKEN
    total_files = len(index.files)
    header_template = "Repository map ({shown} of {total} files, most relevant first; definitions by their first line):\n"
    # reserve the header at its widest so that the final count never pushes the map over budget
    used = len(header_template.format(shown=total_files, total=total_files))
    if used > budget_chars:
        return ""
    chosen: dict[str, set[int]] = {}  # path -> indexes into that file's definitions
    file_order: list[str] = []
    positions: dict[str, dict[int, int]] = {}  # path -> id(definition) -> index, built on first use
    smallest_line = 8  # no definition line is shorter than this: stop scanning once nothing can fit
    shown_names: set[tuple[str, str]] = set()  # (path, qualname): overloads and property setters show once

    for _score, path, d in scored:
        if budget_chars - used < smallest_line:
            break
        defs = index.files[path].symbols.definitions
        if path not in positions:
            positions[path] = {id(x): i for i, x in enumerate(defs)}
        idx = positions[path][id(d)]
        picked = chosen.get(path, set())
        if idx in picked or (path, d.qualname) in shown_names:
            continue
        ancestors = _ancestors(defs, d) if "." in d.qualname else []
        cost = (0 if path in chosen else len(path) + 2) + _render_len(d)
        cost += sum(_render_len(defs[i]) for i in ancestors if i not in picked)
        if used + cost > budget_chars:
            continue
        used += cost
        if path not in chosen:
            chosen[path] = set()
            file_order.append(path)
        chosen[path].add(idx)
        chosen[path].update(ancestors)
        shown_names.update((path, defs[i].qualname) for i in [idx, *ancestors])
    # files with no room for a symbol still get their name, in rank order, while the budget lasts
    for path, _r in sorted(file_rank.items(), key=lambda kv: (-kv[1], kv[0])):
        if path in chosen:
            continue
        cost = len(path) + 1
        if used + cost > budget_chars:
            continue
        used += cost
        chosen[path] = set()
        file_order.append(path)

    lines = [header_template.format(shown=len(file_order), total=total_files).rstrip("\n")]
    for path in file_order:
        defs = index.files[path].symbols.definitions
        picked = sorted(chosen[path])
        if not picked:
            lines.append(path)
            continue
        lines.append(path + ":")
        for i in picked:
            lines.append(_render_line(defs[i]))
    # the accounting above is exact: every line was paid for with its newline, the header at its widest
    return "\n".join(lines) + "\n"


def _ancestors(defs: list, d) -> list[int]:
    """Indexes of the definitions whose qualified names prefix ``d``'s (its enclosing classes)."""
    parts = d.qualname.split(".")
    prefixes = {".".join(parts[:k]) for k in range(1, len(parts))}
    return [i for i, other in enumerate(defs)
            if other.qualname in prefixes and other.start_line <= d.start_line <= other.end_line and other is not d]


def _render_line(d) -> str:
    depth = d.qualname.count(".")
    return "  " + "  " * depth + d.signature


def _render_len(d) -> int:
    return len(_render_line(d)) + 1


def build_repo_map(root: str | os.PathLike, focus_text: str = "", token_budget: int = 1024, index: Any = None) -> str:
    """The ranked outline of ``root`` within ``token_budget`` estimated tokens, ranked towards ``focus_text``."""
    from expagent.codeintel.index import SymbolIndex

    if index is None:
        index = SymbolIndex.build(root)
    scored, file_rank = rank_definitions(index, focus_text)
    return render_map(index, scored, file_rank, token_budget)
