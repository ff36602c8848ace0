"""``benchmarks/swe_sdist_validation.py``: a gold run on a reconstruction that lacks record tests only because the
release no longer has them is classified as such, for pytest names and for django runner names alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import swe_sdist_validation as sdist  # noqa: E402


def _repo(tmp_path: Path, files: dict[str, str]) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    env = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), *env, "commit", "-qm", "release"], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    return repo, head.strip()


RELEASE = {
    "tests/m2m_through/tests.py": "class M2mThroughTests:\n    def test_add_on_m2m_with_intermediate_model(self):\n"
                                  "        pass\n    def test_retrieve(self):\n        pass\n",
    "tests/sitemaps_tests/test_management.py": "class PingGoogleTests:\n    def test_default(self):\n        pass\n",
    "pkg/tests/test_a.py": "def test_new_name():\n    pass\n",
}


def test_locate_test_reads_both_name_forms():
    assert sdist.locate_test("pkg/tests/test_a.py::TestX::test_y") == (["pkg/tests/test_a.py"], "test_y")
    assert sdist.locate_test("test_arg (sitemaps_tests.test_management.PingGoogleTests)") == (
        ["tests/sitemaps_tests/test_management.py", "tests/sitemaps_tests.py"], "test_arg")
    assert sdist.locate_test("Named URLs should be reversible") is None  # a docstring says no file


def test_django_record_tests_the_release_removed_are_absent(tmp_path):
    repo, commit = _repo(tmp_path, RELEASE)
    task = SimpleNamespace(
        fail_to_pass=["test_arg (sitemaps_tests.test_management.PingGoogleTests)"],
        pass_to_pass=["test_cannot_use_add_on_m2m_with_intermediary_model (m2m_through.tests.M2mThroughTests)",
                      "test_retrieve (m2m_through.tests.M2mThroughTests)"])
    gold = {"test_retrieve (m2m_through.tests.M2mThroughTests)": "PASSED",
            "test_add_on_m2m_with_intermediate_model (m2m_through.tests.M2mThroughTests)": "PASSED"}
    assert sdist.absent_tests(task, gold, repo, commit) == [
        "test_arg (sitemaps_tests.test_management.PingGoogleTests) (no such test)",
        "test_cannot_use_add_on_m2m_with_intermediary_model (m2m_through.tests.M2mThroughTests) (no such test)"]


def test_a_missing_test_the_release_still_has_or_a_failing_one_is_not_absent(tmp_path):
    repo, commit = _repo(tmp_path, RELEASE)
    # test_retrieve exists in the release: its absence from the run has another cause
    task = SimpleNamespace(fail_to_pass=["test_retrieve (m2m_through.tests.M2mThroughTests)"], pass_to_pass=[])
    assert sdist.absent_tests(task, {}, repo, commit) == []
    # a test that fails is a failure, whatever else is missing
    task = SimpleNamespace(fail_to_pass=["test_arg (sitemaps_tests.test_management.PingGoogleTests)"],
                           pass_to_pass=["test_retrieve (m2m_through.tests.M2mThroughTests)"])
    assert sdist.absent_tests(task, {"test_retrieve (m2m_through.tests.M2mThroughTests)": "FAILED"},
                              repo, commit) == []
    # a docstring-named test cannot be looked up: no classification
    task = SimpleNamespace(fail_to_pass=["Named URLs should be reversible"], pass_to_pass=[])
    assert sdist.absent_tests(task, {}, repo, commit) == []
    # pytest names as before
    task = SimpleNamespace(fail_to_pass=["pkg/tests/test_a.py::test_old_name"], pass_to_pass=[])
    assert sdist.absent_tests(task, {}, repo, commit) == ["pkg/tests/test_a.py::test_old_name (no such test)"]
