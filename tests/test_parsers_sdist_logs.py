"""Parsers on real logs of the SWE-bench instances graded on sdist reconstructions (benchmarks/swe_sdist_validation.py).

How the logs were made (outside the repository, never committed): each instance's base state rebuilt from its
PyPI sdist (``expagent.tasks.sdist_base``), its environment built from the instance's SWE-bench spec, and the
grader's own test command run with the empty patch (so FAIL_TO_PASS tests fail) or the gold patch:

- ``django_sdist_pagination_v36.log``: django__django-9296 on Django-3.1.tar.gz, empty patch, Python 3.6,
  ``./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 pagination.tests`` (whole log);
- ``django_sdist_migrations_v36.log``: django__django-7530 on Django-1.11.tar.gz, empty patch, Python 3.6,
  ``... migrations.test_commands`` (the database set-up before ``Running migrations:`` cut, marked ``[...]``);
- ``django_sdist_fullsuite_v36.log``: django__django-10097 on Django-2.2.tar.gz, gold patch, Python 3.6: its test
  patch holds only data files, so the whole suite runs (``./tests/runtests.py ... --parallel 1``; cut by the
  900 s timeout after 6,326 tests); five stretches kept, marked ``[...]``;
- ``matplotlib_sdist_axes_{empty,gold}.log``: matplotlib__matplotlib-13989 on matplotlib-3.1.0.tar.gz, Python 3.7,
  ``pytest -rA lib/matplotlib/tests/test_axes.py`` (header and summary kept, the summary cut to the lines named in
  the test);
- ``sklearn_sdist_supervised_{empty,gold}.log``: scikit-learn__scikit-learn-10844 on scikit-learn-0.20.0.tar.gz,
  Python 3.6, ``pytest -rA sklearn/metrics/cluster/tests/test_supervised.py`` (whole logs).

Sandbox paths were replaced by ``/src/``. Every FAIL_TO_PASS and PASS_TO_PASS name of the instance is looked up
as the grader does (from ``../shared/data/swe-verified-dev-407.jsonl``).
"""

from __future__ import annotations

import pytest

from expagent.tasks import parsers
from expagent.tasks import patches

from test_parsers_logs import instance, log, statuses


def test_django_pagination_every_record_name_is_found_and_the_fail_to_pass_test_errors():
    record = instance("django__django-9296")
    text = log("django_sdist_pagination_v36.log")
    got = statuses("django/django", text, record["FAIL_TO_PASS"] + record["PASS_TO_PASS"])
    assert got == {"test_paginator_iteration (pagination.tests.PaginationTests)": "ERROR",
                   **{name: "PASSED" for name in record["PASS_TO_PASS"]}}
    # a test with a docstring is named by the docstring's first line, as the record names it
    assert got["Paginator.get_page() with an empty object_list."] == "PASSED"
    assert len(parsers.parse("django/django", text)) == 21


def test_django_migrate_progress_glued_to_a_test_line_is_not_part_of_its_name():
    # "  Applying sites.0002_alter_domain_unique...test_failing_migration (...) ... ok": migrate's progress,
    # left unterminated, ends where the next test's line starts
    results = parsers.parse("django/django", log("django_sdist_migrations_v36.log"))
    assert results["test_failing_migration (migrations.test_commands.MakeMigrationsTests)"] == "PASSED"
    assert not [name for name in results if "Applying" in name]
    # the test the gold patch fixes (the record's FAIL_TO_PASS names another one, see docs/tasks.md)
    assert results["test_makemigrations_consistency_checks_respect_routers "
                   "(migrations.test_commands.MakeMigrationsTests)"] == "ERROR"
    record = instance("django__django-7530")
    got = statuses("django/django", log("django_sdist_migrations_v36.log"),
                   record["FAIL_TO_PASS"] + record["PASS_TO_PASS"])
    assert got == {name: "PASSED" for name in record["FAIL_TO_PASS"] + record["PASS_TO_PASS"]}


def test_django_whole_suite_statuses_docstring_names_and_migrate_output_glued_to_setup_lines():
    text = log("django_sdist_fullsuite_v36.log")
    results = parsers.parse("django/django", text)
    assert results["test_inheritance_values_joins (model_inheritance_regress.tests.ModelInheritanceTest)"] == "XFAIL"
    assert results["test_custom_fields (inspectdb.tests.InspectDBTestCase)"] == "FAILED"
    # docstring-named tests: the name is the docstring's first line, on the line after the method's
    assert results["Year boundary tests (ticket #3689)"] == "PASSED"
    assert results["Introspection of column names consist/start with digits (#16536/#17676)"] == "PASSED"
    assert "test_year_boundaries (datatypes.tests.DataTypesTestCase)" not in results
    # "Applying sites.0002_alter_domain_unique...Creating test database for alias ..." names no test
    assert not [name for name in results if "Applying" in name or "Creating" in name]
    record = instance("django__django-10097")
    names = [n for n in record["FAIL_TO_PASS"] + record["PASS_TO_PASS"] if n in results]
    assert len(names) == 17
    assert statuses("django/django", text, names) == dict.fromkeys(names, "PASSED")
    assert statuses("django/django", text, record["FAIL_TO_PASS"]) == dict.fromkeys(record["FAIL_TO_PASS"], "MISSING")


def test_django_test_directives_are_runtests_module_labels():
    for instance_id, labels in (("django__django-9296", ["pagination.tests"]),
                                ("django__django-7530", ["migrations.test_commands"]),
                                ("django__django-10097", [])):  # only .txt data: the whole suite runs
        assert patches.test_directives(instance(instance_id)["test_patch"], "django/django") == labels
    record = instance("matplotlib__matplotlib-13989")
    assert patches.test_directives(record["test_patch"], record["repo"]) == ["lib/matplotlib/tests/test_axes.py"]


@pytest.mark.parametrize("name, f2p_status", [("matplotlib_sdist_axes_empty.log", "FAILED"),
                                              ("matplotlib_sdist_axes_gold.log", "PASSED")])
def test_matplotlib_axes_record_names_in_real_pytest_rA_output(name, f2p_status):
    # matplotlib__matplotlib-13989 on matplotlib-3.1.0.tar.gz, Python 3.7, system freetype 2.12 (so image comparisons
    # fail: none of them is in the record); the extract keeps the record's FAIL_TO_PASS and its first 40
    # PASS_TO_PASS lines of the summary (in the whole logs all 411 PASS_TO_PASS names pass, in both runs)
    record = instance("matplotlib__matplotlib-13989")
    text = log(name)
    assert statuses("matplotlib/matplotlib", text, record["FAIL_TO_PASS"]) == {
        "lib/matplotlib/tests/test_axes.py::test_hist_range_and_density": f2p_status}
    kept = record["PASS_TO_PASS"][:40]
    assert statuses("matplotlib/matplotlib", text, kept) == dict.fromkeys(kept, "PASSED")
    results = parsers.parse("matplotlib/matplotlib", text)
    assert results["lib/matplotlib/tests/test_axes.py::test_acorr[png]"] == "FAILED"
    assert results["lib/matplotlib/tests/test_axes.py::test_twin_axis_locators_formatters[png]"] == "FAILED"
    # "SKIPPED [1] file:line: reason" lines name no test
    assert not [n for n in results if n.startswith("[1]") or "Cannot compare" in n]


@pytest.mark.parametrize("name, f2p_status", [("sklearn_sdist_supervised_empty.log", "FAILED"),
                                              ("sklearn_sdist_supervised_gold.log", "PASSED")])
def test_sklearn_record_names_in_real_pytest_rA_output(name, f2p_status):
    # scikit-learn__scikit-learn-10844 on scikit-learn-0.20.0.tar.gz, Python 3.6 (whole logs)
    record = instance("scikit-learn__scikit-learn-10844")
    text = log(name)
    got = statuses("scikit-learn/scikit-learn", text, record["FAIL_TO_PASS"] + record["PASS_TO_PASS"])
    renamed = "sklearn/metrics/cluster/tests/test_supervised.py::test_non_consicutive_labels"
    # the release fixed the typo of that test's name after the base commit: the record's name is not in it
    assert got.pop(renamed) == "MISSING"
    assert parsers.parse("scikit-learn/scikit-learn", text)[renamed.replace("consicutive", "consecutive")] == "PASSED"
    assert got == {**dict.fromkeys([n for n in record["PASS_TO_PASS"] if n != renamed], "PASSED"),
                   record["FAIL_TO_PASS"][0]: f2p_status}
