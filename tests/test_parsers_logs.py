"""Each test-output parser on real logs, captured by running the real test runners (extracts in tests/data/logs/).

How the logs were made (outside the repository, never committed): Django 4.2.16's sdist,
``tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1`` under Python 3.9 and 3.11
(the ``fail`` runs with ``floatformat`` broken on purpose, the ``output`` run with the migration
optimizer writing to stderr); sympy at the base commit of sympy__sympy-23534 with its test patch
(``base``), then with the gold patch and ``Contains.binary_symbols`` broken on purpose (``gold``),
``bin/test -C --verbose``; pytest's own ``testing/test_capture.py`` with ``-rA``; at the base commits of
SWE-bench instances with their test patches applied (so FAIL_TO_PASS tests fail): flask (pallets__flask-5014,
``-rA`` and ``-v``), requests (psf__requests-6028, ``-rA``), xarray (pydata__xarray-7393, ``-rA``), seaborn (mwaskom__seaborn-3187, ``--no-header -rA``),
sphinx (sphinx-doc__sphinx-11510: the command its tox.ini runs, ``pytest -rA --durations 25`` with
``PYTEST_ADDOPTS=--color yes``, so the output is coloured as under tox); pylint's grade logs from the grader's own
runs of pylint-dev__pylint-4604 (gold and empty patch) and pylint-dev__pylint-4661 (gold), ``pytest -rA``, with the
grading sandbox's paths replaced by ``/src`` and ``/sb/``; astropy's the same way, from the grader's empty-patch runs of
astropy__astropy-7166 and astropy__astropy-7336 (``pytest -rA -vv -o console_output_style=classic``, pytest 3.3.1 on
Python 3.6). Summary sections were cut to the lines
the tests read (marked ``[...]``); machine paths were replaced by ``/src/``.

Where a log covers a SWE-bench instance, every FAIL_TO_PASS and PASS_TO_PASS name of that instance
from ``../shared/data/swe-verified-dev-407.jsonl`` is looked up as the grader does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expagent.tasks import logparse, parsers

LOGS = Path(__file__).resolve().parent / "data" / "logs"
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def log(name: str) -> str:
    return (LOGS / name).read_text(encoding="utf-8")


def instance(instance_id: str) -> dict:
    path = SHARED / "swe-verified-dev-407.jsonl"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path}")
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["instance_id"] == instance_id:
            for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
                if isinstance(record[key], str):
                    record[key] = json.loads(record[key])
            return record
    raise AssertionError(f"{instance_id} not in {path}")


def statuses(repo: str, text: str, names: list[str]) -> dict[str, str]:
    return logparse.lookup(parsers.parse(repo, text), names)


# --- registry ------------------------------------------------------------------------------------------------------

SWE_BENCH_PYTHON_REPOS = [
    "astropy/astropy", "django/django", "marshmallow-code/marshmallow", "matplotlib/matplotlib", "mwaskom/seaborn",
    "pallets/flask", "psf/requests", "pvlib/pvlib-python", "pydata/xarray", "pydicom/pydicom", "pylint-dev/astroid",
    "pylint-dev/pylint", "pytest-dev/pytest", "pyvista/pyvista", "scikit-learn/scikit-learn", "sphinx-doc/sphinx",
    "sqlfluff/sqlfluff", "sympy/sympy",
]


def test_every_swebench_python_repo_has_a_parser_and_the_recipes_agree():
    from expagent.tasks import swebench_specs

    assert sorted(parsers.REPO_PARSERS) == sorted(SWE_BENCH_PYTHON_REPOS)
    for repo in SWE_BENCH_PYTHON_REPOS:
        name = parsers.parser_name_for_repo(repo)
        assert logparse.get_parser(name) is parsers.parser_for_repo(repo)
        # the recipe the grader reads names the same parser, and that name resolves
        assert swebench_specs.parser_for(repo) == name
    assert parsers.parser_for_repo("someone/else") is parsers.parse_pytest


# --- django ----------------------------------------------------------------------------------------------------------

def test_django_python39_names_match_swebench_instances():
    text = log("django_v39.log")
    results = parsers.parse("django/django", text)
    assert results["test_aggregate_alias (annotations.tests.AliasTests)"] == "PASSED"
    assert results["test_distinct_on_alias (annotations.tests.AliasTests)"] == "SKIPPED"
    # a test with a docstring is named by the docstring's first line
    assert results["RenameModels should absorb themselves."] == "PASSED"
    assert "test_rename_model_self (migrations.test_optimizer.OptimizerTests)" not in results
    assert len(results) == 136  # "Ran 136 tests"
    for instance_id in ("django__django-15499", "django__django-15863", "django__django-16032"):
        record = instance(instance_id)
        names = record["FAIL_TO_PASS"] + record["PASS_TO_PASS"]
        got = statuses("django/django", text, names)
        assert set(got.values()) == {"PASSED"}, {n: s for n, s in got.items() if s != "PASSED"}


def test_django_python311_names_carry_the_method():
    text = log("django_v311.log")
    results = parsers.parse("django/django", text)
    assert results["test_aggregate_alias (annotations.tests.AliasTests.test_aggregate_alias)"] == "PASSED"
    record = instance("django__django-16485")  # Django 5.0, Python 3.11 names
    got = statuses("django/django", text, record["FAIL_TO_PASS"] + record["PASS_TO_PASS"])
    assert set(got.values()) == {"PASSED"}
    # the 3.9-style name of the same test is not invented
    assert logparse.lookup(results, ["test_aggregate_alias (annotations.tests.AliasTests)"]) == {
        "test_aggregate_alias (annotations.tests.AliasTests)": logparse.MISSING}


def test_django_failures_errors_and_status_after_output():
    results = parsers.parse("django/django", log("django_fail_v311.log"))
    base = "template_tests.filter_tests.test_floatformat.FunctionTests"
    assert results[f"test_infinity ({base}.test_infinity)"] == "ERROR"
    # "... mutated floatformat saw zero" then "FAIL" on the next line
    assert results[f"test_inputs ({base}.test_inputs)"] == "FAILED"
    assert results[f"test_zero_values ({base}.test_zero_values)"] == "FAILED"
    assert results[f"test_force_grouping ({base}.test_force_grouping)"] == "PASSED"
    assert sorted(results.values()).count("PASSED") == 50
    old = parsers.parse("django/django", log("django_fail_v39.log"))
    assert old[f"test_inputs ({base})"] == "FAILED" and old[f"test_infinity ({base})"] == "ERROR"
    # "... optimizing 1 operations" then "ok" on a later line
    out = parsers.parse("django/django", log("django_output_v311.log"))
    assert out == {
        "The optimizer does nothing on a single operation,": "PASSED",
        "CreateModel and DeleteModel should collapse into nothing.": "PASSED",
        "test_rename_index (migrations.test_optimizer.OptimizerTests.test_rename_index)": "PASSED",
    }


# --- sympy -----------------------------------------------------------------------------------------------------------

def test_sympy_bin_test_verbose_lines():
    record = instance("sympy__sympy-23534")
    base = parsers.parse("sympy/sympy", log("sympy_base.log"))
    gold = parsers.parse("sympy/sympy", log("sympy_gold.log"))
    assert logparse.lookup(base, record["FAIL_TO_PASS"]) == {"test_symbols": "FAILED"}
    assert logparse.lookup(gold, record["FAIL_TO_PASS"]) == {"test_symbols": "PASSED"}
    for results in (base, gold):
        assert set(logparse.lookup(results, record["PASS_TO_PASS"]).values()) == {"PASSED"}
    # the last test of a file carries the file's verdict: not the test's status
    assert base["test_disambiguate"] == "PASSED" and base["test_type_error"] == "PASSED"
    assert gold["test_binary_symbols"] == "ERROR"
    assert len(base) == len(gold) == 19  # "18 passed, 1 failed"
    assert not any(":" in name for name in base)  # the failure headers are not extra tests


# --- pytest ----------------------------------------------------------------------------------------------------------

def test_pytest_own_suite_with_swebench_progress_marker_names():
    text = log("pytest_capture.log")
    results = parsers.parse("pytest-dev/pytest", text)
    # "PASSED    [100%]" of a captured verbose run: SWE-bench's records name it "[100%]"
    assert results["[100%]"] == "PASSED"
    # a captured inner run's summary line is read too, as the harness does
    assert results["test_capsysbinary.py::test_hello"] == "PASSED"
    assert results["testing/test_capture.py::TestPerTestCapturing::test_capture_scope_cache"] == "XFAIL"
    assert results["testing/test_capture.py::TestCaptureFixture::test_cafd_preserves_newlines[\\r\\n]"] == "PASSED"
    assert not any(name.startswith("src/_pytest") for name in results)  # "SKIPPED [1] path:line" is a location
    record = instance("pytest-dev__pytest-7521")
    got = statuses("pytest-dev/pytest", text, record["FAIL_TO_PASS"] + record["PASS_TO_PASS"])
    assert set(got.values()) == {"PASSED"}, {n: s for n, s in got.items() if s != "PASSED"}


def test_progress_marker_with_space_is_named_like_swebench():
    # pytest pads the percentage: "[ 50%]" splits into "[" and "50%]"
    assert parsers.parse_pytest("PASSED                                   [ 50%]\n") == {"[": "PASSED"}


def test_flask_summary_and_verbose_forms_agree():
    record = instance("pallets__flask-5014")
    summary = parsers.parse("pallets/flask", log("flask_rA.log"))
    verbose = parsers.parse("pallets/flask", log("flask_v.log"))
    # -rA: "PASSED id" lines; -v: "id PASSED [ 5%]" lines (and a summary holding only the failure)
    assert summary == verbose
    assert len(summary) == 60  # "1 failed, 59 passed"
    assert summary["tests/test_blueprints.py::test_blueprint_prefix_slash[/foo/-//bar-/foo/bar]"] == "PASSED"
    assert logparse.lookup(summary, record["FAIL_TO_PASS"]) == {"tests/test_blueprints.py::test_empty_name_not_allowed":
                                                               "FAILED"}
    assert set(logparse.lookup(verbose, record["PASS_TO_PASS"]).values()) == {"PASSED"}
    # seaborn's runs use the same reader
    assert parsers.parse("mwaskom/seaborn", log("flask_v.log")) == verbose


def test_requests_parameters_with_escapes_and_percent_signs():
    text = log("requests_utils_rA.log")
    results = parsers.parse("psf/requests", text)
    record = instance("psf__requests-6028")
    assert set(logparse.lookup(results, record["FAIL_TO_PASS"]).values()) == {"FAILED"}  # at base, with the test patch
    covered = [n for n in record["PASS_TO_PASS"] if n in results]
    assert len(covered) >= 20
    assert any("%25" in n for n in covered) and any("\\x" in n for n in covered)
    assert set(logparse.lookup(results, covered).values()) == {"PASSED"}
    # "SKIPPED [10] tests/test_utils.py:731: ..." is a location, not a test
    assert not any(name.startswith("[") for name in results)


def test_pytest_options_shortens_absolute_path_parameters():
    line = "PASSED pydicom/tests/test_filereader.py::test_read[/tmp/data/CT_small.dcm]\n"
    assert parsers.parse("pydicom/pydicom", line) == {"pydicom/tests/test_filereader.py::test_read[/CT_small.dcm]":
                                                      "PASSED"}


def test_seaborn_no_header_summary():
    record = instance("mwaskom__seaborn-3187")
    results = parsers.parse("mwaskom/seaborn", log("seaborn_plot_rA.log"))
    f2p = logparse.lookup(results, record["FAIL_TO_PASS"])
    assert f2p["tests/_core/test_plot.py::TestLegend::test_legend_has_no_offset"] == "FAILED"
    assert f2p["tests/test_relational.py::TestRelationalPlotter::test_legend_has_no_offset"] == logparse.MISSING
    covered = [n for n in record["PASS_TO_PASS"] if n in results]
    assert len(covered) >= 40 and set(logparse.lookup(results, covered).values()) == {"PASSED"}
    assert results["tests/_core/test_plot.py::TestScaling::test_undefined_variable_raises"] == "XFAIL"


def test_sphinx_coloured_summary():
    record = instance("sphinx-doc__sphinx-11510")
    text = log("sphinx_color_rA.log")
    assert "\x1b[1mtest_toctree\x1b[0m" in text  # pytest --color yes puts the test name in bold
    results = parsers.parse("sphinx-doc/sphinx", text)
    assert set(logparse.lookup(results, record["FAIL_TO_PASS"]).values()) == {"FAILED"}
    assert set(logparse.lookup(results, record["PASS_TO_PASS"]).values()) == {"PASSED"}
    assert len(results) == 9
    # without the colour stripping the names would carry escape codes
    assert not set(parsers.parse_pytest(text)) & set(record["PASS_TO_PASS"])


def test_xarray_summary():
    record = instance("pydata__xarray-7393")
    results = parsers.parse("pydata/xarray", log("xarray_indexes_rA.log"))
    assert set(logparse.lookup(results, record["FAIL_TO_PASS"]).values()) == {"FAILED"}
    p2p = logparse.lookup(results, record["PASS_TO_PASS"])
    # this capture's environment lacked cftime: those two were skipped, reported by location only, so not found
    needs_cftime = {"xarray/tests/test_indexes.py::test_safe_cast_to_index_cftimeindex",
                    "xarray/tests/test_indexes.py::test_safe_cast_to_index_datetime_datetime"}
    assert {n for n, s in p2p.items() if s != "PASSED"} == needs_cftime
    assert {p2p[n] for n in needs_cftime} == {logparse.MISSING}
    assert len(results) == 71  # "2 failed, 69 passed, 2 skipped"


def test_pylint_summary_names_match_swebench():
    # pylint-dev__pylint-4604 (pytest_options parser): the gold run passes all 21 FAIL_TO_PASS tests ...
    record = instance("pylint-dev__pylint-4604")
    gold = parsers.parse("pylint-dev/pylint", log("pylint_variables_rA.log"))
    assert len(record["FAIL_TO_PASS"]) == 21 and len(gold) == 21
    assert set(logparse.lookup(gold, record["FAIL_TO_PASS"]).values()) == {"PASSED"}
    # ... the empty patch fails at collection (the test file imports a name only the fix adds): every test is
    # missing, the module's collection error is the only result
    empty = parsers.parse("pylint-dev/pylint", log("pylint_variables_collect_error.log"))
    assert empty == {"tests/checkers/unittest_variables.py": "ERROR"}
    assert set(logparse.lookup(empty, record["FAIL_TO_PASS"]).values()) == {logparse.MISSING}
    # pylint-dev__pylint-4661: parametrized names and a class method among 51, from a two-line progress bar
    record = instance("pylint-dev__pylint-4661")
    lint = parsers.parse("pylint-dev/pylint", log("pylint_lint_rA.log"))
    assert logparse.lookup(lint, record["FAIL_TO_PASS"]) == {"tests/lint/unittest_lint.py::test_pylint_home": "PASSED"}
    assert lint["tests/lint/unittest_lint.py::test_one_arg[case4]"] == "PASSED"
    assert lint["tests/lint/unittest_lint.py::TestPreprocessOptions::test_value_space"] == "PASSED"
    assert len(lint) == 51



def test_astropy_verbose_classic_lines():
    # astropy__astropy-7166, empty patch: pytest 3.3 with -rA -vv and the classic console style prints no summary
    # of passes, only `id STATUS` lines; astropy's header (versions, "Internet access disabled") precedes them
    record = instance("astropy__astropy-7166")
    results = parsers.parse("astropy/astropy", log("astropy_misc_empty_vv.log"))
    assert logparse.lookup(results, record["FAIL_TO_PASS"]) == {
        "astropy/utils/tests/test_misc.py::test_inherit_docstrings": "FAILED"}
    assert set(logparse.lookup(results, record["PASS_TO_PASS"]).values()) == {"PASSED"}
    assert results["astropy/utils/tests/test_misc.py::test_set_locale"] == "SKIPPED"
    assert len(results) == 9  # "1 failed, 6 passed, 2 skipped"


def test_astropy_parametrized_ids_in_verbose_lines():
    # astropy__astropy-7336, empty patch (29 of its 339 passing lines kept, cut at "[...]"): parametrized ids
    # such as `test_args3[solarx_unit0-solary_unit0]` are SWE-bench's PASS_TO_PASS names as printed
    record = instance("astropy__astropy-7336")
    results = parsers.parse("astropy/astropy", log("astropy_annotations_empty_vv.log"))
    assert set(logparse.lookup(results, record["FAIL_TO_PASS"]).values()) == {"FAILED"}
    covered = [n for n in record["PASS_TO_PASS"] if n in results]
    assert len(covered) == 29 and len(results) == 30
    assert any("[" in n for n in covered)
    assert set(logparse.lookup(results, covered).values()) == {"PASSED"}
