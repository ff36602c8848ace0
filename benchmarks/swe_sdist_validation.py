"""Validate the SWE-bench Verified sample's too-large repositories on base states rebuilt from PyPI sdists.

django, matplotlib and scikit-learn have git snapshots over what can be brought in here, so the 9 rows of
``swe_verified_validation.py``'s sample from them cannot be graded at their real ``base_commit``. For each, this
rebuilds an approximate base from the source release next to the fix (``expagent.tasks.sdist_base``: the gold and
test patches reverse-applied to the release that contains them, or the release as is when the gold patch applies
forward), lays it out as a ``--repos`` directory, and runs exactly what ``swe_verified_validation.validate_one``
runs (the real ``ensure_env`` from the instance's SWE-bench spec, then ``grade`` of the gold and the empty patch).
The rows are **sdist reconstructions, not the real base commits**; each says which release and how.

Usage::

    python benchmarks/swe_sdist_validation.py [--home DIR] [--repo django/django ...] [--instance ID ...]

Writes the part file benchmarks/results/swe_verified_validation_sdist.json (+ .md) after every instance, in
swe_verified_validation.py's row format; merge it with ``swe_verified_validation.py --merge
swe_verified_validation_sdist``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import swe_verified_validation as verified  # noqa: E402

PART = "swe_verified_validation_sdist"
ABSENT = "record test named differently in the release"

#: per instance, the releases to try, first the one that follows the fix (it should contain the gold patch)
CANDIDATES = {
    "django__django-7530": ["Django==1.11", "Django==1.10.4"],
    "django__django-9296": ["Django==3.1", "Django==3.0"],
    "django__django-10097": ["Django==2.2", "Django==2.1"],
    "matplotlib__matplotlib-13989": ["matplotlib==3.1.0", "matplotlib==3.0.3"],
    "matplotlib__matplotlib-14623": ["matplotlib==3.1.1", "matplotlib==3.1.2", "matplotlib==3.1.0"],
    "matplotlib__matplotlib-20488": ["matplotlib==3.4.3", "matplotlib==3.5.0"],
    "scikit-learn__scikit-learn-9288": ["scikit-learn==0.22", "scikit-learn==0.21.3"],
    "scikit-learn__scikit-learn-10844": ["scikit-learn==0.20.0"],
    "scikit-learn__scikit-learn-10908": ["scikit-learn==0.20.0"],
    # the breadth sample (swe_verified_validation.py --newest 1): each repository's newest instance
    "django__django-17084": ["Django==5.0", "Django==4.2.4"],
    "matplotlib__matplotlib-26466": ["matplotlib==3.8.0", "matplotlib==3.7.3"],
    "scikit-learn__scikit-learn-26323": ["scikit-learn==1.3.0"],
}

#: deviations from the SWE-bench spec this machine forces, per (repo, version), each with its reason
_PY36 = "Python 3.6 in place of the spec's 3.5 (no 3.5 interpreter here)"
_PIP = ("bootstrap pip==21.3.1 (the venv's bundled pip 18 ignores Requires-Python and picks releases that need "
        "Python 3.8, as overrides.json already does for pydicom on 3.6)")
_QHULL = "the spec's qhull download steps dropped (qhull.org is not reachable here; this release vendors qhull)"
_SYSTEM_LIBS = "printf '[libs]\\nsystem_freetype = True\\nsystem_qhull = True\\n' > setup.cfg"
#: matplotlib's image tests need FreeType 2.6.1, which its build downloads (sourceforge, savannah: not reachable
#: here); the system's 2.12 renders text differently (test_image_interps, test_image_clip... fail). The release's
#: own manylinux wheel carries ft2font built against 2.6.1: it replaces the one built here
_FT2FONT = ("d=$(mktemp -d) && python -m pip download -q --no-deps --only-binary :all: --index-url {index} "
            "{release} -d \"$d\" && "
            "python -c \"import glob, sys, zipfile; z = zipfile.ZipFile(glob.glob(sys.argv[1] + '/*.whl')[0]); "
            "[z.extract(n, 'lib') for n in z.namelist() if n.startswith('matplotlib/ft2font')]\" \"$d\" && "
            "rm -rf \"$d\"")
_SYSTEM_LIBS_WHY = (
    "the system's qhull (setup.cfg [libs]; libqhull-dev installed with apt-get) in place of the spec's download "
    "from qhull.org, which is not reachable here; ft2font from the release's own wheel, built against FreeType "
    "2.6.1 as the image tests need (the build downloads it, which cannot be done here; the system's FreeType "
    "built the rest); ghostscript installed with apt-get (the spec's texlive brings it) for the pdf image "
    "comparisons")
DEVIATIONS = {
    ("django/django", "1.11"): ({"python": "3.6", "bootstrap": ["pip==21.3.1"]}, f"{_PY36}; {_PIP}"),
    ("django/django", "2.2"): ({"python": "3.6", "bootstrap": ["pip==21.3.1"]}, f"{_PY36}; {_PIP}"),
    ("django/django", "3.1"): ({"bootstrap": ["pip==21.3.1"]}, _PIP),
    ("scikit-learn/scikit-learn", "0.20"): ({"bootstrap": ["pip==21.3.1"]}, _PIP),
    ("scikit-learn/scikit-learn", "0.22"): ({"bootstrap": ["pip==21.3.1"]}, _PIP),
    # the spec's qhull steps download qhull-2020 from qhull.org (not reachable here) into /testbed/build, and set
    # shell variables that the next command, a separate shell here, no longer sees; 3.0 and 3.1 vendor qhull
    ("matplotlib/matplotlib", "3.0"): ({"pre_install": []}, _QHULL),
    ("matplotlib/matplotlib", "3.1"): ({"pre_install": []}, _QHULL),
    ("matplotlib/matplotlib", "3.4"): (
        {"pre_install": [_SYSTEM_LIBS], "install": ["python -m pip install -e .", _FT2FONT],
         "index_date": "created_at"},
        f"{_SYSTEM_LIBS_WHY}; the package index as of the instance's created_at in place of overrides.json's "
        "env_commit date (a reconstruction's commits carry a fixed date)"),
    ("matplotlib/matplotlib", "3.7"): (
        {"pre_install": [_SYSTEM_LIBS.replace("setup.cfg", "mplsetup.cfg")],  # its build reads mplsetup.cfg
         "install": ["python -m pip install -e .", _FT2FONT]}, _SYSTEM_LIBS_WHY.replace("setup.cfg", "mplsetup.cfg")),
}


def prefetch(spec: str, python: str = sys.executable) -> None:
    """Put ``spec``'s sdist in expagent's sdist cache. pip prepares the metadata of what it downloads; old
    setup.py files import ``pkg_resources``, which today's isolated build environments lack, so this downloads
    without build isolation (into the cache ``pypi_source.download_sdist`` reads)."""
    import subprocess
    import tempfile

    from expagent.tasks import pypi_source

    name, version = pypi_source.parse_spec(spec)
    cache = pypi_source.sdist_cache()
    if pypi_source._find_cached(name, version, cache):
        return
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run([python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--no-build-isolation", "-q", "-d", tmp, spec], capture_output=True, text=True)
        got = pypi_source._find_cached(name, version, Path(tmp))
        if got:
            got.replace(cache / got.name)


def with_deviation(task, release: str = ""):
    """``task`` under a suite whose recipe for its (repo, version) carries this machine's deviation, if any;
    ``{release}`` in its steps is the reconstruction's release (``matplotlib==3.4.3``)."""
    from expagent.tasks.suite import RepoSource

    values, why = DEVIATIONS.get((task.repo, task.version), (None, ""))
    if values is None:
        return task, ""
    from expagent.tasks.pypi_source import index_url

    # {index}: the machine's package index, not the dated one the build sees (the release is newer than the date)
    fill = {"{release}": release, "{index}": index_url()}
    values = {key: [functools.reduce(lambda text, pair: text.replace(*pair), fill.items(), step) for step in value]
              if isinstance(value, list) else value for key, value in values.items()}
    suite = task.suite
    source = suite.repos.get(task.repo) or RepoSource(repo=task.repo, url=f"https://github.com/{task.repo}.git")
    versions = {**source.env.get("versions", {}), task.version: values}
    source = dataclasses.replace(source, env={**source.env, "versions": versions})
    suite = dataclasses.replace(suite, repos={**suite.repos, task.repo: source})
    return dataclasses.replace(task, suite=suite), why


def expose_interpreter(task, repos: Path) -> Path:
    """Build (or find) the task's environment and append its venv's ``bin/`` to ``PATH``, so the local sandbox
    exposes the Python installation the venv was made from (it binds the installations of venvs on ``PATH``).
    Without it, a grade whose interpreter is not the caller's fails with "libpython3.X.so: cannot open" (the
    sandbox binds only the env directory). h11-envs' ``Env.host_paths`` fixes that in the grader; once merged, this
    is a no-op."""
    from expagent.tasks.envs import ensure_env

    env = ensure_env(task, repos_dir=repos, echo=lambda m: print(m, flush=True))
    bin_dir = str(env.path / "venv" / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + bin_dir
    return env.path


def run_one(task, repos: Path, timeout: float | None, sdist_python: str = sys.executable,
            reconstruct_only: bool = False) -> dict:
    from expagent.errors import ExpagentError
    from expagent.tasks.sdist_base import reconstruct, retarget

    row: dict = {"instance_id": task.instance_id, "repo": task.repo, "version": task.version}
    t = time.monotonic()
    try:
        for spec in CANDIDATES[task.instance_id]:
            prefetch(spec, sdist_python)
        rec = reconstruct(task, CANDIDATES[task.instance_id], repos)
    except ExpagentError as exc:
        return {**row, "status": "error", "cause": "no sdist reconstruction", "why": str(exc),
                "note": "sdist reconstruction failed"}
    rebuilt_s = round(time.monotonic() - t, 2)
    if reconstruct_only:
        return {**row, "status": "reconstructed", "note": rec.note, "reconstructed_base": rec.base_commit}
    graded, deviation = with_deviation(retarget(task, rec), rec.spec)
    try:
        expose_interpreter(graded, repos)
    except ExpagentError:
        pass  # validate_one meets the same error and classifies it
    # (an install at the base that an earlier run built reports its recorded time: validate_one reads it)
    result = verified.validate_one(graded, str(repos), timeout)
    note = rec.note + (f"; {deviation}" if deviation else "")
    result.update(note=note, sdist=rec.archive, sdist_mode=rec.mode, reconstructed_base=rec.base_commit,
                  real_base=task.base_commit, reconstruct_s=rebuilt_s)
    if result.get("status") == "graded":
        note_changed_tests(result, task)
        classify_absent(result, task, repos)
        classify_mapped(result, task)
    # the full note is the row's ``note``; ``why`` (what the results table shows) starts with its short form
    result["why"] = f"[sdist {rec.archive}, {rec.mode}, not the real base] {result.get('why') or ''}".strip()
    return result


def same_reconstruction(row: dict, rec) -> bool:
    """Whether a part file's row was graded on the reconstruction made today (``rec``; None when none could be
    made): the same release placed the same way. The reconstructed commit's id is not compared: it differs
    between homes (a part graded in a helper's home) while the tree it holds is the same."""
    if rec is None:
        return row.get("status") == "error"
    if row.get("sdist"):
        return row.get("sdist") == rec.archive and row.get("sdist_mode") == rec.mode
    return row.get("reconstructed_base") == rec.base_commit


def release_unavailable(row: dict, rec) -> bool:
    """Whether a graded row's release cannot be rebuilt here today (no reconstruction at all, or its release was
    rejected, say because its sdist did not download), as opposed to today's rules placing another release: such a
    row cannot be checked against today's reconstruction, and is kept rather than lost."""
    if row.get("status") != "graded" or not row.get("sdist"):
        return False
    if rec is None:
        return True
    from expagent.tasks.sdist_base import UNAVAILABLE

    stem = re.sub(r"\.(tar\.gz|tgz|zip|tar\.bz2)$", "", row["sdist"]).lower()
    unavailable = {spec.strip().replace("==", "-").lower() for spec, _, why in (r.partition(": ") for r in rec.rejected)
                   if why.startswith(UNAVAILABLE)}
    return rec.archive != row["sdist"] and stem in unavailable


def tidy(row: dict, rec) -> None:
    """Rows of earlier runs of this script in today's form: ``why`` led by the short note (the full one is
    ``note``), and the install time of an overlay an interrupted run built."""
    from expagent import paths

    why = row.get("why") or ""
    if rec is not None and why.startswith("[sdist reconstruction from"):
        row["why"] = f"[sdist {rec.archive}, {rec.mode}, not the real base] {why.partition('] ')[2]}".strip()
    if row.get("status") == "graded" and row.get("install_first_s") is None and row.get("reconstructed_base"):
        for meta in (paths.cache_dir() / "envs").glob(f"*/base/{row['reconstructed_base']}/overlay.json"):
            row["install_first_s"] = json.loads(meta.read_text()).get("build_seconds")


def classify_absent(row: dict, task, repos: Path) -> None:
    """A gold grade that fails only on record tests the reconstruction names differently gets that cause."""
    if row.get("status") != "graded" or row.get("gold") or row.get("cause") == ABSENT:
        return
    if "timed out" in row.get("why", ""):
        return  # a run cut by its timeout lacks tests for that reason
    logs = grade_logs(row["instance_id"])
    if len(logs) < 2:
        return
    absent = absent_tests(task, parse_log(task.repo, logs[0]), repos / task.repo.replace("/", "+"),
                          row["reconstructed_base"])
    if absent:
        row["cause"] = ABSENT
        row["why"] = (f"{row.get('why')}; every record test the gold run lacks is named differently in the "
                      f"reconstruction (renamed or parametrized between the base commit and the release): "
                      f"{', '.join(absent)}")


def release_names(names: list[str], gold: dict[str, str], cutoff: float = 0.9) -> dict[str, list[str]]:
    """For each record test (pytest ``path::[Class::]func[params]`` names) that the gold run on a reconstruction
    lacks, the tests of the release that stand for it: its parametrizations (``func[...]``) when the release
    parametrized it, else the one test function of the same file and class whose name is nearly the same
    (difflib ratio >= ``cutoff``, a unique best: a typo fixed, ``consicutive`` -> ``consecutive``) with its
    parametrizations. A name with no such stand-in, or with several equally near, is left out (still MISSING)."""
    import difflib

    from expagent.tasks import logparse

    got = logparse.lookup(gold, names)
    out: dict[str, list[str]] = {}
    for name in names:
        if got[name] != logparse.MISSING or "::" not in name or "[" in name:
            continue
        params = [other for other in gold if other.startswith(name + "[")]
        if params:
            out[name] = params
            continue
        scope, _, func = name.rpartition("::")
        funcs = {other[len(scope) + 2:].split("[", 1)[0] for other in gold if other.startswith(scope + "::")}
        funcs = {f for f in funcs if "::" not in f}
        scored = sorted(((difflib.SequenceMatcher(None, func, f).ratio(), f) for f in funcs), reverse=True)
        if scored and scored[0][0] >= cutoff and (len(scored) == 1 or scored[1][0] < scored[0][0]):
            best = f"{scope}::{scored[0][1]}"
            out[name] = [other for other in gold if other == best or other.startswith(best + "[")]
    return out


def mapped_verdicts(task, gold: dict[str, str], empty: dict[str, str]) -> tuple[bool, bool, dict[str, list[str]]]:
    """Gold and empty verdicts on a reconstruction with the record's renamed tests graded by their stand-ins in
    the release (``release_names``): (gold resolves, empty resolves, the mapping). The grader's own verdicts on
    the row stay as graded; this says whether the renaming is all that kept the row from being valid."""
    from expagent.tasks import grader

    mapping = release_names([*task.fail_to_pass, *task.pass_to_pass], gold)

    def expand(names: list[str]) -> list[str]:
        return [new for name in names for new in mapping.get(name, [name])]

    mapped = dataclasses.replace(task, fail_to_pass=expand(task.fail_to_pass), pass_to_pass=expand(task.pass_to_pass))
    return not grader.evaluate(mapped, gold)[2], not grader.evaluate(mapped, empty)[2], mapping


def classify_mapped(row: dict, task) -> None:
    """A row whose gold fails on renamed record tests only (``ABSENT``): its verdicts with the names mapped to the
    release's (``mapped_verdicts``), kept beside the grader's as ``gold_mapped`` / ``empty_mapped``."""
    if row.get("cause") != ABSENT:
        return
    logs = grade_logs(row["instance_id"])
    if len(logs) < 2:
        return
    gold, empty = (parse_log(task.repo, p) for p in logs)
    gold_ok, empty_ok, mapping = mapped_verdicts(task, gold, empty)
    row.update(gold_mapped=gold_ok, empty_mapped=empty_ok,
               renamed={name: new[:4] + ([f"... {len(new) - 4} more"] if len(new) > 4 else [])
                        for name, new in mapping.items()})
    verdict = "valid" if gold_ok and not empty_ok else f"gold {'resolves' if gold_ok else 'fails'}, " \
        f"empty {'resolves' if empty_ok else 'fails'}"
    row["why"] = f"{row.get('why')}; with the record's names mapped to the release's: {verdict}"


def absent_tests(task, gold: dict[str, str], repo: Path, commit: str) -> list[str]:
    """The record's tests that do not pass in the gold run (``gold``: its parsed results), when every one of them
    is missing and named differently in the release: no ``def <name>`` in its file at ``commit``, or the gold run
    has the test only under other parameters (``name[...]``). Empty when some failure has another cause."""
    import subprocess

    from expagent.tasks import logparse

    got = logparse.lookup(gold, [*task.fail_to_pass, *task.pass_to_pass])
    failing = [name for name, status in got.items() if status not in ("PASSED", "XFAIL", "XPASS", "SKIPPED")]
    if not failing or any(got[name] != "MISSING" or locate_test(name) is None for name in failing):
        return []
    absent = []
    for name in failing:
        bare = name.split("[", 1)[0]
        if any(other.startswith(bare + "[") for other in gold):
            absent.append(f"{name} (parametrized differently)")
            continue
        paths, func = locate_test(bare)
        for path in paths:
            text = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True,
                                  text=True).stdout
            if re.search(rf"def {re.escape(func)}\(", text):
                return []
        absent.append(f"{name} (no such test)")
    return absent


_DJANGO_NAME = re.compile(r"^(\w+) \(([\w.]+)\)$")


def locate_test(name: str) -> tuple[list[str], str] | None:
    """(the files that may hold the test ``name``, its function's name), or None when the name does not say (a
    django test named by its docstring). pytest: ``path::[Class::]func``; django's runner: ``func (module.Class)``
    under ``tests/``, the module being a prefix of the dotted name (as ``grader.graded_test_files`` reads it)."""
    if "::" in name:
        path, _, func = name.partition("::")
        return [path], func.split("::")[-1]
    match = _DJANGO_NAME.match(name)
    if match is None:
        return None
    parts = match.group(2).split(".")
    return ["tests/" + "/".join(parts[:end]) + ".py" for end in range(len(parts) - 1, 0, -1)], match.group(1)


def grade_logs(instance_id: str) -> list[Path]:
    """The test outputs of the instance's last two grades (gold, then empty: validate_one's order)."""
    from expagent import paths

    return sorted((paths.cache_dir() / "grades").glob(f"{instance_id}-*/test_output.txt"),
                  key=lambda p: p.stat().st_mtime)[-2:]


def parse_log(repo: str, path: Path) -> dict[str, str]:
    from expagent.tasks import parsers

    return parsers.parse(repo, path.read_text(errors="replace"))


def note_changed_tests(row: dict, task) -> None:
    """The row's ``changed_tests``; when the empty patch resolves, ``why`` names them."""
    row["changed_tests"] = changed_tests(task)
    if row.get("gold") and row.get("empty") and row["changed_tests"]:
        row["why"] += ("; the record's FAIL_TO_PASS passes without the fix here; tests that do change from empty to "
                       "gold: " + ", ".join(row["changed_tests"]))


def changed_tests(task, limit: int = 8) -> list[str]:
    """The tests whose status differs between the gold grade and the empty one, as ``name: EMPTY->GOLD``."""
    logs = grade_logs(task.instance_id)
    if len(logs) < 2:
        return []
    gold, empty = (parse_log(task.repo, p) for p in logs)
    changed = [f"{name}: {empty.get(name, 'absent')}->{status}" for name, status in gold.items()
               if empty.get(name) != status]
    return changed[:limit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=str(ROOT.parent / "shared" / "data" / "swe-verified-dev-407.jsonl"))
    parser.add_argument("--home", default=str(ROOT / "benchmarks" / ".work" / "home"))
    parser.add_argument("--repos", default=None, help="where the reconstructed repositories go (default: HOME/sdist-repos)")
    parser.add_argument("--repo", action="append", help="only these repositories (repeatable)")
    parser.add_argument("--instance", action="append", help="only these instances (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="per-test-run timeout (default: recipe's)")
    parser.add_argument("--results", default=PART, help="part file name (several runs in parallel: one each)")
    parser.add_argument("--reconstruct-only", action="store_true", help="only rebuild the base states and print them")
    parser.add_argument("--sdist-python", default=sys.executable,
                        help="the interpreter whose pip downloads the sdists (needs setuptools with pkg_resources "
                             "and wheel: old setup.py files run while pip prepares their metadata)")
    parser.add_argument("--newest", type=int, default=0, metavar="N",
                        help="swe_verified_validation.py's breadth sample (per repository the N newest instances), "
                             "in its own part file (default name swe_verified_validation_sdist_newest)")
    parser.add_argument("--combine", nargs="+", help="combine these part files into --results, then stop")
    parser.add_argument("--stopped", action="append", default=[], metavar="ID=CAUSE=WHY",
                        help="with --combine: an instance whose run was stopped at the time box, its cause and the "
                             "command it was in (repeatable)")
    args = parser.parse_args()
    os.environ["EXPAGENT_HOME"] = args.home
    repos = Path(args.repos or Path(args.home) / "sdist-repos")
    verified.NEWEST = args.newest
    if args.newest and args.results == PART:
        args.results = f"{PART}_newest"
    verified.NAME = args.results

    from expagent.tasks.suite import load_suite

    chosen = [t for t in verified.sample(load_suite(args.tasks).tasks) if t.instance_id in CANDIDATES]
    if args.repo:
        chosen = [t for t in chosen if t.repo in set(args.repo)]
    if args.instance:
        chosen = [t for t in chosen if t.instance_id in set(args.instance)]
    meta = {
        "notes": ["sdist reconstructions: django, matplotlib and scikit-learn rows are graded on base states rebuilt "
                  "from their PyPI source releases (benchmarks/swe_sdist_validation.py), not on the real base "
                  "commits; each row's note names the release and how it was placed"],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "tasks": Path(args.tasks).name,
        "rule": f"the too-large repositories' rows of swe_verified_validation.py's sample ({verified.rule()}), on "
                "sdist reconstructions",
        "sandbox": "local",
    }
    done: dict[str, dict] = {}
    if args.combine:
        from expagent.errors import ExpagentError
        from expagent.tasks.sdist_base import reconstruct

        for part in args.combine:
            for r in json.loads((verified.RESULTS / f"{part}.json").read_text())["instances"]:
                done[r["instance_id"]] = r
        for task in chosen:
            # a row graded on another reconstruction than today's (an earlier version of the rules) is not kept, and
            # an instance no part graded (the time box ended first) still has its row
            try:
                for spec in CANDIDATES[task.instance_id]:
                    prefetch(spec, args.sdist_python)  # as run_one does: the same releases, or none of the rows match
                rec = reconstruct(task, CANDIDATES[task.instance_id], repos)
                note, base = rec.note, rec.base_commit
            except ExpagentError as exc:
                note, base = f"no sdist reconstruction: {exc}", None
            stopped = [item.split("=", 2) for item in args.stopped if item.split("=", 1)[0] == task.instance_id]
            if stopped:
                _, cause, why = stopped[0]
                done[task.instance_id] = {
                    "instance_id": task.instance_id, "repo": task.repo, "version": task.version, "status": "error",
                    "cause": cause, "note": note, "reconstructed_base": base,
                    "why": f"[sdist, {note.partition(' (')[0].removeprefix('sdist reconstruction from ')}] {why}"}
                continue
            row = done.get(task.instance_id)
            if row is not None and same_reconstruction(row, rec if base else None):
                classify_absent(row, task, repos)
                classify_mapped(row, task)
                tidy(row, rec if base else None)
                if row.get("status") == "graded" and "changed_tests" not in row:
                    note_changed_tests(row, task)
                verified.mark_upstream_defect(row)
                continue
            if row is not None and release_unavailable(row, rec if base else None):
                print(f"warning: {task.instance_id}: kept as graded on {row.get('sdist')}, which cannot be rebuilt "
                      f"here today ({note}); its row is not re-checked", file=sys.stderr)
                continue
            if row is not None and row.get("status") == "graded":
                print(f"warning: {task.instance_id}: its graded row was made on {row.get('sdist')} "
                      f"({row.get('sdist_mode')}), today's reconstruction is {note}; the row becomes 'not run'",
                      file=sys.stderr)
            done[task.instance_id] = {
                "instance_id": task.instance_id, "repo": task.repo, "version": task.version, "status": "not run",
                "cause": "not run before the time box ended", "note": note, "reconstructed_base": base,
                "why": f"[{note}] not graded: the time box ended first"}
        verified.write([done[i] for i in CANDIDATES if i in done], meta)
        return 0
    previous = verified.RESULTS / f"{args.results}.json"
    done = {r["instance_id"]: r for r in json.loads(previous.read_text())["instances"]} if previous.is_file() else {}
    for task in chosen:
        print(f"== {task.instance_id}", flush=True)
        done[task.instance_id] = run_one(task, repos, args.timeout, args.sdist_python, args.reconstruct_only)
        r = done[task.instance_id]
        if args.reconstruct_only:
            print(f"   {r['status']} {r.get('reconstructed_base', '')[:12]} {r.get('why') or r.get('note')}", flush=True)
            continue
        print(f"   {r['status']} gold={r.get('gold')} empty={r.get('empty')} {r.get('cause', '')} "
              f"{(r.get('why') or '')[:300]}", flush=True)
        order = [i for i in CANDIDATES if i in done]
        verified.write([done[i] for i in order], meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
