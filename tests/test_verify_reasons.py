"""An `unknown` verdict says what happened and what to do: tests that cannot even be collected are named."""

from __future__ import annotations

from types import SimpleNamespace

from conftest import make_repo

from expagent.experience.verify import Verifier, decide, why_no_test_ran
from expagent.sandbox.local import LocalSandbox

FILES = {
    "humanize/__init__.py": "from humanize._version import __version__\n\n\ndef ordinal(n):\n    return str(n)\n",
    "tests/test_time.py": "import freezegun\nfrom humanize import ordinal\n\n\ndef test_ordinal():\n"
                          "    assert ordinal(1) == '1st'\n",
    "tests/test_number.py": "from humanize import ordinal\n\n\ndef test_two():\n    assert ordinal(2) == '2nd'\n",
}


def test_uncollectable_tests_give_unknown_with_the_error_and_the_fix(tmp_path):
    repo = make_repo(tmp_path / "humanize", FILES)
    with LocalSandbox(repo) as sandbox:
        sandbox.write_file("humanize/__init__.py", FILES["humanize/__init__.py"].replace("str(n)", "f'{n}st'"))
        run_result = SimpleNamespace(patch=sandbox.diff())
        verdict = Verifier("python -m pytest -rA -q -p no:cacheprovider", timeout=120).after_run(sandbox, run_result)
    assert verdict["verdict"] == "unknown"
    reason = verdict["reason"]
    assert reason.startswith("the tests could not run before or after the patch (2 error(s) while collecting tests")
    assert "No module named 'humanize._version'" in reason or "No module named 'freezegun'" in reason
    assert "sandbox_setup" in reason


def test_summary_of_real_runner_outputs():
    assert why_no_test_ran("bash: line 1: pytest: command not found\n", 127, {}) == (
        "the test command was not found (exit 127); last line: bash: line 1: pytest: command not found")
    assert why_no_test_ran("...\n1 passed in 0.1s\n", 0, {"t::a": "PASSED"}) is None
    assert why_no_test_ran("F\n1 failed\n", 1, {"t::a": "FAILED"}) is None
    assert why_no_test_ran("no tests ran in 0.01s\n", 5, {}) == (
        "no tests were collected; last line: no tests ran in 0.01s")


def test_patch_that_breaks_collection_is_unresolved():
    ran = {"exit_code": 0, "results": {"t::a": "PASSED"}, "problem": None}
    broke = {"exit_code": 2, "results": {}, "problem": "1 error(s) while collecting tests; first: SyntaxError: x"}
    verdict, reason, _, _ = decide(ran, broke)
    assert verdict == "unresolved" and "ran before the patch but not after it" in reason
