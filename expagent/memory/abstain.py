"""Whether to answer at all: a small logistic gate over query-level features, separate from ranking.

Ranking answers "which stored episode is most relevant?"; abstention answers "is any of them relevant?". One
relevance floor on the top score did both and traded one for the other (docs/memory.md). The gate looks at the
whole candidate pool of one query, all of it known at query time (no leakage):

* ``log_pool``: log(1 + number of records that pass the filters) — a repository with many past fixes is much
  more likely to hold one touching the same file (the strongest signal besides the score);
* ``top_score``: the best candidate's final score (what the floor used to look at);
* ``top_dense``: the best cosine of any candidate (the embedding alone, less diluted by lexical noise);
* ``file_recurrence``: the share of the other candidates whose files overlap the best candidate's files (files
  that keep being fixed are files that will be fixed again).

With the new issue's likely edit locations (``retrieve(checkout=...)``, :mod:`expagent.codeintel.localize`), the
**localized gate** (``abstain_gate_localized.json``) adds three features: ``top_loc`` and ``best_loc`` (how close
the top candidate's, and the closest candidate's, edited files come to the top of the issue's likely locations:
1/rank within 10) and ``loc_mass`` (how much of the five likeliest locations memory has edited). "Memory touched
the places this issue will be fixed" separates answerable queries far better than any text score (see
docs/memory.md for the held-out AUC).

``p = sigmoid(b + sum(w_i * (x_i - mean_i) / std_i))``; the gate answers when ``p >= threshold`` or when the top
cosine is at least ``sure_dense``: a near-duplicate is never withheld because the memory is young (the pool-size
prior would otherwise silence a store with two records). On the benchmark, 1 of 218 queries without a relevant
episode had a cosine >= 0.75, 8 of 177 with one did. (A second override on the top score, >= 0.35, was tried
and cost held-out hit@3: the model already answers those.) The
coefficients are data (``abstain_gate.json``), fitted by ``benchmarks/retrieval_quality.py --fit-gate`` with
:func:`fit_logistic` on the retrieval benchmark; the benchmark reports the gate's held-out (leave-one-repo-out)
numbers. numpy is imported inside the functions (the CLI must start fast).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

FEATURES = ("log_pool", "top_score", "top_dense", "file_recurrence")
#: with a localization of the new issue (``Localization``): how close the candidates' edited files come to the
#: top of the issue's likely edit locations
LOCALIZED_FEATURES = (*FEATURES, "top_loc", "best_loc", "loc_mass")
GATE_FILE = Path(__file__).with_name("abstain_gate.json")
LOCALIZED_GATE_FILE = Path(__file__).with_name("abstain_gate_localized.json")


@dataclass(frozen=True)
class Gate:
    """A fitted gate: feature names, standardisation, weights (``bias`` first) and the answer threshold."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...]
    threshold: float
    sure_dense: float = 0.75

    def probability(self, feats: dict[str, float]) -> float:
        z = self.weights[0]
        for name, mu, sd, w in zip(self.features, self.mean, self.std, self.weights[1:]):
            z += w * (feats[name] - mu) / sd
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def sure(self, feats: dict[str, float]) -> bool:
        """True for a match strong enough to answer whatever the model says."""
        return feats["top_dense"] >= self.sure_dense

    def answers(self, feats: dict[str, float]) -> bool:
        if not feats:
            return False
        return self.sure(feats) or self.probability(feats) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean), "std": list(self.std),
                "weights": list(self.weights), "threshold": self.threshold, "sure_dense": self.sure_dense}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Gate":
        return cls(tuple(data["features"]), tuple(map(float, data["mean"])), tuple(map(float, data["std"])),
                   tuple(map(float, data["weights"])), float(data["threshold"]),
                   float(data.get("sure_dense", 0.75)))


@lru_cache(maxsize=2)
def default_gate(localized: bool = False) -> Gate:
    """The shipped gate: the localized one when the query's likely edit locations are known."""
    path = LOCALIZED_GATE_FILE if localized else GATE_FILE
    return Gate.from_dict(json.loads(path.read_text(encoding="utf-8")))


def query_features(hits: Sequence[Any], pool_size: int, localized: bool = False) -> dict[str, float]:
    """The gate's features for one query's scored candidates (best first); ``{}`` when there are none.
    ``localized``: the candidates carry a ``loc`` part (``score_candidates(locations=...)``); adds
    ``top_loc`` (the best candidate's), ``best_loc`` (the best of all candidates) and ``loc_mass`` (of the issue's
    five likeliest edit locations, the score share, relative to the first, of those some candidate edited)."""
    if not hits:
        return {}
    extra = {}
    if localized:
        extra = {"top_loc": float(hits[0].parts.get("loc", 0.0)),
                 "best_loc": max(float(h.parts.get("loc", 0.0)) for h in hits),
                 "loc_mass": _loc_mass(hits)}
    top = hits[0]
    top_files = set(getattr(top.record, "files", None) or [])
    others = hits[1:]
    recurring = sum(bool(top_files & set(getattr(h.record, "files", None) or [])) for h in others)
    return {
        "log_pool": math.log1p(max(pool_size, len(hits))),
        "top_score": float(top.score),
        "top_dense": max(float(h.parts.get("dense", 0.0)) for h in hits),
        "file_recurrence": recurring / max(1, len(others)),
        **extra,
    }


def _loc_mass(hits: Sequence[Any]) -> float:
    localization = getattr(hits, "localization", None)
    top = list(getattr(localization, "files", ()) or ())[:5]
    if not top or top[0].score <= 0:
        return 0.0
    touched = {f for h in hits for f in (getattr(h.record, "files", None) or [])}
    return sum(loc.score / top[0].score for loc in top if loc.path in touched) / 5


def fit_logistic(rows: Sequence[dict[str, float]], labels: Sequence[bool], *, features: Sequence[str] = FEATURES,
                 l2: float = 1.0, target_abstention: float = 0.85, sure_dense: float = 0.75) -> Gate:
    """Fit the gate by L2-regularised logistic regression (Newton steps) on standardised features.

    ``labels``: True when the query had a relevant stored record. The threshold is the lowest probability at
    which the share of negatives (label False) the gate keeps silent on reaches ``target_abstention`` on these
    same rows (so a held-out evaluation sees it fall short a little; hence a target above the goal).
    """
    import numpy as np

    x = np.array([[r[f] for f in features] for r in rows], dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.c_[np.ones(len(x)), (x - mean) / std]
    w = np.zeros(z.shape[1])
    penalty = l2 * np.diag(np.r_[0.0, np.ones(len(features))])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) + penalty @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    gate = Gate(tuple(features), tuple(mean.tolist()), tuple(std.tolist()), tuple(w.tolist()), 0.5, sure_dense)
    negatives = sorted(gate.probability(r) for r, lab in zip(rows, labels) if not lab and not gate.sure(r))
    n_neg = sum(1 for lab in labels if not lab)
    if not negatives:
        return gate
    # silent on a negative means p < threshold (and not sure): keep ceil(target * n_neg) of them silent
    need = min(len(negatives), math.ceil(target_abstention * n_neg))
    threshold = negatives[need - 1] + 1e-9 if need > 0 else 0.0
    return Gate(gate.features, gate.mean, gate.std, gate.weights, float(threshold), sure_dense)
