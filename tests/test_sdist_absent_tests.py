"""``benchmarks/swe_sdist_validation.py``: a gold run on a reconstruction that lacks record tests only because the
release no longer has them is classified as such, for pytest names and for django runner names alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import swe_sdist_validation as sdist  # noqa: E402
from expagent.tasks.sdist_base import UNAVAILABLE  # noqa: E402


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


F = "sklearn/metrics/tests/test_text.py"


def _task(f2p, p2p):
    from expagent.tasks.suite import Task

    return Task(instance_id="x__y-1", repo="x/y", base_commit="0" * 40, problem_statement="", test_patch="",
                fail_to_pass=f2p, pass_to_pass=p2p)


def test_renamed_and_parametrized_record_tests_are_graded_by_their_stand_ins():
    gold = {f"{F}::test_inverse_transform[CountVectorizer]": "PASSED",
            f"{F}::test_inverse_transform[TfidfVectorizer]": "PASSED",
            f"{F}::test_non_consecutive_labels": "PASSED",
            f"{F}::test_fixed": "PASSED",
            f"{F}::test_other": "PASSED"}
    empty = {**gold, f"{F}::test_fixed": "FAILED"}
    task = _task([f"{F}::test_fixed"], [f"{F}::test_inverse_transform", f"{F}::test_non_consicutive_labels",
                                        f"{F}::test_other"])
    gold_ok, empty_ok, mapping = sdist.mapped_verdicts(task, gold, empty)
    assert mapping == {f"{F}::test_inverse_transform": [f"{F}::test_inverse_transform[CountVectorizer]",
                                                        f"{F}::test_inverse_transform[TfidfVectorizer]"],
                       f"{F}::test_non_consicutive_labels": [f"{F}::test_non_consecutive_labels"]}
    assert (gold_ok, empty_ok) == (True, False)
    # a stand-in that fails is a failure: mapping does not make anything pass
    gold_bad = {**gold, f"{F}::test_inverse_transform[TfidfVectorizer]": "FAILED"}
    assert sdist.mapped_verdicts(task, gold_bad, empty)[:2] == (False, False)


def test_a_missing_test_without_a_clear_stand_in_stays_missing():
    gold = {f"{F}::test_alpha_a": "PASSED", f"{F}::test_alpha_b": "PASSED", f"{F}::test_fixed": "PASSED"}
    # two equally near names: no guess; one clearly nearest: mapped
    assert sdist.release_names([f"{F}::test_alpha_c"], gold) == {}
    assert sdist.release_names([f"{F}::test_alpha_bb"], gold) == {f"{F}::test_alpha_bb": [f"{F}::test_alpha_b"]}
    # a name not near anything, or in another file, is not mapped, and the gold run stays unresolved
    task = _task([f"{F}::test_fixed"], [f"{F}::test_something_else", "other/test_b.py::test_alpha_a"])
    assert sdist.release_names(task.pass_to_pass, gold) == {}
    assert sdist.mapped_verdicts(task, gold, gold)[:2] == (False, False)


def test_combine_keeps_a_row_graded_on_the_same_release_placed_the_same_way():
    rec = SimpleNamespace(archive="scikit-learn-0.20.0.tar.gz", mode="gold reverse-applied", base_commit="b" * 40)
    row = {"status": "graded", "sdist": rec.archive, "sdist_mode": rec.mode, "reconstructed_base": "a" * 40}
    assert sdist.same_reconstruction(row, rec)  # another home's commit id, the same tree
    assert not sdist.same_reconstruction({**row, "sdist_mode": "release as is"}, rec)
    assert not sdist.same_reconstruction({**row, "sdist": "scikit-learn-0.21.3.tar.gz"}, rec)
    assert sdist.same_reconstruction({"status": "error"}, None)
    assert not sdist.same_reconstruction(row, None)


def test_combine_keeps_a_graded_row_whose_release_cannot_be_fetched_today():
    row = {"status": "graded", "sdist": "scikit-learn-0.20.0.tar.gz", "sdist_mode": "gold reverse-applied"}
    fell_back = SimpleNamespace(archive="scikit-learn-0.19.2.tar.gz", mode="release as is",
                                rejected=(f"scikit-learn==0.20.0: {UNAVAILABLE}: pip download failed",))
    assert sdist.release_unavailable(row, fell_back)
    assert sdist.release_unavailable(row, None)  # no reconstruction at all today
    # today's rules place another release on purpose: the row is stale, not kept
    placed_else = SimpleNamespace(archive="scikit-learn-0.19.2.tar.gz", mode="release as is",
                                  rejected=("scikit-learn==0.20.0: the gold patch neither applies nor reverse-applies",))
    assert not sdist.release_unavailable(row, placed_else)
    assert not sdist.release_unavailable({**row, "status": "error"}, fell_back)
