"""Retrieval quality of expagent's memory on SWE-bench Verified (407 instances), against two baselines.

Protocol (issue 4): within each repo, instances are taken in order of their instance number. Every instance is
imported as a reference-fix episode whose ``created_at`` follows that order; each instance then queries with its
problem statement, its repo, ``before`` = its own time and ``exclude_instance`` = itself, so it can only see
earlier instances of its repo (the leakage guards do the work, through the real store). An earlier instance is
*relevant* when its patch edits a non-test ``.py`` file that this instance's patch edits too.

Reported: hit@1/3/5 and MRR over instances that have a relevant earlier one, and over instances that have none,
the share for which nothing is returned (abstention). Three systems in the same run:

* ``expagent``: ``expagent.memory.retrieval.retrieve`` with its default settings (hybrid + floor),
* ``bm25-problem``: plain BM25 (bm25s, English stop words) over earlier same-repo problem statements,
* ``dense-only``: nearest neighbours of the problem statement by cosine of the stored MiniLM vectors (same store,
  same filters, no floor).

The abstention gate (``expagent.memory.abstain``) is fitted on this benchmark, so its headline numbers are
**held out**: leave-one-repo-out, each repository's queries are decided by a gate fitted (coefficients and
threshold) on the other repositories only. The same is done for the plain floor (the floor chosen on the other
repositories), so the two rules compare on equal terms. In-sample numbers (the shipped gate, fitted on all
repositories) are reported beside them.

Run: ``python benchmarks/retrieval_quality.py [--data FILE] [--dump FILE] [--fit-gate]``; writes
``benchmarks/results/retrieval_quality.json`` and ``.md``; ``--fit-gate`` also writes the gate fitted on all
repositories to ``expagent/memory/abstain_gate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = Path("/work/shared/data/swe-verified-dev-407.jsonl")
RESULTS = ROOT / "benchmarks" / "results"
GATE_TARGETS = [0.80, 0.82, 0.85, 0.88, 0.90]
SHIPPED_TARGET = 0.85
FLOOR_GRID = [round(0.005 * i, 3) for i in range(0, 101)]
FLOORS = [0.0, 0.1, 0.15, 0.18, 0.2, 0.22, 0.23, 0.235, 0.24, 0.245, 0.25, 0.26, 0.27, 0.3, 0.35]
_TEST_PATH = re.compile(r"(^|/)(tests?|testing)/|(^|/)test_[^/]*$|_tests?\.py$|(^|/)conftest\.py$")


def changed_py_files(patch: str) -> set[str]:
    from expagent.patchutil import patch_files

    return {f for f in patch_files(patch) if f.endswith(".py") and not _TEST_PATH.search(f)}


def instance_number(instance_id: str) -> int:
    return int(instance_id.rsplit("-", 1)[1])


def load(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    rows.sort(key=lambda r: (r["repo"], instance_number(r["instance_id"])))
    base = datetime(2015, 1, 1, tzinfo=timezone.utc)
    for n, row in enumerate(rows):
        # one minute apart in (repo, number) order: "earlier" means an earlier number in the same repo
        row["created_at"] = (base + timedelta(minutes=n)).isoformat()
    return rows


def relevant_sets(rows: list[dict]) -> dict[str, set[str]]:
    by_repo: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_repo[row["repo"]].append(row)
    out = {}
    for repo_rows in by_repo.values():
        for n, row in enumerate(repo_rows):
            mine = changed_py_files(row["patch"])
            out[row["instance_id"]] = {e["instance_id"] for e in repo_rows[:n] if changed_py_files(e["patch"]) & mine}
    return out


def metrics(results: dict[str, list[str]], relevant: dict[str, set[str]]) -> dict:
    with_rel = [i for i in results if relevant[i]]
    without = [i for i in results if not relevant[i]]
    def hit(i: str, k: int) -> bool:
        return any(r in relevant[i] for r in results[i][:k])
    def rr(i: str) -> float:
        for rank, r in enumerate(results[i], 1):
            if r in relevant[i]:
                return 1.0 / rank
        return 0.0
    n = len(with_rel) or 1
    return {
        "hit@1": sum(hit(i, 1) for i in with_rel) / n,
        "hit@3": sum(hit(i, 3) for i in with_rel) / n,
        "hit@5": sum(hit(i, 5) for i in with_rel) / n,
        "mrr": sum(rr(i) for i in with_rel) / n,
        "abstention": sum(not results[i] for i in without) / (len(without) or 1),
        "answered_with_relevant": sum(bool(results[i]) for i in with_rel) / n,
        "n_with_relevant": len(with_rel),
        "n_without_relevant": len(without),
    }


def bm25_baseline(rows: list[dict], k: int = 5) -> dict[str, list[str]]:
    import bm25s

    by_repo: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_repo[row["repo"]].append(row)
    out: dict[str, list[str]] = {}
    for repo_rows in by_repo.values():
        for n, row in enumerate(repo_rows):
            earlier = repo_rows[:n]
            if not earlier:
                out[row["instance_id"]] = []
                continue
            retriever = bm25s.BM25()
            retriever.index(bm25s.tokenize([e["problem_statement"] for e in earlier], stopwords="en",
                                           show_progress=False), show_progress=False)
            query = bm25s.tokenize([row["problem_statement"]], stopwords="en", show_progress=False)
            kk = min(k, len(earlier))
            docs, scores = retriever.retrieve(query, k=kk, show_progress=False)
            out[row["instance_id"]] = [earlier[int(d)]["instance_id"] for d, s in zip(docs[0], scores[0]) if s > 0]
    return out


def ranked(cands: list, repo: str, floor: float | None = None) -> list[str]:
    """The top 5 of an answered query, cut by ``floor`` (default: the per-episode floor of an answered query)."""
    from expagent.memory.retrieval import DEFAULT_SETTINGS, select_hits

    cut = DEFAULT_SETTINGS.episode_floor if floor is None else floor
    return [h.record.instance_id for h in select_hits(cands, repo=repo, k=5, floor=cut)]


def fit_gate(feats: dict, relevant: dict, ids: list[str], target: float):
    from expagent.memory.abstain import fit_logistic

    return fit_logistic([feats[i] for i in ids], [bool(relevant[i]) for i in ids], target_abstention=target)


def loro_gate(scored: dict, feats: dict, relevant: dict, repo_of: dict, target: float) -> dict[str, list[str]]:
    """Leave-one-repo-out: each repository's queries decided by a gate fitted on the other repositories."""
    out = {}
    for repo in sorted(set(repo_of.values())):
        train = [i for i in feats if feats[i] and repo_of[i] != repo]
        gate = fit_gate(feats, relevant, train, target)
        for iid, (r, cands) in scored.items():
            if r == repo:
                out[iid] = ranked(cands, r) if gate.answers(feats[iid]) else []
    return out


def loro_floor(scored: dict, relevant: dict, repo_of: dict) -> tuple[dict[str, list[str]], dict[str, float]]:
    """The plain floor, held out: per repository, the lowest floor reaching abstention 0.80 on the others."""
    out, chosen = {}, {}
    for repo in sorted(set(repo_of.values())):
        negatives = [c for i, (r, c) in scored.items() if r != repo and not relevant[i]]
        floor = next((f for f in FLOOR_GRID
                      if sum(not c or c[0].score < f for c in negatives) >= 0.80 * len(negatives)), FLOOR_GRID[-1])
        chosen[repo] = floor
        for iid, (r, cands) in scored.items():
            if r == repo:
                out[iid] = ranked(cands, r, floor)
    return out, chosen



def seed_store(rows: list[dict], home: Path):
    """A memory under ``home`` holding every row as a reference-fix episode; (store, added, present, seconds)."""
    from expagent.memory.store import MemoryStore
    from expagent.memory.swebench import import_swebench

    store = MemoryStore.open(home=home)
    seed = home / "seed.jsonl"
    with seed.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({k: row[k] for k in ("repo", "instance_id", "base_commit", "problem_statement",
                                                       "patch", "created_at")}) + "\n")
    t0 = time.perf_counter()
    added, present, _ = import_swebench(store, seed)
    return store, added, present, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dump", type=Path, help="also write every candidate's score parts (for tuning)")
    parser.add_argument("--home", type=Path, help="memory home to use (default: a fresh temporary one)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write benchmarks/results")
    parser.add_argument("--fit-gate", action="store_true",
                        help="refit the abstention gate on all repositories and write expagent/memory/abstain_gate.json")
    args = parser.parse_args()

    from expagent.memory import abstain
    from expagent.memory.retrieval import DEFAULT_SETTINGS, score_candidates, select_hits

    rows = load(args.data)
    relevant = relevant_sets(rows)
    by_id = {r["instance_id"]: r for r in rows}
    home = args.home or Path(tempfile.mkdtemp(prefix="expagent-bench-"))
    store, added, present, import_seconds = seed_store(rows, home)
    print(f"imported {len(added)} episodes ({present} already present) in {import_seconds:.1f}s", file=sys.stderr)
    episode_instance = {}
    for rec in store.list(kind="episode"):
        episode_instance[rec.id] = rec.instance_id

    systems: dict[str, dict[str, list[str]]] = {"expagent": {}, "dense-only": {}}
    latencies = []
    dump = []
    scored = {}
    feats: dict[str, dict[str, float]] = {}
    for row in rows:
        iid = row["instance_id"]
        query = dict(repo=row["repo"], before=row["created_at"], exclude_instance=iid)
        t = time.perf_counter()
        # retrieve() is score_candidates() + select_hits(); calling them apart lets the baseline reuse the scores
        cands = score_candidates(store, row["problem_statement"], kinds=("episode",), **query)
        hits = select_hits(cands, repo=row["repo"], k=5)
        feats[iid] = abstain.query_features(cands, cands.pool_size)
        latencies.append(time.perf_counter() - t)
        systems["expagent"][iid] = [h.record.instance_id for h in hits]
        scored[iid] = (row["repo"], cands)
        # dense-only: the same store and filters, nearest neighbours by cosine, no floor
        dense_sorted = sorted(cands, key=lambda h: h.parts["dense"], reverse=True)
        systems["dense-only"][iid] = [h.record.instance_id for h in dense_sorted[:5]]
        if args.dump:
            dump.append({"instance_id": iid, "repo": row["repo"], "relevant": sorted(relevant[iid]),
                         "features": feats[iid],
                         "candidates": [{"instance_id": h.record.instance_id, "files": h.record.files, **h.parts} for h in cands]})
    systems["bm25-problem"] = bm25_baseline(rows)

    # the gate and the floor, held out (leave-one-repo-out) and in sample, on the same scores
    if args.fit_gate:
        fitted = fit_gate(feats, relevant, [iid for iid in feats if feats[iid]], SHIPPED_TARGET)
        abstain.GATE_FILE.write_text(json.dumps(fitted.to_dict(), indent=2) + "\n", encoding="utf-8")
        abstain.default_gate.cache_clear()
        print(f"wrote {abstain.GATE_FILE}", file=sys.stderr)
    repo_of = {iid: r for iid, (r, _) in scored.items()}
    gated = {}
    for target in GATE_TARGETS:
        gated[target] = loro_gate(scored, feats, relevant, repo_of, target)
    shipped = abstain.default_gate()
    in_sample = {iid: (ranked(c, r) if shipped.answers(feats[iid]) else []) for iid, (r, c) in scored.items()}
    held_floor, floors_chosen = loro_floor(scored, relevant, repo_of)
    systems = {
        "expagent (gate, held out)": gated[SHIPPED_TARGET],
        "expagent (gate, in sample = shipped)": in_sample,
        "floor only (held out)": held_floor,
        "floor 0.24 (in sample, old default)": {iid: ranked(c, r, 0.24) for iid, (r, c) in scored.items()},
        "floor 0 (no abstention)": {iid: ranked(c, r, 0.0) for iid, (r, c) in scored.items()},
        "dense-only": systems["dense-only"],
        "bm25-problem": systems["bm25-problem"],
    }
    for iid, got in systems["floor 0 (no abstention)"].items():
        leaked = [g for g in got if g == iid or by_id[g]["created_at"] >= by_id[iid]["created_at"]]
        assert not leaked, f"leakage guard failed for {iid}: {leaked}"
    report = {name: metrics(res, relevant) for name, res in systems.items()}
    gate_sweep = [{"target": t, **{key: round(m[key], 3) for key in ("hit@1", "hit@3", "hit@5", "mrr", "abstention")}}
                  for t, m in ((t, metrics(gated[t], relevant)) for t in GATE_TARGETS)]
    # the trade-off the floor controls, on the same scores (what "tuned on the benchmark" means, in the open)
    sweep = []
    for floor in FLOORS:
        res = {iid: [h.record.instance_id for h in select_hits(c, repo=r, k=5, floor=floor)]
               for iid, (r, c) in scored.items()}
        m = metrics(res, relevant)
        sweep.append({"floor": floor, **{key: round(m[key], 3) for key in ("hit@1", "hit@3", "hit@5", "mrr",
                                                                           "abstention")}})
    latencies.sort()
    summary = {
        "data": str(args.data),
        "instances": len(rows),
        "settings": DEFAULT_SETTINGS.__dict__,
        "k": 5,
        "import_seconds": round(import_seconds, 2),
        "retrieve_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "gate": shipped.to_dict(),
        "gate_target_abstention": SHIPPED_TARGET,
        "systems": report,
        "gate_sweep_held_out": gate_sweep,
        "floors_chosen_held_out": floors_chosen,
        "floor_sweep": sweep,
        "goals": {name: {
            "hit@3>=0.70": report[name]["hit@3"] >= 0.70,
            "mrr>=0.60": report[name]["mrr"] >= 0.60,
            "abstention>=0.80": report[name]["abstention"] >= 0.80,
        } for name in ("expagent (gate, held out)", "expagent (gate, in sample = shipped)")},
    }
    print(json.dumps(summary, indent=2))
    if args.dump:
        args.dump.write_text("\n".join(json.dumps(d) for d in dump) + "\n", encoding="utf-8")
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "retrieval_quality.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (RESULTS / "retrieval_quality.md").write_text(markdown(summary), encoding="utf-8")


def markdown(summary: dict) -> str:
    systems = summary["systems"]
    any_system = next(iter(systems.values()))
    lines = [
        "# Retrieval quality (SWE-bench Verified, 407 instances)",
        "",
        f"Data: `{summary['data']}`. Each instance queries with its problem statement against reference-fix "
        "episodes of *earlier* instances of its repo (through `before` and `exclude_instance`, in the real store). "
        "Relevant = same repo and the patches share an edited non-test `.py` file.",
        "",
        f"Instances with a relevant earlier one: {any_system['n_with_relevant']}; "
        f"without: {any_system['n_without_relevant']}. k = {summary['k']}.",
        "",
        "Held out = leave-one-repo-out: each repository's queries are decided by a gate (or floor) fitted on the "
        "other repositories only. The shipped gate is fitted on all repositories, so its row is in sample.",
        "",
        "| system | hit@1 | hit@3 | hit@5 | MRR | abstention (no relevant) | answers when relevant exists |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in systems.items():
        lines.append(f"| {name} | {m['hit@1']:.3f} | {m['hit@3']:.3f} | {m['hit@5']:.3f} | {m['mrr']:.3f} | "
                     f"{m['abstention']:.3f} | {m['answered_with_relevant']:.3f} |")
    lines.append("")
    for name, goals in summary["goals"].items():
        lines.append(f"Goals ({name}, same settings): "
                     + ", ".join(f"{g}: {'met' if ok else 'NOT met'}" for g, ok in goals.items()))
        lines.append("")
    gate = summary["gate"]
    lines += [
        f"Settings: `{json.dumps(summary['settings'])}`.",
        "",
        f"Shipped gate (target abstention on the fitting data {summary['gate_target_abstention']}): features "
        f"`{gate['features']}`, weights (bias first, on standardised features) "
        f"`{[round(w, 3) for w in gate['weights']]}`, threshold {gate['threshold']:.3f}, answers regardless when "
        f"the top cosine >= {gate['sure_dense']}.",
        "",
        "## The gate's trade-off, held out (leave-one-repo-out), by its target abstention on the fitting repos",
        "",
        "| target | hit@1 | hit@3 | hit@5 | MRR | abstention |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {r['target']} | {r['hit@1']:.3f} | {r['hit@3']:.3f} | {r['hit@5']:.3f} | {r['mrr']:.3f} | "
          f"{r['abstention']:.3f} |" for r in summary["gate_sweep_held_out"]],
        "",
        "Floors chosen held out (lowest floor with abstention >= 0.80 on the other repos): "
        + ", ".join(f"{r} {f}" for r, f in summary["floors_chosen_held_out"].items()) + ".",
        "",
        "## What a plain relevance floor trades (in sample, same scores, k = 5)",
        "",
        "| floor | hit@1 | hit@3 | hit@5 | MRR | abstention |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {r['floor']} | {r['hit@1']:.3f} | {r['hit@3']:.3f} | {r['hit@5']:.3f} | {r['mrr']:.3f} | "
          f"{r['abstention']:.3f} |" for r in summary["floor_sweep"]],
        "",
        f"Import of {summary['instances']} episodes: {summary['import_seconds']} s (embedding included); "
        f"retrieve p50 {summary['retrieve_p50_ms']} ms.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
