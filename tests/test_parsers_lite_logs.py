"""The test-output parsers on real grade logs of the SWE-bench Lite repositories that Verified lacks.

Every extract in tests/data/logs/ named ``<repo>_<instance number>_{gold,empty}*.log`` was cut from the
``test_output.txt`` of a real grade by expagent's grader (``benchmarks/swe_lite_validation.py``, local backend,
the instance's environment and its install at ``base_commit``, the test patch applied): ``gold`` with the gold
patch (every FAIL_TO_PASS test passes), ``empty`` with no patch (FAIL_TO_PASS tests fail). Kept: the session
header, the progress lines (verbose ones only for graded tests), the head of the first failure, the summary
lines of the instance's graded tests (and of skipped / xfailed ones), the final line. Sandbox paths were
replaced by ``/src`` and ``/sandbox``.

Each test looks up every FAIL_TO_PASS and PASS_TO_PASS name of that instance (from
``../shared/data/swe-lite-dev-23.jsonl``, SWE-bench's names, cut at the first space) as the grader does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from expagent.tasks import logparse, parsers

LOGS = Path(__file__).resolve().parent / "data" / "logs"
LITE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "swe-lite-dev-23.jsonl"


def log(name: str) -> str:
    return (LOGS / name).read_text(encoding="utf-8")


def instance(instance_id: str) -> dict:
    if not LITE.is_file():
        pytest.skip(f"shared data not found at {LITE}")
    for line in LITE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["instance_id"] == instance_id:
            for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
                if isinstance(record[key], str):
                    record[key] = json.loads(record[key])
            return record
    raise AssertionError(f"{instance_id} not in {LITE}")


def graded(instance_id: str, repo: str, text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(FAIL_TO_PASS, PASS_TO_PASS) name -> status in ``text``, as the grader looks them up."""
    record = instance(instance_id)
    assert record["repo"] == repo
    results = parsers.parse(repo, text)
    return logparse.lookup(results, record["FAIL_TO_PASS"]), logparse.lookup(results, record["PASS_TO_PASS"])


def collected(text: str) -> int:
    return int(re.search(r"collected (\d+) items?", text).group(1))


def not_passing(statuses: dict[str, str]) -> dict[str, str]:
    return {name: status for name, status in statuses.items() if status not in logparse.PASSING}


# --- sqlfluff (pytest -rA) -------------------------------------------------------------------------------------------

def test_sqlfluff_sql_parameters_with_spaces_brackets_and_escapes():
    gold, empty = log("sqlfluff_1517_gold.log"), log("sqlfluff_1517_empty.log")
    results = parsers.parse("sqlfluff/sqlfluff", empty)
    assert len(results) == collected(empty) == 59
    base = "test/dialects/ansi_test.py::test__dialect__ansi_"
    # ids are kept whole: spaces, nested brackets, a "[" inside the parameter, pytest's escapes, " - "-free FAILED lines
    assert results[base + "specific_segment_parses[ExpressionSegment-my_array[OFFSET(1)]]"] == "PASSED"
    assert results[base + "specific_segment_not_parse[SELECT 1 + (2 -err_locations0]"] == "PASSED"
    assert results[base + "_file_lex[abc \\n \\t def  ;blah-res2]"] == "PASSED"
    assert results[base + "multiple_semicolons[;;-Line 1, Position 1: Found unparsable section: ';;']"] == "PASSED"
    assert results[base + "multiple_semicolons[select id from tbl;;-Could not parse: ;]"] == "FAILED"
    # the progress lines ("test/dialects/ansi_test.py ....FF.F  [100%]") are not tests
    assert not [name for name in results if not name.startswith(base)]

    f2p, p2p = graded("sqlfluff__sqlfluff-1517", "sqlfluff/sqlfluff", empty)
    # SWE-bench's name "...multiple_semicolons[select" stands for five ids; the last reported (a FAILED one) wins
    assert f2p == {base + "multiple_semicolons[select": "FAILED"}
    assert not not_passing(p2p) and len(p2p) == 42
    f2p, p2p = graded("sqlfluff__sqlfluff-1517", "sqlfluff/sqlfluff", gold)
    assert set(f2p.values()) == {"PASSED"} and not not_passing(p2p)


# --- marshmallow (setup.cfg adds -v: verbose lines, then the -rA summary) ---------------------------------------------

def test_marshmallow_verbose_and_summary_forms():
    verbose, summary = log("marshmallow_1359_gold_v.log"), log("marshmallow_1359_empty_rA.log")
    by_verbose = parsers.parse("marshmallow-code/marshmallow", verbose)
    by_summary = parsers.parse("marshmallow-code/marshmallow", summary)
    assert "PASSED tests/" not in verbose and "PASSED [" in verbose  # the gold extract keeps the -v lines only
    assert len(by_verbose) == len(by_summary) == collected(summary) == 77
    assert set(by_verbose) == set(by_summary)
    name = "tests/test_fields.py::TestErrorMessages::test_make_error[required-Missing data for required field.]"
    assert by_verbose[name] == by_summary[name] == "PASSED"
    # the last verbose line ends in "PASSED [100%]": a test, not the progress-marker name "[100%]"
    assert "[100%]" not in by_verbose
    assert by_verbose["tests/test_fields.py::TestDictNested::test_dict_nested_partial_propagated_to_nested"] == "PASSED"

    f2p, p2p = graded("marshmallow-code__marshmallow-1359", "marshmallow-code/marshmallow", summary)
    assert f2p == {"tests/test_fields.py::TestParentAndName::test_datetime_list_inner_format": "FAILED"}
    assert not not_passing(p2p) and len(p2p) == 76
    assert p2p["tests/test_fields.py::TestErrorMessages::test_make_error[required-Missing"] == "PASSED"
    f2p, p2p = graded("marshmallow-code__marshmallow-1359", "marshmallow-code/marshmallow", verbose)
    assert set(f2p.values()) == {"PASSED"} and not not_passing(p2p)


# --- pvlib (pytest -rA; a parameter with "/" and "+", a message cut to "Ty...", a warnings summary) -----------------

def test_pvlib_parameters_messages_and_warnings_section():
    gold, empty = log("pvlib_1072_gold.log"), log("pvlib_1072_empty.log")
    results = parsers.parse("pvlib/pvlib-python", empty)
    assert len(results) == collected(empty) == 19
    # "FAILED id - Ty..." : the message is not part of the id
    assert results["pvlib/tests/test_temperature.py::test_fuentes_timezone[Etc/GMT+5]"] == "FAILED"
    f2p, p2p = graded("pvlib__pvlib-python-1072", "pvlib/pvlib-python", empty)
    assert f2p == {"pvlib/tests/test_temperature.py::test_fuentes_timezone[Etc/GMT+5]": "FAILED"}
    assert not not_passing(p2p) and len(p2p) == 18
    f2p, p2p = graded("pvlib__pvlib-python-1072", "pvlib/pvlib-python", gold)
    assert set(f2p.values()) == {"PASSED"} and not not_passing(p2p)

    # a whole log: the failing test is also named, with no status, under "warnings summary"; its summary line counts
    whole = log("pvlib_1707_empty.log")
    assert "warnings summary" in whole and "\npvlib/tests/test_iam.py::test_physical_n1_L0\n" in whole
    results = parsers.parse("pvlib/pvlib-python", whole)
    assert len(results) == collected(whole) == 31
    assert not_passing(results) == {"pvlib/tests/test_iam.py::test_physical_n1_L0": "FAILED"}
    f2p, p2p = graded("pvlib__pvlib-python-1707", "pvlib/pvlib-python", whole)
    assert f2p == {"pvlib/tests/test_iam.py::test_physical_n1_L0": "FAILED"}
    assert not not_passing(p2p) and len(p2p) == 30
    assert p2p["pvlib/tests/test_iam.py::test_sapm[45-0.9975036250000002]"] == "PASSED"
