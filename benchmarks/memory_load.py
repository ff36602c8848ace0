"""Memory under load: search latency with concurrent searchers and a writer, and listing speed.

1. **Search under load.** A memory of 10k episodes (real SWE-bench issue texts and patches, 50 synthetic repos;
   real MiniLM vectors of a few hundred texts, jittered per item, carried the way ``memory import`` carries them).
   Four searching processes each run ``retrieve()`` (query embedding included, repo and ``before`` filters) on real
   issue texts not in the store, while one writer process keeps adding episodes (one op each, embedded by
   expagent, as a replay remembers its runs). Every failed read is counted. Measured on the embedded store and on
   a ``chroma run`` server on loopback (started and stopped here).
2. **Listing.** Wall time of ``expagent memory ls | show | history | stats`` (real subprocesses, median of 3) at 1k
   records, and whether they loaded chromadb or the embedding model.

The development machine is shared with other agents: the load average is recorded with the numbers.

Run: ``python benchmarks/memory_load.py [--items 10000] [--queries 60] [--data FILE] [--skip-server]``.
Writes ``benchmarks/results/memory_load.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / ".." / "shared" / "data" / "swe-verified-dev-407.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
N_REPOS = 50
BASE = datetime(2015, 1, 1, tzinfo=timezone.utc)

SEARCHER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from expagent.memory.retrieval import retrieve
from expagent.memory.store import MemoryStore
home, url, queries_file, start_flag, out_file = sys.argv[2:7]
queries = json.loads(open(queries_file).read())
store = MemoryStore.open(home=home, chroma_url=url or None, create=False)
retrieve(store, "warm up the index", repo="x/y", k=3)
store.embedder.embed_query(["warm up the model"])  # a search of an empty repo returns before embedding its query
open(out_file + ".ready", "w").close()
while not os.path.exists(start_flag):
    time.sleep(0.05)
lat, errors = [], []
for q in queries:
    t = time.perf_counter()
    try:
        retrieve(store, q["query"], repo=q["repo"], before=q["before"], k=3)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        continue
    lat.append(time.perf_counter() - t)
open(out_file, "w").write(json.dumps({"latencies": lat, "errors": errors}))
"""

WRITER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from expagent.memory.store import MemoryStore
from expagent.memory.swebench import episode_from_swebench
home, url, rows_file, stop_flag, out_file, pause = sys.argv[2:8]
rows = json.loads(open(rows_file).read())
store = MemoryStore.open(home=home, chroma_url=url or None)
store.embedder.embed(["warm up"])
n, errors, times = 0, [], []
while not os.path.exists(stop_flag):
    row = rows[n % len(rows)]
    ep = episode_from_swebench({**row, "instance_id": f"live-{os.getpid()}-{n}"}, actor="bench-writer")
    t = time.perf_counter()
    try:
        store.add_episode(ep, "bench-writer")
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    times.append(time.perf_counter() - t)
    n += 1
    if n == 1:
        open(out_file + ".writing", "w").close()
    time.sleep(float(pause))
open(out_file, "w").write(json.dumps({"added": n, "errors": errors, "write_times": times}))
"""


def _episodes(pool: list[dict], start: int, stop: int):
    from expagent.memory.swebench import episode_from_swebench

    for n in range(start, stop):
        row = pool[n % len(pool)]
        yield episode_from_swebench({**row, "repo": f"{row['repo']}-{n % N_REPOS}", "instance_id": f"syn-{n}",
                                     "created_at": (BASE + timedelta(minutes=n)).isoformat()}, actor="bench")


def build(home: Path, url: str | None, pool: list[dict], items: int, base_vectors: list) -> float:
    """A memory of ``items`` episodes with jittered real vectors; returns the seconds it took."""
    import numpy as np

    from expagent.memory.store import MemoryStore

    t = time.perf_counter()
    with MemoryStore.open(home=home, chroma_url=url) as store:
        count = 0
        while count < items:
            batch = list(_episodes(pool, count, min(items, count + 2000)))
            vecs = []
            for n in range(count, count + len(batch)):
                v = base_vectors[n % len(base_vectors)] + np.random.default_rng(n).normal(0, 0.02, 384)
                vecs.append((v / np.linalg.norm(v)).astype(np.float32).tolist())
            store.add_records(batch, actor="bench", embeddings=vecs)
            count += len(batch)
            print(f"  {count} items", file=sys.stderr)
    return time.perf_counter() - t


def built(home: Path, cache: Path | None, pool: list[dict], items: int, base_vectors: list) -> float | None:
    """Build the memory at ``home``, or copy the one kept in ``cache`` (built there the first time); returns the
    build's seconds (None when it was copied)."""
    if cache is None:
        return round(build(home, None, pool, items, base_vectors), 1)
    kept = cache / f"memory-{items}"
    seconds = None
    if not (kept / "memory" / "audit.sqlite").exists():
        shutil.rmtree(kept, ignore_errors=True)
        seconds = round(build(kept, None, pool, items, base_vectors), 1)
    shutil.copytree(kept, home)
    return seconds


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def load_run(home: Path, url: str | None, queries: list[dict], writer_rows: list[dict], searchers: int,
             pause: float, work: Path, code: Path = ROOT) -> dict:
    """One load run; ``code``: the checkout whose expagent the searching and writing processes import."""
    qfile, rfile = work / "queries.json", work / "writer_rows.json"
    qfile.write_text(json.dumps(queries))
    rfile.write_text(json.dumps(writer_rows))
    start, stop = work / "start", work / "stop"
    outs = [work / f"searcher-{k}.json" for k in range(searchers)]
    wout = work / "writer.json"
    # a previous run's flags would start this one before its searchers are warm (the server run once did: its
    # searches then competed with the other searchers' first full reads over HTTP, and its wall time held them)
    for f in (start, stop, wout, Path(f"{wout}.writing"), *outs, *(Path(f"{o}.ready") for o in outs)):
        f.unlink(missing_ok=True)
    procs = [subprocess.Popen([sys.executable, "-c", SEARCHER, str(code), str(home), url or "", str(qfile), str(start),
                               str(o)]) for o in outs]
    while not all(Path(str(o) + ".ready").exists() for o in outs):
        if any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit("a searcher failed to start")
        time.sleep(0.1)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(code), str(home), url or "", str(rfile), str(stop),
                               str(wout), str(pause)])
    while not Path(str(wout) + ".writing").exists():  # the searches start once the writer is writing
        if writer.poll() is not None:
            raise SystemExit("the writer failed to start")
        time.sleep(0.1)
    load_before = os.getloadavg()
    t = time.perf_counter()
    start.touch()
    for p in procs:
        p.wait()
    wall = time.perf_counter() - t
    stop.touch()
    writer.wait()
    lat, errors = [], []
    for o in outs:
        data = json.loads(o.read_text())
        lat += data["latencies"]
        errors += data["errors"]
    w = json.loads(wout.read_text())
    return {"searchers": searchers, "queries": len(lat) + len(errors), "wall_s": round(wall, 1),
            "search_p50_ms": round(1000 * pct(lat, 0.5), 1), "search_p95_ms": round(1000 * pct(lat, 0.95), 1),
            "search_p99_ms": round(1000 * pct(lat, 0.99), 1), "search_max_ms": round(1000 * max(lat, default=0.0), 1),
            "read_errors": len(errors),
            "error_examples": errors[:3], "writer_added": w["added"], "writer_errors": len(w["errors"]),
            "write_p50_ms": round(1000 * pct(w["write_times"], 0.5), 1),
            "load_average_during": [round(x, 2) for x in load_before]}


def start_server(path: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("chroma")
    if exe is None:
        raise SystemExit("the chroma CLI is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (path.parent / "server.log").open("w")
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("chroma server did not start")


def listing(home: Path) -> dict:
    """Wall time of the listing commands at this memory's size (median of 3), and what they imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPAGENT_")}
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "80"
    from expagent.memory.store import MemoryStore

    with MemoryStore.open(home=home, create=False) as store:
        some_id = store.all_ids()[0]
    out = {}
    probe = ("import sys, runpy; sys.argv = ['expagent', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('expagent', run_name='__main__')\n"
             "finally:\n    print('chromadb' in sys.modules, 'onnxruntime' in sys.modules, file=sys.stderr)")
    for name, args in (("ls", ["ls"]), ("show", ["show", some_id]), ("history", ["history", some_id]),
                       ("stats", ["stats"]), ("show --json", ["show", some_id, "--json"])):
        times, loaded = [], ""
        for _ in range(3):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", probe, "memory", *args, "--home", str(home)], env=env,
                                  capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            loaded = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
            if proc.returncode != 0:
                raise SystemExit(f"memory {name} failed: {proc.stderr[-500:]}")
            if name == "ls":
                out["ls_max_line_at_80_columns"] = max(len(line) for line in proc.stdout.splitlines())
        chroma, onnx = (x == "True" for x in loaded.split()) if loaded else (None, None)
        out[name] = {"median_s": round(sorted(times)[1], 3), "imported_chromadb": chroma,
                     "loaded_embedding_runtime": onnx}
    # the same moment's baselines: a bare interpreter, and the CLI doing nothing (typer and its imports)
    for name, cmd in (("python -c pass", [sys.executable, "-c", "pass"]),
                      ("expagent --help", [sys.executable, "-m", "expagent", "--help"]),
                      ("expagent memory ls --help", [sys.executable, "-m", "expagent", "memory", "ls", "--help"])):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True)
            times.append(time.perf_counter() - t)
        out["baseline: " + name] = {"median_s": round(sorted(times)[1], 3)}
    # the commands' own work, in this process (imports warm): what the memory code costs at 1k records
    from typer.testing import CliRunner

    from expagent import cli

    if not cli.app.registered_groups:
        cli._register()
    runner = CliRunner()
    for name, args in (("ls", ["ls"]), ("show", ["show", some_id]), ("history", ["history", some_id]),
                       ("stats", ["stats"])):
        runner.invoke(cli.app, ["memory", *args, "--home", str(home)])
        times = []
        for _ in range(5):
            t = time.perf_counter()
            result = runner.invoke(cli.app, ["memory", *args, "--home", str(home)], env={"COLUMNS": "80"})
            times.append(time.perf_counter() - t)
            assert result.exit_code == 0, result.output
        out[name]["in_process_median_s"] = round(sorted(times)[2], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=60, help="queries per searching process")
    parser.add_argument("--searchers", type=int, default=4)
    parser.add_argument("--writer-pause", type=float, default=0.5, help="seconds between the writer's adds")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--only-listing", action="store_true", help="measure the listing commands only")
    parser.add_argument("--base-texts", type=int, default=100, help="texts embedded for real (jittered copies fill the rest)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--compare-code", type=Path, default=None,
                        help="another checkout (e.g. a worktree of an older commit): the server run is repeated "
                             "with its code and this one's, alternating, twice each, on one server")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the built memories here and reuse them (each run works on a copy)")
    args = parser.parse_args()

    import numpy as np

    from expagent.memory.embedding import make_embedder
    from expagent.memory.records import record_text

    import random

    rows = [json.loads(line) for line in args.data.open(encoding="utf-8") if line.strip()]
    random.Random(7).shuffle(rows)  # the file is sorted by repo; queries must come from repos in the store
    queries_rows, pool = rows[:60], rows[60:]
    embedder = make_embedder("minilm-int8")
    seed = list(_episodes(pool, 0, args.base_texts))
    t = time.perf_counter()
    base_vectors = [np.asarray(v, dtype=np.float32) for v in embedder.embed([record_text(e) for e in seed])]
    print(f"embedded {len(seed)} base texts in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    before = (BASE + timedelta(minutes=args.items)).isoformat()
    queries = [{"query": q["problem_statement"], "repo": f"{q['repo']}-{n % N_REPOS}", "before": before}
               for n, q in enumerate(queries_rows * (1 + args.queries // len(queries_rows)))][: args.queries]
    writer_rows = [{**r, "repo": f"{r['repo']}-{n % N_REPOS}", "created_at": before} for n, r in enumerate(pool[:100])]
    work = Path(tempfile.mkdtemp(prefix="expagent-load-"))
    summary: dict = {"machine": {"cpus": os.cpu_count(), "shared_with_other_agents": True,
                                 "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
                     "items": args.items, "searchers": args.searchers, "writer_pause_s": args.writer_pause}
    try:
        small = work / "list-home"
        build(small, None, pool, 1000, base_vectors)
        summary["listing_at_1k"] = listing(small)
        print(json.dumps(summary["listing_at_1k"]), file=sys.stderr)
        if args.only_listing:
            previous = json.loads((RESULTS / "memory_load.json").read_text()) if (RESULTS / "memory_load.json").exists() else {}
            summary = {**previous, "listing_at_1k": summary["listing_at_1k"],
                       "listing_machine": {"load_average": [round(x, 2) for x in os.getloadavg()]}}
            if not args.no_write:
                (RESULTS / "memory_load.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
                (RESULTS / "memory_load.md").write_text(markdown(summary), encoding="utf-8")
            print(json.dumps(summary["listing_at_1k"], indent=2))
            return

        home = work / "embedded-home"
        summary["embedded_build_s"] = built(home, args.cache, pool, args.items, base_vectors)
        summary["embedded"] = load_run(home, None, queries, writer_rows, args.searchers, args.writer_pause, work)
        print(json.dumps(summary["embedded"]), file=sys.stderr)
        if not args.skip_server:
            # the server serves a database built the same way (adding 10k records over HTTP one batch at a time
            # is what `memory import` would do, and takes long here; the searches and the writer then go
            # through the server only)
            shome = work / "server-home"
            summary["server_build_s"] = built(shome, args.cache, pool, args.items, base_vectors)
            server, url = start_server(shome / "memory" / "chroma")
            try:
                summary["server"] = load_run(shome, url, queries, writer_rows, args.searchers, args.writer_pause, work)
                print(json.dumps(summary["server"]), file=sys.stderr)
                if args.compare_code:
                    rev = subprocess.run(["git", "-C", str(args.compare_code), "log", "-1", "--format=%h %s"],
                                         capture_output=True, text=True).stdout.strip()[:60]
                    summary["server_compare"] = {"other_code": rev or args.compare_code.name, "runs": []}
                    for code in (args.compare_code, ROOT, args.compare_code, ROOT):
                        run = load_run(shome, url, queries, writer_rows, args.searchers, args.writer_pause, work,
                                       code=code.resolve())
                        run["code"] = "other" if code is args.compare_code else "this"
                        summary["server_compare"]["runs"].append(run)
                        print(json.dumps(run), file=sys.stderr)
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(summary, indent=2))
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "memory_load.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (RESULTS / "memory_load.md").write_text(markdown(summary), encoding="utf-8")


def markdown(s: dict) -> str:
    lines = ["# Memory under load", "",
             f"Machine: {s['machine']['cpus']} CPUs (shared: the load average says how busy it was); load average "
             f"{s['machine']['load_average_at_start']} at the start, {s['machine']['load_average_at_end']} at the end. "
             "Wall-clock numbers; compare within one run.", "",
             f"## Search at {s['items']} items: {s['searchers']} searching processes and one writer", "",
             "| store | queries | wall (s) | p50 (ms) | p95 (ms) | p99 (ms) | read errors | writer adds (p50 ms each) | "
             "writer errors | load avg during |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in ("embedded", "server"):
        r = s.get(name)
        if r:
            lines.append(f"| {name} | {r['queries']} | {r.get('wall_s', '')} | {r['search_p50_ms']} | {r['search_p95_ms']} | "
                         f"{r['search_p99_ms']} | {r['read_errors']} | {r['writer_added']} ({r['write_p50_ms']}) | "
                         f"{r['writer_errors']} | {r['load_average_during']} |")
    if s.get("server_compare"):
        runs = s["server_compare"]["runs"]
        lines += ["", f"### The server run with other code (`{s['server_compare']['other_code']}`) and this code, "
                      "alternating on one server", "",
                  "| code | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | wall (s) | load avg during |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in runs:
            lines.append(f"| {r['code']} | {r['search_p50_ms']} | {r['search_p95_ms']} | {r['search_p99_ms']} | "
                         f"{r['search_max_ms']} | {r['wall_s']} | {r['load_average_during']} |")
        mean = lambda code, key: sum(r[key] for r in runs if r["code"] == code) / 2  # noqa: E731
        lines += ["", f"Ratio other / this: p50 {mean('other', 'search_p50_ms') / mean('this', 'search_p50_ms'):.2f}, "
                      f"p95 {mean('other', 'search_p95_ms') / mean('this', 'search_p95_ms'):.2f}."]
    if s.get("server_note"):
        lines += ["", f"Server: {s['server_note']}."]
    lines += ["", "Goals: p50 < 100 ms, p95 < 200 ms, no read error.", "",
              "## Listing at 1,000 records", "",
              "Subprocess wall time (median of 3), the same moment's baselines, and the command's own work measured "
              "in process (imports warm, median of 5)." +
              (f" Load average then: {s['listing_machine']['load_average']}." if s.get("listing_machine") else ""), "",
              "| command | wall (s) | in process (s) | imported chromadb | loaded the embedding runtime |",
              "| --- | --- | --- | --- | --- |"]
    for name, r in s["listing_at_1k"].items():
        if isinstance(r, dict):
            title = name if name.startswith("baseline") else f"memory {name}"
            lines.append(f"| {title} | {r['median_s']} | {r.get('in_process_median_s', '')} | "
                         f"{r.get('imported_chromadb', '')} | {r.get('loaded_embedding_runtime', '')} |")
    lines += ["", f"`memory ls` widest line at COLUMNS=80: {s['listing_at_1k'].get('ls_max_line_at_80_columns')}.",
              "Goal: under 0.5 s, no embedding model.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
