"""Validate a stratified sample of SWE-bench Verified with expagent's grader (gold resolves, empty does not).

The sample is fixed by rule: for each repository of the tasks file, its 3 instances with the smallest
instance numbers (all of them when it has fewer). For each: build (or reuse) the (repo, version)
environment, then grade the gold patch and the empty patch; the install at ``base_commit`` runs once per
instance (cached) and is timed apart. Every instance that does not validate is classified by cause.

The repositories are public but never committed: point ``--repos`` at a directory of bare mirrors named
``<owner>+<name>`` (or ``<owner>__<name>``). Usage::

    python benchmarks/swe_verified_validation.py --repos DIR [--home DIR] [--instance ID ...] [--resume]

Writes benchmarks/results/swe_verified_validation.json and .md after every instance.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAME = "swe_verified_validation"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from swe_lite_validation import _fmt, gold_and_empty, missing_blobs, timing_summary  # noqa: E402

from expagent.tasks.grader import NETWORK_ERROR  # noqa: E402

PER_REPO = 3
#: repositories whose snapshots exceed what can be brought into this workspace (over 500 MB)
TOO_LARGE = {"django/django", "matplotlib/matplotlib", "scikit-learn/scikit-learn"}
COMPILED = {"astropy/astropy"}

#: (cause, pattern over the error or the grade reason), first match wins
CAUSES = (
    ("repository not available offline", re.compile(r"repository .* is not available|is not in .*update that clone")),
    ("compiler or system package needed", re.compile(r"needs (a compiler|the C header)")),
    ("conda-only package", re.compile(r"conda-only|only on conda")),
    ("old pin no longer resolves", re.compile(r"requires Python|not on the package index|No matching distribution")),
    ("network needed by the tests", NETWORK_ERROR),  # the grader's own test (it notes such grades)
    ("interpreter missing", re.compile(r"no Python [\d.]+ interpreter")),
    ("environment build", re.compile(r"environment build .* failed|install of .* failed")),
    ("test-output parser", re.compile(r"unknown test-output parser|no test results in the output")),
    ("snapshot lacks files", re.compile(r"local clone lacks")),
    ("test run timed out (2 shared cores under load)", re.compile(r"tests timed out after")),
    # pytest 3 names a parameter whose id function returns "" by its position (`[unit0]`); the instance's name
    # `[]` is what later pytest versions print, so the spec's pinned pytest cannot produce it
    ("test name from another pytest (empty parameter id)", re.compile(r"::\S*\[\] MISSING")),
)


#: instances the official harness itself does not grade as valid (public reports, with sources and its verdicts)
HARNESS_GOLD_FAILS = json.loads((Path(__file__).resolve().parent / "swe_harness_gold_failures.json").read_text())
KNOWN_DEFECT = "record defect (the official harness agrees)"


def mark_upstream_defect(row: dict) -> None:
    """For an instance the official harness does not grade as valid either (HARNESS_GOLD_FAILS): a row with the
    harness's verdicts and the defect's own cause gets the cause KNOWN_DEFECT; any row of it that does not validate
    names the report in ``why`` (once). Other causes stay: the verdict is still the grader's."""
    known = HARNESS_GOLD_FAILS["instances"].get(row.get("instance_id", ""))
    if known is None or row.get("ok"):
        return
    report = f"official harness: {known['reason']} ({', '.join(known['sources'])})"
    if known.get("defect_cause") and row.get("cause") == known["defect_cause"] and _harness_verdicts(row, known):
        row["cause"] = KNOWN_DEFECT
    if report not in (row.get("why") or ""):
        row["why"] = f"{row.get('why') or ''}; {report}".lstrip("; ")


#: the second, breadth rule (``--newest N``): the issue's sample holds each repository's oldest instances, so their
#: oldest versions; this one holds the newest, where most of SWE-bench's instances are (0: the issue's rule)
NEWEST = 0


def sample(tasks, per_repo: int = PER_REPO, newest: int | None = None):
    """The fixed-rule sample: per repository, the ``per_repo`` smallest instance numbers (with ``newest`` or the
    module's ``NEWEST`` set, that many of the largest instead)."""
    newest = NEWEST if newest is None else newest
    by_repo = collections.defaultdict(list)
    for task in tasks:
        by_repo[task.repo].append(task)
    chosen = []
    # the costliest builds (C extensions compiled at both commits) and the unavailable repositories last
    for repo in sorted(by_repo, key=lambda r: (r in TOO_LARGE, r in COMPILED, r)):
        ordered = sorted(by_repo[repo], key=lambda t: int(t.instance_id.rsplit("-", 1)[1]))
        chosen += ordered[-newest:] if newest else ordered[:per_repo]
    return chosen


def rule() -> str:
    return (f"per repository, the {NEWEST} largest instance numbers (the newest)" if NEWEST
            else f"per repository, the {PER_REPO} smallest instance numbers")


def classify(text: str) -> str:
    for cause, pattern in CAUSES:
        if pattern.search(text or ""):
            return cause
    return "tests: gold not passing" if text else ""


def _harness_verdicts(row: dict, known: dict) -> bool:
    return (row.get("status") == "graded" and row.get("gold") is known["harness"]["gold"]
            and row.get("empty") is known["harness"]["empty"])


def harness_agrees(row: dict) -> bool:
    """Our verdicts are the harness's: gold resolves and empty does not, or, on an instance the official harness
    itself does not grade as valid (HARNESS_GOLD_FAILS), the harness's own gold and empty verdicts."""
    if row.get("ok"):
        return True
    known = HARNESS_GOLD_FAILS["instances"].get(row["instance_id"])
    return known is not None and _harness_verdicts(row, known)


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if r.get("ok")]
    causes = collections.Counter(r["cause"] for r in rows if not r.get("ok"))
    agree = [r for r in rows if harness_agrees(r)]
    mapped = [r for r in rows if not r.get("ok") and r.get("gold_mapped") and r.get("empty_mapped") is False]
    return {
        "agrees_with_harness": len(agree),
        "agrees_with_harness_share": round(len(agree) / len(rows), 3) if rows else None,
        "harness_gold_fails_in_sample": sorted(r["instance_id"] for r in rows
                                               if r["instance_id"] in HARNESS_GOLD_FAILS["instances"]),
        "instances": len(rows),
        "repositories": len({r["repo"] for r in rows}),
        "valid": len(ok),
        "valid_share": round(len(ok) / len(rows), 3) if rows else None,
        "valid_share_of_available": round(len(ok) / len([r for r in rows if r["status"] != "unavailable"]), 3)
        if any(r["status"] != "unavailable" for r in rows) else None,
        "failures_by_cause": dict(causes.most_common()),
        # sdist reconstructions (swe_sdist_validation.py): rows whose gold failed only on record tests the release
        # renamed, valid once those names are mapped to the release's (``gold_mapped`` / ``empty_mapped``)
        "valid_with_renamed_tests_mapped": len(ok) + len(mapped),
        "valid_with_renamed_tests_mapped_in_sample": sorted(r["instance_id"] for r in mapped),
        **timing_summary(rows),
    }


def write(rows: list[dict], meta: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    s = summarize(rows)
    (RESULTS / f"{NAME}.json").write_text(json.dumps({"meta": meta, "summary": s, "instances": rows}, indent=1) + "\n")
    lines = [
        "# SWE-bench Verified (stratified sample): gold/empty validation, local backend",
        "",
        f"Run {meta['started_at']} on {meta['machine']}; tasks: `{meta['tasks']}`; sample rule: {meta['rule']}.",
        "",
        f"- valid (gold resolves and empty does not): {s['valid']}/{s['instances']} ({s['valid_share']}); "
        f"of the instances whose repository is available here: {s['valid_share_of_available']}",
        f"- failures by cause: {', '.join(f'{k} {v}' for k, v in s['failures_by_cause'].items()) or 'none'}",
        *([f"- of those, valid once the record's test names the release renamed are mapped to the release's "
           f"(sdist reconstructions only): {', '.join(s['valid_with_renamed_tests_mapped_in_sample'])}; valid "
           f"with them: {s['valid_with_renamed_tests_mapped']}/{s['instances']}"]
          if s.get("valid_with_renamed_tests_mapped_in_sample") else []),
        f"- the same verdicts as the official harness: {s['agrees_with_harness']}/{s['instances']} "
        f"({s['agrees_with_harness_share']}): the valid ones, plus those of the sample the official harness "
        f"itself does not grade as valid ({', '.join(s['harness_gold_fails_in_sample']) or 'none'}; reports and "
        f"the harness's verdicts in benchmarks/swe_harness_gold_failures.json) when graded as the harness does",
        f"- environment build (first): median {s['env_build_first_s']['median']} s, max {s['env_build_first_s']['max']}"
        f" s; cached: median {s['env_cached_s']['median']} s",
        f"- install at base_commit (first, once per instance, then cached): median "
        f"{s['install_at_base_first_s']['median']} s, max {s['install_at_base_first_s']['max']} s",
        f"- harness overhead per grade, excluding tests and builds: median {s['harness_overhead_s']['median']} s, "
        f"max {s['harness_overhead_s']['max']} s (tests median {s['test_time_s']['median']} s)",
        "",
        "| instance | version | status | gold | empty | as the harness | cause | env first (s) | install (s) | "
        "harness (s) | tests (s) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = (r.get("why") or "").replace("|", "/").replace("\n", " ")
        if "official harness:" in note and len(note) > 240:  # keep the report's mention in view
            head, _, tail = note.partition("; official harness:")
            note = head[:120] + " … ; official harness:" + tail[:200]
        note = note[:360]
        same = "yes" if harness_agrees(r) else "-" if r["status"] in ("unavailable", "not run") else "no"
        lines.append(
            f"| {r['instance_id']} | {r.get('version', '')} | {r['status']} | {_fmt(r.get('gold'))} | "
            f"{_fmt(r.get('empty'))} | {same} | {r.get('cause') or ''} | {_fmt(r.get('env_first_s'))} | "
            f"{_fmt(r.get('install_first_s'))} | {_fmt(r.get('harness_s'))} | {_fmt(r.get('tests_s'))} | {note} |")
    if meta.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in meta["notes"]]
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines) + "\n")


def merge(parts: list[str], notes: list[str], chosen, drop_notes: tuple[str, ...] = ()) -> int:
    """Combine part results (each a --results run) into the main file, in sample order; later parts win.
    ``drop_notes``: prefixes of earlier notes that the merged rows make obsolete."""
    rows: dict[str, dict] = {}
    meta: dict = {}
    for part in [NAME, *parts]:
        path = RESULTS / f"{part}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            meta = meta or data["meta"]
            for r in data["instances"]:
                if not r.get("ok") and r.get("cause") == "tests: gold not passing":
                    r["cause"] = classify(r.get("why", ""))  # causes added since the part ran
                mark_upstream_defect(r)
                rows[r["instance_id"]] = r
            if part != NAME:
                path.unlink()
                (RESULTS / f"{part}.md").unlink(missing_ok=True)
    for task in chosen:  # a sampled instance no part graded (the run was stopped) still counts, as a failure
        rows.setdefault(task.instance_id, {"instance_id": task.instance_id, "repo": task.repo, "version": task.version,
                                           "status": "not run", "cause": "not run before the time box ended"})
    order = [t.instance_id for t in chosen]
    meta["rule"] = rule()  # a part of the other sample (--newest) must not lend the merged file its rule
    kept = [n for n in meta.get("notes", []) if not n.startswith(tuple(drop_notes))]
    meta["notes"] = list(dict.fromkeys([*kept, *notes]))
    write([rows[i] for i in order], meta)
    return 0


def validate_one(task, repos: str, timeout: float | None) -> dict:
    from expagent.errors import ExpagentError
    from expagent.tasks.repos import resolve_repo

    row: dict = {"instance_id": task.instance_id, "repo": task.repo, "version": task.version}
    try:
        source = resolve_repo(task.suite, task.repo, repos)
    except ExpagentError as exc:
        why = str(exc)
        if task.repo in TOO_LARGE:
            why = f"snapshot over 500 MB, not brought in here ({why[:120]})"
        return {**row, "status": "unavailable", "cause": "repository not available offline", "why": why}
    try:
        timings, gold, empty = gold_and_empty(task, repos, timeout, source=source,
                                              echo=lambda m: print(m, flush=True))
    except ExpagentError as exc:
        return {**row, "status": "error", "cause": classify(str(exc)), "why": str(exc)}
    row.update(status="graded", cause="", gold=gold.resolved, empty=empty.resolved,
               ok=gold.resolved and not empty.resolved, **timings, gold_durations=gold.durations,
               empty_durations=empty.durations)
    if getattr(gold, "notes", None):
        row["notes"] = gold.notes  # what the local backend did differently from the harness
    if not gold.resolved:
        missing = missing_blobs(source, task.base_commit)
        row["why"] = gold.reason
        log = Path(gold.log_path).read_text(errors="replace")[-400_000:] if gold.log_path else ""
        network = NETWORK_ERROR.search(log)
        row["cause"] = ("snapshot lacks files" if missing else "network needed by the tests" if network
                        else classify(gold.reason))
        if missing:
            row["why"] = f"the local clone lacks {len(missing)} file(s) at base_commit; gold: {gold.reason}"
    elif empty.resolved:
        row["why"], row["cause"] = "empty patch resolves", "empty resolves"
    mark_upstream_defect(row)
    return row


def main() -> int:
    global NAME, NEWEST
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=str(ROOT.parent / "shared" / "data" / "swe-verified-dev-407.jsonl"))
    parser.add_argument("--repos", default=os.environ.get("EXPAGENT_REPOS"), required=not os.environ.get("EXPAGENT_REPOS"))
    parser.add_argument("--home", default=str(ROOT / "benchmarks" / ".work" / "home"))
    parser.add_argument("--instance", action="append", help="only these instances (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="per-test-run timeout (default: recipe's)")
    parser.add_argument("--resume", action="store_true", help="keep the rows of the last results file that validated")
    parser.add_argument("--note", action="append", default=[], help="a note for the results (repeatable)")
    parser.add_argument("--results", default=NAME, help="results file name (a part run in parallel; see --merge)")
    parser.add_argument("--merge", action="append", default=[], help="merge these part results into the main file")
    parser.add_argument("--drop-note", action="append", default=[], help="with --merge: drop earlier notes that "
                        "start with this (repeatable)")
    parser.add_argument("--newest", type=int, default=0, metavar="N",
                        help="the breadth sample: per repository the N largest instance numbers, in their own "
                             "results file (default name swe_verified_validation_newest)")
    args = parser.parse_args()
    NEWEST = args.newest
    if NEWEST and args.results == NAME:
        args.results = f"{NAME}_newest"
    NAME = args.results
    if args.merge:
        from expagent.tasks.suite import load_suite

        return merge(args.merge, args.note, sample(load_suite(args.tasks).tasks), tuple(args.drop_note))
    os.environ["EXPAGENT_HOME"] = args.home

    from expagent.tasks.suite import load_suite

    suite = load_suite(args.tasks)
    chosen = sample(suite.tasks)
    if args.instance:
        chosen = [t for t in chosen if t.instance_id in set(args.instance)]
    meta = {
        "notes": list(args.note),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "tasks": Path(args.tasks).name,
        "rule": rule(),
        "sandbox": "local",
    }
    previous = RESULTS / f"{NAME}.json"
    done: dict[str, dict] = {}
    if (args.resume or args.instance) and previous.is_file():
        old = json.loads(previous.read_text())
        meta["notes"] = old["meta"].get("notes", []) + args.note
        done = {r["instance_id"]: r for r in old["instances"]}
    rows = []
    for task in sample(suite.tasks):
        selected = task in chosen and not (args.resume and done.get(task.instance_id, {}).get("ok"))
        if not selected:
            if task.instance_id in done:
                rows.append(done[task.instance_id])
            continue
        print(f"== {task.instance_id}", flush=True)
        rows.append(validate_one(task, args.repos, args.timeout))
        print(f"   {rows[-1]['status']} ok={rows[-1].get('ok')} {rows[-1].get('cause', '')} "
              f"{(rows[-1].get('why') or '')[:200]}", flush=True)
        write(rows + [done[t.instance_id] for t in sample(suite.tasks)
                      if t.instance_id in done and t.instance_id not in {r["instance_id"] for r in rows}], meta)
    write(rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
