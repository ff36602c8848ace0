"""What the localization step and the staleness check add to a memory search.

``retrieve(..., checkout=TREE)`` localizes the issue in the checkout (the localizer of its commit is built once and
cached; a replay pays that once per task) and checks the candidates' anchors against the tree's symbol index.
This measures, on an existing memory (``--home``) and a git work tree (``--checkout``), the p50 of the same
queries with and without the checkout, and of ``localize()`` alone, after one warm-up call that builds the
localizer (its time is reported as ``localizer_build_s``). The added cost does not depend on the memory's size
(one localization per query, anchors of at most the candidates), so it adds to the p50 measured at 10k items by
``memory_latency.py``.

Run: ``python benchmarks/localize_latency.py --home DIR --checkout TREE [--queries 40]``; writes
``benchmarks/results/localize_latency.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / ".." / "shared" / "data" / "swe-verified-dev-407.jsonl"
RESULTS = ROOT / "benchmarks" / "results"


def p50(values: list[float]) -> float:
    return round(1000 * sorted(values)[len(values) // 2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--checkout", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from expagent.codeintel.localize import localizer_for
    from expagent.memory.retrieval import retrieve
    from expagent.memory.store import MemoryStore

    rows = [json.loads(line) for line in args.data.open(encoding="utf-8") if line.strip()]
    random.Random(7).shuffle(rows)
    queries = rows[: args.queries]
    store = MemoryStore.open(home=args.home)
    t = time.perf_counter()
    localizer = localizer_for(args.checkout)
    build = time.perf_counter() - t
    retrieve(store, queries[0]["problem_statement"], repo=queries[0]["repo"], k=3)  # loads the memory's index
    plain, with_checkout, localize_only = [], [], []
    for q in queries:
        text, repo = q["problem_statement"], q["repo"]
        t = time.perf_counter()
        retrieve(store, text, repo=repo, k=3)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        retrieve(store, text, repo=repo, k=3, checkout=args.checkout)
        with_checkout.append(time.perf_counter() - t)
        t = time.perf_counter()
        localizer_for(args.checkout).localize(text)
        localize_only.append(time.perf_counter() - t)
    summary = {
        "checkout_files": len(localizer.paths),
        "records": len(store.list(kind="episode")),
        "queries": len(queries),
        "localizer_build_s": round(build, 2),
        "retrieve_p50_ms": p50(plain),
        "retrieve_with_checkout_p50_ms": p50(with_checkout),
        "localize_p50_ms": p50(localize_only),
        "added_p50_ms": round(p50(with_checkout) - p50(plain), 1),
        "localize_share_of_retrieve": round(p50(localize_only) / p50(plain), 3),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary, indent=2))
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "localize_latency.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (RESULTS / "localize_latency.md").write_text(
            "# Localization and staleness cost per search\n\n"
            f"Memory of {summary['records']} episodes; checkout with {summary['checkout_files']} non-test source "
            f"files; {summary['queries']} queries (real issue texts), after one warm-up.\n\n"
            "| measure | value |\n| --- | --- |\n"
            + "".join(f"| {k} | {v} |\n" for k, v in summary.items()) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
