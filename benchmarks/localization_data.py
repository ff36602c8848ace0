"""Localization of the 407 SWE-bench Verified issues, at each instance's base commit; recall against the gold patches.

For each instance, the repository is checked out at ``base_commit`` (a ``git clone --shared`` of a bare mirror,
one work tree per repository, commits visited in order so the symbol index and the token memo stay incremental),
and :class:`expagent.codeintel.localize.RepoLocalizer` scores every non-test source file. Repositories without a
mirror (django, matplotlib, scikit-learn: too large to mirror here) use the PyPI sdist of the instance's
``version`` instead (an approximation: the release, not the commit; files added or removed in between are
wrong). Writes one JSON line per instance with its gold files and, for the files that rank in the top 40 of any
signal or of the default combination, every signal's value, so weights can be studied without the checkouts.

Run: ``python benchmarks/localization_data.py --mirrors DIR --work DIR [--sdists DIR] --out FILE``
(``DIR/owner+name/repo`` bare mirrors; sdists named ``Django-3.0.tar.gz``, wheels for matplotlib and
scikit-learn). Resumable: instances already in
``--out`` are skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import shutil
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "swe-verified-dev-407.jsonl"
SDIST_NAMES = {"django/django": ["Django-{v}.tar.gz", "django-{v}.tar.gz"],
               "matplotlib/matplotlib": ["matplotlib-{v}.0.tar.gz", "matplotlib-{v}.tar.gz"],
               "scikit-learn/scikit-learn": ["scikit-learn-{v}.0.tar.gz", "scikit-learn-{v}.tar.gz",
                                             "scikit_learn-{v}.0.tar.gz"]}
TOP = 40
# wheels stand in where an sdist cannot be downloaded without building it (pip prepares an sdist's metadata,
# which fails for these old releases here); their sources sit under a prefix in the repository
WHEELS = {"matplotlib/matplotlib": ("matplotlib-{v}-", "lib/"), "scikit-learn/scikit-learn": ("scikit_learn-{v}-", "")}
NEAREST_RELEASE = {("matplotlib/matplotlib", "3.0"): "3.1.2", ("matplotlib/matplotlib", "3.1"): "3.1.2"}
# django: indexing one release took 5-10 minutes on this (shared, overloaded) machine, so its 188 instances use
# three releases: each version's nearest of 1.11, 2.2 and 4.1 (gold_in_tree in the results says what it costs)
SDIST_VERSION_MAP = {("django/django", v): "2.2" for v in ("3.0", "3.1")}
SDIST_VERSION_MAP.update({("django/django", v): "4.1" for v in ("3.2", "4.0", "4.2", "5.0")})


def sdist_root(repo: str, version: str, sdists: Path, work: Path) -> tuple[Path, str] | None:
    """The repository's sdist tree for ``version``, extracted into one directory per repository (so the symbol
    index, keyed by that directory, re-parses only the files that differ between versions)."""
    if repo in WHEELS:
        return wheel_root(repo, version, sdists, work)
    version = SDIST_VERSION_MAP.get((repo, version), version)
    for pattern in SDIST_NAMES.get(repo, []):
        tarball = sdists / pattern.format(v=version)
        if tarball.exists():
            dest = work / "sdist" / repo.replace("/", "+")
            marker = work / "sdist" / (repo.replace("/", "+") + ".version")
            if not dest.exists() or not marker.exists() or marker.read_text() != tarball.name:
                shutil.rmtree(dest, ignore_errors=True)
                tmp = dest.with_suffix(".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                with tarfile.open(tarball) as tar:
                    tar.extractall(tmp, filter="data")
                (tmp / next(iter(p.name for p in tmp.iterdir()))).rename(dest)
                tmp.rmdir()
                for extra in ("tests", "docs", "js_tests", "extras", "scripts"):
                    # never localized (test files are excluded) and thousands of files to parse
                    shutil.rmtree(dest / extra, ignore_errors=True)
                marker.write_text(tarball.name)
            return dest, tarball.name.removesuffix(".tar.gz")
    return None


def wheel_root(repo: str, version: str, sdists: Path, work: Path) -> tuple[Path, str] | None:
    import zipfile

    release = NEAREST_RELEASE.get((repo, version))
    prefix, under = WHEELS[repo]
    names = [release] if release else [f"{version}.0", version, f"{version}.1", f"{version}.2"]
    for v in names:
        found = sorted(sdists.glob(prefix.format(v=v) + "*.whl"))
        if not found:
            continue
        wheel = found[0]
        dest = work / "sdist" / repo.replace("/", "+")
        marker = work / "sdist" / (repo.replace("/", "+") + ".version")
        if not dest.exists() or not marker.exists() or marker.read_text() != wheel.name:
            shutil.rmtree(dest, ignore_errors=True)
            with zipfile.ZipFile(wheel) as zf:
                for info in zf.infolist():
                    if info.filename.endswith(".py") and ".dist-info/" not in info.filename:
                        target = dest / under / info.filename
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(zf.read(info))
            marker.write_text(wheel.name)
        return dest, "wheel-" + wheel.name.split("-")[1]
    return None


def snapshots(rows: list[dict], per_repo: int) -> dict[str, str]:
    """instance id -> the base commit its localization is computed at: each repository is checked out at
    ``per_repo`` of its instances' base commits, spread over its history; every instance uses the nearest one
    (its own when ``per_repo`` covers all). Parsing every base commit afresh took 15-40 s per instance here."""
    by_repo: dict[str, list[dict]] = {}
    for row in rows:
        by_repo.setdefault(row["repo"], []).append(row)
    out = {}
    for repo_rows in by_repo.values():
        m = len(repo_rows)
        s = max(1, min(per_repo, m))
        picks = sorted({round(i * (m - 1) / max(1, s - 1)) for i in range(s)}) if s > 1 else [m // 2]
        for n, row in enumerate(repo_rows):
            nearest = min(picks, key=lambda p: (abs(p - n), p))
            out[row["instance_id"]] = repo_rows[nearest]["base_commit"]
    return out


def checkout(repo: str, commit: str, mirrors: Path, work: Path) -> Path | None:
    """The Python sources of ``repo`` at ``commit``, written from the bare mirror into one directory per
    repository (only files whose blob changed are rewritten, removed ones deleted). Not a git checkout: the
    mirrors lack some large data blobs, which makes ``git checkout`` fail, and only sources are localized."""
    owner_name = repo.replace("/", "+")
    mirror = mirrors / owner_name / "repo"
    if not mirror.exists():
        return None
    tree = work / "trees" / owner_name
    manifest_path = work / "trees" / (owner_name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() and tree.exists() else {}
    listing = subprocess.run(["git", "-C", str(mirror), "ls-tree", "-r", "-z", commit], check=True,
                             capture_output=True).stdout.decode("utf-8", "surrogateescape")
    wanted = {}
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob" and mode != "120000" and path.endswith((".py", ".pyi")):
            wanted[path] = sha
    for path in set(manifest) - set(wanted):
        (tree / path).unlink(missing_ok=True)
    todo = [p for p, sha in wanted.items() if manifest.get(p) != sha]
    if todo:
        proc = subprocess.run(["git", "-C", str(mirror), "cat-file", "--batch"], check=True, capture_output=True,
                              input="".join(wanted[p] + "\n" for p in todo).encode())
        data, pos = proc.stdout, 0
        for path in todo:
            header_end = data.index(b"\n", pos)
            header = data[pos:header_end].split()
            if header[-1] == b"missing":
                pos = header_end + 1
                continue
            size = int(header[2])
            body = data[header_end + 1: header_end + 1 + size]
            pos = header_end + 1 + size + 1
            target = tree / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(wanted))
    return tree


def main() -> None:
    from expagent.codeintel.localize import DEFAULT_WEIGHTS, RepoLocalizer
    from expagent.codeintel.index import SymbolIndex
    from retrieval_quality import changed_py_files, load

    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--mirrors", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sdists", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repo", action="append", help="only these repositories")
    parser.add_argument("--snapshots", type=int, default=4, help="checkouts per repository (0 = every base commit)")
    args = parser.parse_args()

    done = set()
    if args.out.exists():
        done = {json.loads(line)["instance_id"] for line in args.out.open() if line.strip()}
    all_rows = load(args.data)
    snap = snapshots(all_rows, args.snapshots) if args.snapshots else {r["instance_id"]: r["base_commit"]
                                                                       for r in all_rows}
    rows = [r for r in all_rows if r["instance_id"] not in done and (not args.repo or r["repo"] in args.repo)]
    # one checkout per snapshot, visited in order
    rows.sort(key=lambda r: (r["repo"], r["version"] if r["repo"] in SDIST_NAMES else "",
                             all_rows.index(next(x for x in all_rows if x["base_commit"] == snap[r["instance_id"]]))))
    cache: dict[str, RepoLocalizer] = {}
    # the PageRank prior costs seconds per tree; it is computed at a repository's first commit (or sdist) and
    # reused for its later commits (files new since then get 0)
    priors: dict[str, dict[str, float]] = {}
    with args.out.open("a", encoding="utf-8") as out:
        for row in rows:
            commit = snap[row["instance_id"]]
            key = row["repo"] + "@" + commit
            root = (cache[key].index.root if key in cache else
                    checkout(row["repo"], commit, args.mirrors, args.work))
            source = "git" if commit == row["base_commit"] else f"git-nearest:{commit[:12]}"
            if root is None and args.sdists:
                got = sdist_root(row["repo"], row["version"], args.sdists, args.work)
                root, source = (got[0], f"sdist:{got[1]}") if got else (None, "")
                key = source
            if root is None:
                print(f"skip {row['instance_id']}: no checkout", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            loc = cache.get(key)
            if loc is None:
                cache.clear()
                prior_key = row["repo"]
                loc = RepoLocalizer(SymbolIndex.build(root), "" if source.startswith("sdist") else commit,
                                    prior=priors.get(prior_key))
                priors.setdefault(prior_key, loc.prior_by_path())
                cache[key] = loc
            build = time.perf_counter() - t0
            t1 = time.perf_counter()
            signals, _symbols = loc.signals(row["problem_statement"])
            query = time.perf_counter() - t1
            total = sum(w * signals[name] for name, w in DEFAULT_WEIGHTS.items())
            keep: set[int] = set(np.argsort(-total)[:TOP].tolist())
            for arr in signals.values():
                keep.update(np.argsort(-arr)[:TOP].tolist())
            names = list(signals)
            gold = sorted(changed_py_files(row["patch"]))
            files = [[loc.paths[i], *[round(float(signals[n][i]), 4) for n in names]] for i in sorted(keep)]
            out.write(json.dumps({"instance_id": row["instance_id"], "repo": row["repo"], "source": source,
                                  "n_files": len(loc.paths), "gold": gold,
                                  "gold_present": [g for g in gold if g in loc._pos],
                                  "signals": names, "files": files, "build_s": round(build, 2),
                                  "query_ms": round(1000 * query, 1)}) + "\n")
            out.flush()
            print(f"{row['instance_id']} {source} build {build:.1f}s query {1000 * query:.0f}ms", file=sys.stderr)


if __name__ == "__main__":
    main()
