"""Base states rebuilt from source releases (expagent.tasks.sdist_base), on tiny synthetic sdists made here.

Each sdist is a real tarball put where ``pypi_source.download_sdist`` finds it (the sdist cache), so nothing
reaches the network; the reconstruction runs real git and GNU patch, and the end-to-end test grades the result
with the real environment build and grader.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from expagent.tasks import sdist_base
from expagent.tasks.sdist_base import AS_RELEASED, GOLD_REVERSED, SdistBaseError, reconstruct, retarget
from expagent.tasks.suite import load_suite

PY = f"{sys.version_info.major}.{sys.version_info.minor}"

_OLD = "def double(x):\n    return x + x + 1\n"
_NEW = "def double(x):\n    return x + x\n"
_TEST_OLD = "from calc import double\n\n\ndef test_type():\n    assert isinstance(double(1), int)\n"
_TEST_NEW = _TEST_OLD + "\n\ndef test_double():\n    assert double(2) == 4\n"
#: a later release: another test was added below the new one
_TEST_LATER = _TEST_NEW + "\n\ndef test_zero():\n    assert double(0) == 0\n"

GOLD = """\
diff --git a/calc/__init__.py b/calc/__init__.py
--- a/calc/__init__.py
+++ b/calc/__init__.py
@@ -1,2 +1,2 @@
 def double(x):
-    return x + x + 1
+    return x + x
"""
TESTS = """\
diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -3,3 +3,7 @@ from calc import double
 
 def test_type():
     assert isinstance(double(1), int)
+
+
+def test_double():
+    assert double(2) == 4
"""


def make_sdist(cache: Path, version: str, code: str, tests: str) -> Path:
    """``calc-<version>.tar.gz`` as an sdist is laid out (one top directory), in the sdist cache."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"calc-{version}.tar.gz"
    files = {"calc/__init__.py": code, "tests/test_calc.py": tests, "PKG-INFO": f"Name: calc\nVersion: {version}\n",
             "setup.py": "from setuptools import setup\nsetup(name='calc', packages=['calc'])\n"}
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"calc-{version}/{name}")
            info.size, info.mtime = len(data), 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPAGENT_HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / "cache" / "sdists"
    make_sdist(cache, "1.0", _OLD, _TEST_OLD)  # precedes the fix
    make_sdist(cache, "1.1", _NEW, _TEST_NEW)  # holds the fix and its test
    make_sdist(cache, "1.2", _NEW, _TEST_LATER)  # holds them, and its tests moved on
    make_sdist(cache, "2.0", "def triple(x):\n    return 3 * x\n", _TEST_OLD)  # unrelated code
    return tmp_path / "home"


def make_task(tmp_path: Path, env: str = "") -> object:
    record = {"instance_id": "calc__calc-1", "repo": "calc/calc", "base_commit": "0" * 40, "problem_statement": "x",
              "patch": GOLD, "test_patch": TESTS, "FAIL_TO_PASS": ["tests/test_calc.py::test_double"],
              "PASS_TO_PASS": ["tests/test_calc.py::test_type"], "version": "1.0",
              "environment_setup_commit": "1" * 40}
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir(exist_ok=True)
    (suite_dir / "tasks.jsonl").write_text(json.dumps(record) + "\n")
    (suite_dir / "suite.toml").write_text(f'name = "calc"\n[repos."calc/calc"]\nurl = "https://example.invalid/x.git"\n'
                                          f"\n[env]\n{env}")
    return load_suite(suite_dir).task("calc__calc-1")


def show(repo: Path, commit: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def applies(repo: Path, commit: str, patch: str) -> bool:
    return sdist_base._applies(repo, commit, patch)


def test_a_release_holding_the_fix_gives_the_base_with_gold_and_tests_reversed(tmp_path, home):
    task = make_task(tmp_path)
    rec = reconstruct(task, ["calc==1.1"], tmp_path / "repos")
    bare = tmp_path / "repos" / "calc+calc"
    assert (rec.mode, rec.tests, rec.archive) == (GOLD_REVERSED, "test patch reverse-applied", "calc-1.1.tar.gz")
    assert show(bare, rec.base_commit, "calc/__init__.py") == _OLD
    assert show(bare, rec.base_commit, "tests/test_calc.py") == _TEST_OLD
    assert show(bare, rec.release_commit, "calc/__init__.py") == _NEW  # the release itself is kept, unchanged
    assert applies(bare, rec.base_commit, GOLD) and applies(bare, rec.base_commit, TESTS)
    assert rec.test_patch is None  # the record's test patch applies as it is
    assert "calc-1.1.tar.gz (gold reverse-applied, test patch reverse-applied), not the real base commit" in rec.note
    # deterministic: the same sdist and patches give the same commits in another repository
    again = reconstruct(task, ["calc==1.1"], tmp_path / "other")
    assert (again.base_commit, again.release_commit) == (rec.base_commit, rec.release_commit)
    # what a version tool reads at the base: the release, in a form setuptools_scm parses (matplotlib 3.8's
    # build refused 'sdist/matplotlib-3.8.0'); the base itself is kept on a branch, which describe ignores
    described = subprocess.run(["git", "-C", str(bare), "describe", "--tags", "--long", "--match", "*[0-9]*",
                                rec.base_commit], capture_output=True, text=True, check=True).stdout.strip()
    assert described.startswith("sdist-calc-1.1-") and "/" not in described
    assert subprocess.run(["git", "-C", str(bare), "rev-parse", "sdist-base/calc__calc-1"], capture_output=True,
                          text=True, check=True).stdout.strip() == rec.base_commit


def test_a_release_before_the_fix_is_used_as_is(tmp_path, home):
    task = make_task(tmp_path)
    rec = reconstruct(task, ["calc==1.0"], tmp_path / "repos")
    assert rec.mode == AS_RELEASED and rec.base_commit == rec.release_commit and rec.tests == ""


def test_an_unrelated_release_is_rejected_with_its_reason_and_the_next_one_used(tmp_path, home):
    task = make_task(tmp_path)
    rec = reconstruct(task, ["calc==2.0", "calc==1.1"], tmp_path / "repos")
    assert rec.spec == "calc==1.1"
    assert rec.rejected == ("calc==2.0: the gold patch neither applies nor reverse-applies (even with fuzz)",)
    assert "rejected: calc==2.0" in rec.note
    with pytest.raises(SdistBaseError, match=r"calc__calc-1: no release fits \(calc==2.0: the gold patch"):
        reconstruct(task, ["calc==2.0"], tmp_path / "repos")


def test_tests_that_moved_on_are_reversed_with_fuzz_and_the_test_patch_rebased(tmp_path, home):
    task = make_task(tmp_path)
    rec = reconstruct(task, ["calc==1.2"], tmp_path / "repos")
    bare = tmp_path / "repos" / "calc+calc"
    assert rec.mode == GOLD_REVERSED
    assert rec.tests == ("test patch reverse-applied with fuzz, graded with the test patch rebased on the "
                         "release's test files")
    base_tests = show(bare, rec.base_commit, "tests/test_calc.py")
    assert "test_double" not in base_tests and "test_zero" in base_tests  # only the record's test is taken out
    assert not applies(bare, rec.base_commit, TESTS)  # the record's patch ends at the file's end: git refuses it
    assert rec.test_patch and applies(bare, rec.base_commit, rec.test_patch)
    graded = retarget(task, rec)
    assert graded.test_patch == rec.test_patch and "+def test_double():" in graded.test_patch


def test_retarget_points_the_task_at_the_reconstruction_and_the_env_at_the_release(tmp_path, home):
    task = make_task(tmp_path)
    rec = reconstruct(task, ["calc==1.1"], tmp_path / "repos")
    graded = retarget(task, rec)
    assert (graded.base_commit, graded.environment_setup_commit, graded.env_commit) == (
        rec.base_commit, rec.release_commit, rec.release_commit)
    assert graded.test_patch == task.test_patch and graded.patch == task.patch
    restored = dataclasses.replace(graded, base_commit=task.base_commit, env_commit=task.env_commit,
                                   environment_setup_commit=task.environment_setup_commit)
    assert restored == task


@pytest.mark.slow
def test_gold_and_empty_are_graded_on_the_reconstruction_by_the_real_grader(tmp_path, home):
    from expagent.tasks.envs import ensure_env
    from expagent.tasks.grader import grade

    env = (f'python = "{PY}"\nsystem_site_packages = true\n'
           'test_cmd = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -rA -p no:cacheprovider"\ntimeout = 120\n')
    task = make_task(tmp_path, env)
    repos = tmp_path / "repos"
    rec = reconstruct(task, ["calc==1.2"], repos)
    graded = retarget(task, rec)
    ensure_env(graded, repos_dir=repos)
    gold = grade(graded, graded.patch, repos_dir=repos)
    assert gold.resolved, gold.reason
    assert gold.fail_to_pass == {"tests/test_calc.py::test_double": "PASSED"}
    empty = grade(graded, "", repos_dir=repos)
    assert not empty.resolved and empty.fail_to_pass == {"tests/test_calc.py::test_double": "FAILED"}
