"""Per-test parsing of pytest output, including parametrized ids with spaces, brackets and ``::``."""

import subprocess
import sys
import textwrap

from expagent.tasks import logparse


SUMMARY = textwrap.dedent(
    """\
    ============================= test session starts ==============================
    collected 9 items

    tests/test_x.py ..F.sxX.E                                                [100%]
    =========================== short test summary info ============================
    PASSED tests/test_x.py::test_plain
    PASSED tests/test_x.py::TestCls::test_method
    PASSED tests/test_x.py::test_param[empty list]
    PASSED tests/test_x.py::test_param[a - b]
    FAILED tests/test_x.py::test_param[select a from t] - AssertionError: assert 'x' == 'y'
    FAILED tests/test_x.py::test_other - assert 0 - 1
    SKIPPED [1] tests/test_x.py:40: no network
    XFAIL tests/test_x.py::test_known - bug 12
    XPASS tests/test_x.py::test_lucky reason
    ERROR tests/test_x.py::test_fixture[x::y z] - RuntimeError: boom
    ERROR tests/test_broken.py - ImportError: cannot import name 'q'
    PASSED tests/test_x.py::test_nested[[1, 2]-ok]
    ==== 2 failed, 5 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 errors in 0.50s ====
    """
)


def test_pytest_summary_lines_keep_whole_ids():
    results = logparse.parse_pytest(SUMMARY)
    assert results == {
        "tests/test_x.py::test_plain": "PASSED",
        "tests/test_x.py::TestCls::test_method": "PASSED",
        "tests/test_x.py::test_param[empty list]": "PASSED",
        "tests/test_x.py::test_param[a - b]": "PASSED",
        "tests/test_x.py::test_param[select a from t]": "FAILED",
        "tests/test_x.py::test_other": "FAILED",
        "tests/test_x.py::test_known": "XFAIL",
        "tests/test_x.py::test_lucky": "XPASS",
        "tests/test_x.py::test_fixture[x::y z]": "ERROR",
        "tests/test_broken.py": "ERROR",
        "tests/test_x.py::test_nested[[1, 2]-ok]": "PASSED",
    }


def test_lookup_matches_swebench_truncated_names_and_reports_missing():
    results = logparse.parse_pytest(SUMMARY)
    statuses = logparse.lookup(
        results,
        [
            "tests/test_x.py::test_param[select",  # SWE-bench cuts ids at the first space
            "tests/test_x.py::test_param[empty list]",
            "tests/test_x.py::test_never_ran",
        ],
    )
    assert statuses == {
        "tests/test_x.py::test_param[select": "FAILED",
        "tests/test_x.py::test_param[empty list]": "PASSED",
        "tests/test_x.py::test_never_ran": logparse.MISSING,
    }


def test_pytest_options_shortens_absolute_path_parameters():
    log = "PASSED pkg/tests/test_fs.py::test_read[/tmp/data/file one.dcm]\nPASSED pkg/tests/test_fs.py::test_read[//x]\n"
    assert logparse.parse_pytest_options(log) == {
        "pkg/tests/test_fs.py::test_read[/file one.dcm]": "PASSED",
        "pkg/tests/test_fs.py::test_read[//x]": "PASSED",
    }


def test_pytest_v2_strips_colour_and_reads_old_style_lines():
    log = "\x1b[32mPASSED\x1b[0m tests/test_a.py::test_one\ntests/test_a.py::test_two FAILED [ 50%]\n"
    assert logparse.parse_pytest_v2(log) == {"tests/test_a.py::test_one": "PASSED", "tests/test_a.py::test_two": "FAILED"}


def test_parses_real_pytest_output_with_awkward_ids(tmp_path):
    # run the real pytest on parametrized tests whose ids hold spaces, brackets and '::'
    (tmp_path / "test_ids.py").write_text(textwrap.dedent(
        """\
        import pytest

        @pytest.mark.parametrize("v", [
            pytest.param(1, id="one two"),
            pytest.param(2, id="a::b [c]"),
            pytest.param(3, id="x - y"),
        ])
        def test_ids(v):
            assert v != 2

        class TestGroup:
            @pytest.mark.parametrize("s", ["select * from t", "ok"])
            def test_sql(self, s):
                assert s == "ok"

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False

        @pytest.mark.skip(reason="later")
        def test_skip():
            pass
        """
    ))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "test_ids.py"],
        cwd=tmp_path, capture_output=True, text=True, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"},
    )
    results = logparse.parse_pytest(proc.stdout)
    assert results["test_ids.py::test_ids[one two]"] == "PASSED"
    assert results["test_ids.py::test_ids[a::b [c]]"] == "FAILED"
    assert results["test_ids.py::test_ids[x - y]"] == "PASSED"
    assert results["test_ids.py::TestGroup::test_sql[select * from t]"] == "FAILED"
    assert results["test_ids.py::TestGroup::test_sql[ok]"] == "PASSED"
    assert results["test_ids.py::test_xfail"] == "XFAIL"
    assert "test_ids.py::test_skip" not in results  # pytest reports skips by location, not by id


def test_unknown_parser_is_a_clear_error():
    import pytest

    from expagent.errors import ExpagentError

    with pytest.raises(ExpagentError, match="unknown test-output parser 'nose'"):
        logparse.get_parser("nose")
