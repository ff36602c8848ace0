"""Validate the SWE-bench Lite dev instances with expagent's grader (local backend).

For each instance: set up (or reuse) its environment, grade the gold patch (must resolve) and the empty
patch (must not), with the harness as it grades everything else (install at ``base_commit`` in a cached
overlay, graded test files restored, a clean environment, the repository's own test-output parser).
Records the share of gold patches that resolve, environment build time first vs cached, the install at
``base_commit``, and the harness overhead per grade excluding test time; every instance that does not
validate is classified by cause (the causes of ``swe_verified_validation.CAUSES``).

The repositories are public but never committed: point ``--repos`` at a directory of clones or bare
mirrors named ``<owner>+<name>`` or ``<owner>__<name>`` (see docs/tasks.md). Usage::

    python benchmarks/swe_lite_validation.py --repos DIR [--home DIR] [--instance ID ...] [--resume]

Writes benchmarks/results/swe_lite_validation.json and .md (after every instance, so an interrupted
run keeps what it measured). Environments are cached under --home (default benchmarks/.work/home,
git-ignored). Each row says where the gold and empty grades' test logs are (``gold_log``, ``empty_log``,
relative to --home); machine paths in the messages are replaced by ``$REPOS``, ``$HOME`` and ``$SANDBOX``.

``gold_and_empty(task, repos, timeout)`` is the per-instance step (environment first and cached, then
the two grades) for other validation scripts to share.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAME = "swe_lite_validation"
#: a repository whose snapshot exceeds what can be brought into this workspace (534 MB; the limit is 500 MB)
TOO_LARGE = {"pyvista/pyvista"}
#: failures diagnosed by hand whose text matches no cause pattern: instance -> (cause, evidence)
DIAGNOSED: dict[str, tuple[str, str]] = {}


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _max(values):
    values = [v for v in values if v is not None]
    return round(max(values), 3) if values else None


def missing_blobs(repo: Path, commit: str) -> list[str]:
    """Files at ``commit`` whose content the clone lacks (snapshots may omit their largest files)."""
    import subprocess

    proc = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-l", commit], capture_output=True, text=True)
    missing = []
    for line in proc.stdout.splitlines():
        meta, _, path = line.partition("\t")
        parts = meta.split()
        if len(parts) == 4 and parts[1] == "blob" and parts[3] == "BAD":
            missing.append(path)
    return missing


def overlay_build_seconds(env_path: Path, base_commit: str) -> float | None:
    """How long the install at ``base_commit`` took when it was built (an earlier run; this one reused it)."""
    meta = Path(env_path) / "base" / base_commit / "overlay.json"
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("build_seconds")
    except (OSError, ValueError):
        return None


def gold_and_empty(task, repos: str | None, timeout: float | None, *, source: Path | None = None, echo=None):
    """One instance's measured step: ``(timings, gold, empty)``.

    ``timings`` holds ``env_first_s`` (the build time, whether the build ran now or earlier: env.json keeps
    it), ``env_cached_s`` (a second, cached look-up), ``install_first_s`` (the install at base_commit: now, or
    when an earlier run built it), ``harness_s``, ``empty_harness_s`` and ``tests_s``; ``gold`` and ``empty`` are the two
    ``GradeResult``s. Harness errors (``ExpagentError``) propagate.
    """
    from expagent.tasks.envs import ensure_env
    from expagent.tasks.grader import grade

    t = time.monotonic()
    env = ensure_env(task, repos_dir=repos, echo=echo, source=source)
    took = time.monotonic() - t
    timings = {"env_first_s": round(took if not env.cached else env.build_seconds, 2)}
    t = time.monotonic()
    ensure_env(task, repos_dir=repos, source=source)
    timings["env_cached_s"] = round(time.monotonic() - t, 3)
    gold = grade(task, task.patch or "", repos_dir=repos, timeout=timeout, echo=echo)
    empty = grade(task, "", repos_dir=repos, timeout=timeout)
    timings.update(install_first_s=gold.durations.get("install_build", overlay_build_seconds(env.path, task.base_commit)),
                   harness_s=round(gold.harness_seconds, 3),
                   empty_harness_s=round(empty.harness_seconds, 3), tests_s=round(gold.durations.get("tests", 0.0), 2))
    return timings, gold, empty


def _portable(row: dict, repos: str | None) -> dict:
    """``row`` without machine paths: log paths relative to the expagent home, paths in messages replaced."""
    import re

    from expagent import paths

    home = str(paths.home())
    out = dict(row)
    for key in ("gold_log", "empty_log"):
        if out.get(key) and out[key].startswith(home + "/"):
            out[key] = out[key][len(home) + 1:]
    if out.get("why"):
        why = out["why"].replace(home, "$HOME")
        why = why.replace(str(repos), "$REPOS") if repos else why
        out["why"] = re.sub(r"/tmp/expagent-sb-\w+", "$SANDBOX", why)
    return out


def _log_text(path: str | None) -> str:
    return Path(path).read_text(errors="replace")[-400_000:] if path and Path(path).is_file() else ""


def validate(task, repos: str | None, timeout: float | None) -> dict:
    """The result row of one instance: graded (ok or a classified cause), unavailable, or error."""
    from expagent.errors import ExpagentError
    from expagent.tasks.repos import resolve_repo
    from swe_verified_validation import CAUSES, classify

    network = dict(CAUSES)["network needed by the tests"]
    row: dict = {"instance_id": task.instance_id, "repo": task.repo, "version": task.version}
    try:
        source = resolve_repo(task.suite, task.repo, repos)
    except ExpagentError as exc:
        why = str(exc)
        if task.repo in TOO_LARGE:
            why = f"snapshot over 500 MB, not brought in here ({why[:160]})"
        return {**row, "status": "unavailable", "cause": "repository not available offline", "why": why}
    try:
        timings, gold, empty = gold_and_empty(task, repos, timeout, source=source,
                                              echo=lambda m: print(m, flush=True))
    except ExpagentError as exc:
        return {**row, "status": "error", "cause": classify(str(exc)), "why": str(exc)}
    row.update(status="graded", cause="", gold=gold.resolved, empty=empty.resolved,
               ok=gold.resolved and not empty.resolved, **timings, gold_durations=gold.durations,
               empty_durations=empty.durations, gold_log=gold.log_path, empty_log=empty.log_path)
    if getattr(gold, "notes", None):
        row["notes"] = gold.notes  # what the local backend did differently from the harness
    if not gold.resolved:
        missing = missing_blobs(source, task.base_commit)
        row["why"] = gold.reason
        if missing:
            row["cause"] = "snapshot lacks files"
            row["why"] = (f"the local clone lacks {len(missing)} file(s) at base_commit "
                          f"({', '.join(missing[:3])}); gold: {gold.reason}")
        elif network.search(_log_text(gold.log_path)):
            row["cause"] = "network needed by the tests"
        else:
            row["cause"] = classify(gold.reason)
        if row["cause"] == "tests: gold not passing" and task.instance_id in DIAGNOSED:
            row["cause"], evidence = DIAGNOSED[task.instance_id]
            row["why"] = f"{evidence}; gold: {gold.reason}"
    elif empty.resolved:
        row["why"], row["cause"] = "empty patch resolves", "empty resolves"
    return row


def timing_summary(rows: list[dict]) -> dict:
    """Median and max of each measured time: environment builds over every row, the rest over graded rows."""
    graded = [r for r in rows if r["status"] == "graded"]

    def stat(key: str, among: list[dict]) -> dict:
        return {"median": _median([r.get(key) for r in among]), "max": _max([r.get(key) for r in among])}

    return {"env_build_first_s": stat("env_first_s", rows), "env_cached_s": stat("env_cached_s", rows),
            "install_at_base_first_s": stat("install_first_s", graded),
            "harness_overhead_s": stat("harness_s", graded), "test_time_s": stat("tests_s", graded)}


def summarize(rows: list[dict]) -> dict:
    graded = [r for r in rows if r["status"] == "graded"]
    causes = collections.Counter(r["cause"] for r in rows if not r.get("ok"))
    return {
        "instances": len(rows),
        "graded": len(graded),
        "valid": len([r for r in rows if r.get("ok")]),
        "gold_resolved": len([r for r in graded if r["gold"]]),
        "empty_not_resolved": len([r for r in graded if r["empty"] is False]),
        "failures_by_cause": dict(causes.most_common()),
        **timing_summary(rows),
    }


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def write(rows: list[dict], meta: dict) -> None:
    from expagent.fsutil import atomic_write_text

    s = summarize(rows)
    atomic_write_text(RESULTS / f"{NAME}.json", json.dumps({"meta": meta, "summary": s, "instances": rows},
                                                           indent=1) + "\n")
    n = s["instances"]
    lines = [
        "# SWE-bench Lite dev: gold/empty validation with expagent's grader (local backend)",
        "",
        f"Run {meta['started_at']} on {meta['machine']}; tasks: `{meta['tasks']}`.",
        "",
        f"- gold patch resolves: {s['gold_resolved']}/{n}; empty patch does not resolve: "
        f"{s['empty_not_resolved']}/{n}; valid (both): {s['valid']}/{n} ({s['graded']} graded here)",
        f"- failures by cause: {', '.join(f'{k} {v}' for k, v in s['failures_by_cause'].items()) or 'none'}",
        f"- environment build (first): median {s['env_build_first_s']['median']} s, max "
        f"{s['env_build_first_s']['max']} s; cached: median {s['env_cached_s']['median']} s, max "
        f"{s['env_cached_s']['max']} s",
        f"- install at base_commit (first, once per instance, then cached): median "
        f"{s['install_at_base_first_s']['median']} s, max {s['install_at_base_first_s']['max']} s",
        f"- harness overhead per grade, excluding tests and builds: median {s['harness_overhead_s']['median']} s, "
        f"max {s['harness_overhead_s']['max']} s (tests median {s['test_time_s']['median']} s)",
        "",
        "| instance | version | status | gold | empty | cause | env first (s) | env cached (s) | install (s) | "
        "harness (s) | tests (s) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = (r.get("why") or "").replace("|", "/").replace("\n", " ")[:300]
        lines.append(
            f"| {r['instance_id']} | {r.get('version', '')} | {r['status']} | {_fmt(r.get('gold'))} | "
            f"{_fmt(r.get('empty'))} | {r.get('cause') or ''} | {_fmt(r.get('env_first_s'))} | "
            f"{_fmt(r.get('env_cached_s'))} | {_fmt(r.get('install_first_s'))} | {_fmt(r.get('harness_s'))} | "
            f"{_fmt(r.get('tests_s'))} | {note} |")
    if meta.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in meta["notes"]]
    atomic_write_text(RESULTS / f"{NAME}.md", "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=str(ROOT.parent / "shared" / "data" / "swe-lite-dev-23.jsonl"))
    parser.add_argument("--repos", default=os.environ.get("EXPAGENT_REPOS"))
    parser.add_argument("--home", default=str(ROOT / "benchmarks" / ".work" / "home"))
    parser.add_argument("--instance", action="append", help="only these instances (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="per-test-run timeout (default: recipe's)")
    parser.add_argument("--resume", action="store_true", help="keep the rows of the last results file that validated")
    parser.add_argument("--note", action="append", default=[], help="a note for the results (repeatable)")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json (adding --note)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # swe_verified_validation (the causes)
    previous = RESULTS / f"{NAME}.json"
    os.environ["EXPAGENT_HOME"] = args.home
    if args.render:
        data = json.loads(previous.read_text())
        data["meta"]["notes"] = list(dict.fromkeys([*data["meta"].get("notes", []), *args.note]))
        write([_portable(r, args.repos) for r in data["instances"]], data["meta"])
        return 0
    from expagent.tasks.suite import load_suite

    suite = load_suite(args.tasks)
    selected = {suite.task(i).instance_id for i in args.instance} if args.instance else None
    meta = {
        "notes": list(args.note),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "tasks": Path(args.tasks).name,
        "sandbox": "local",
    }
    done: dict[str, dict] = {}
    if (args.resume or selected) and previous.is_file():
        old = json.loads(previous.read_text())
        meta["notes"] = list(dict.fromkeys([*old["meta"].get("notes", []), *args.note]))
        meta["started_at"] = old["meta"]["started_at"]  # the run the kept rows come from
        done = {r["instance_id"]: r for r in old["instances"]}
    rows: list[dict] = []
    for task in suite.tasks:
        redo = (task.instance_id in selected) if selected is not None else \
            not (args.resume and done.get(task.instance_id, {}).get("ok"))
        if not redo:
            if task.instance_id in done:
                rows.append(done[task.instance_id])
            continue
        print(f"== {task.instance_id}", flush=True)
        row = validate(task, args.repos, args.timeout)
        print(f"   {row['status']} ok={row.get('ok')} {row.get('cause', '')} {(row.get('why') or '')[:200]}",
              flush=True)
        rows.append(_portable(row, args.repos))
        have = {r["instance_id"] for r in rows}
        write(rows + [done[t.instance_id] for t in suite.tasks if t.instance_id in done and t.instance_id not in have],
              meta)
    write(rows, meta)
    print(json.dumps(summarize(rows), indent=1))
    return 0


if __name__ == "__main__":
    from expagent.errors import ExpagentError

    try:
        sys.exit(main())
    except ExpagentError as exc:  # bad input (a tasks file, an instance id): one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
