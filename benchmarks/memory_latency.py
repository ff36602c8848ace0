"""Search latency and import throughput of expagent's memory at 1k, 10k and 100k items.

Items are episodes made from the 407 SWE-bench Verified instances (real issue texts and patches), spread over
50 synthetic repos with distinct ids and times. Embedding 100k documents on this 2-core machine would take hours,
so the bulk of the items carry vectors (real MiniLM vectors of the real texts, each jittered so items differ), the
way ``memory import`` carries exported vectors; import throughput is measured both ways:

* ``import_embedded_per_s``: records/s when expagent embeds them (the first 400 items, real embedding),
* ``import_carried_per_s``: records/s when vectors are carried (Chroma add + audit, no embedding).

Search latency is measured through ``retrieve()`` with a real query embedding per search (issue texts not in the
store), a repo filter and a ``before`` filter, after one warm-up query (which builds/loads the lexical index; its
time is reported separately as ``lexical_index_build_s``).

Run: ``python benchmarks/memory_latency.py [--sizes 1000,10000,100000] [--queries 40]``.
Writes ``benchmarks/results/memory_latency.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "swe-verified-dev-407.jsonl"  # ../shared beside the repository
RESULTS = ROOT / "benchmarks" / "results"
N_REPOS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--checkout", type=Path,
                        help="a git work tree: search with checkout= (localization and staleness included; the "
                             "localizer of its commit is built once before timing); writes memory_latency_localized.*")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    import numpy as np

    from expagent.memory.lexical import lexical_index
    from expagent.memory.retrieval import retrieve
    from expagent.memory.store import MemoryStore
    from expagent.memory.swebench import episode_from_swebench

    rows = [json.loads(line) for line in args.data.open(encoding="utf-8") if line.strip()]
    rng = random.Random(7)
    rng.shuffle(rows)
    queries, pool = rows[: args.queries], rows[args.queries:]
    home = Path(tempfile.mkdtemp(prefix="expagent-latency-"))
    store = MemoryStore.open(home=home)
    base = datetime(2015, 1, 1, tzinfo=timezone.utc)

    def episode(n: int):
        row = pool[n % len(pool)]
        ep = episode_from_swebench({**row, "repo": f"{row['repo']}-{n % N_REPOS}", "instance_id": f"syn-{n}",
                                    "created_at": (base + timedelta(minutes=n)).isoformat()}, actor="bench")
        return ep

    # real vectors of the pool's texts, computed once (the first import measures embedding throughput)
    t = time.perf_counter()
    first = [episode(n) for n in range(min(400, sizes[0]))]
    store.add_records(first, actor="bench")
    embedded_rate = len(first) / (time.perf_counter() - t)
    got = store.collection.get(ids=[e.id for e in first], include=["embeddings"])
    base_vectors = {i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"])}
    pool_vectors = [base_vectors[e.id] for e in first]

    results = []
    carried_total, carried_time = 0, 0.0
    count = len(first)
    for size in sizes:
        while count < size:
            batch = [episode(n) for n in range(count, min(size, count + 2000))]
            vecs = []
            for n, _ep in enumerate(batch, count):
                v = pool_vectors[n % len(pool_vectors)] + np.random.default_rng(n).normal(0, 0.02, 384).astype(np.float32)
                vecs.append((v / np.linalg.norm(v)).tolist())
            t = time.perf_counter()
            store.add_records(batch, actor="bench", embeddings=vecs)
            carried_time += time.perf_counter() - t
            carried_total += len(batch)
            count += len(batch)
            print(f"  {count} items", file=sys.stderr)
        t = time.perf_counter()
        lexical_index(store)
        build = time.perf_counter() - t
        if args.checkout:
            from expagent.codeintel.localize import localizer_for

            localizer_for(args.checkout)  # once per (repository, commit), as a replay pays it per task
        latencies = []
        returned = []
        for n, q in enumerate(queries):
            repo = f"{q['repo']}-{n % N_REPOS}"
            before = (base + timedelta(minutes=count)).isoformat()
            t = time.perf_counter()
            hits = retrieve(store, q["problem_statement"], repo=repo, before=before, k=3, checkout=args.checkout)
            latencies.append(time.perf_counter() - t)
            returned.append(len(hits))
        latencies.sort()
        embed_times = []
        for q in queries[:10]:
            t = time.perf_counter()
            store.embedder.embed_query([q["problem_statement"]])
            embed_times.append(time.perf_counter() - t)
        embed_times.sort()
        r = {"items": count, "lexical_index_build_s": round(build, 2),
             "search_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
             "search_p95_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 1),
             "query_embedding_p50_ms": round(1000 * embed_times[len(embed_times) // 2], 1),
             "mean_results": round(sum(returned) / len(returned), 2)}
        print(json.dumps(r), file=sys.stderr)
        results.append(r)

    summary = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "import_embedded_per_s": round(embedded_rate, 1),
        "import_carried_per_s": round(carried_total / carried_time, 1) if carried_time else None,
        "queries": len(queries),
        "results": results,
        "goal_p50_under_100ms_at_10k": next((r["search_p50_ms"] < 100 for r in results if r["items"] == 10_000), None),
        "checkout": bool(args.checkout),
    }
    print(json.dumps(summary, indent=2))
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = "memory_latency_localized" if args.checkout else "memory_latency"
        (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (RESULTS / f"{name}.md").write_text(markdown(summary), encoding="utf-8")


def markdown(s: dict) -> str:
    lines = ["# Memory latency and import throughput", "",
             f"Machine: {s['machine']['cpus']} CPUs, load average at the end {s['machine']['load_average_at_end']} "
             "(shared machine: the load average says how busy it was; numbers are wall-clock).", "",
             "| items | search p50 (ms) | search p95 (ms) | query embedding p50 (ms) | lexical index build (s) | mean results |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in s["results"]:
        lines.append(f"| {r['items']} | {r['search_p50_ms']} | {r['search_p95_ms']} | {r['query_embedding_p50_ms']} | "
                     f"{r['lexical_index_build_s']} | {r['mean_results']} |")
    lines += ["", f"Import: {s['import_embedded_per_s']} records/s with embedding, "
              f"{s['import_carried_per_s']} records/s with carried vectors.", "",
              f"Goal p50 < 100 ms at 10k: {'met' if s['goal_p50_under_100ms_at_10k'] else 'NOT met'}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
