"""The validation scripts' classification of records the official harness does not grade as valid either
(``benchmarks/swe_harness_gold_failures.json``, read by ``swe_verified_validation``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import swe_verified_validation as verified  # noqa: E402


def _row(instance_id: str, cause: str, why: str = "empty patch resolves") -> dict:
    return {"instance_id": instance_id, "status": "graded", "gold": True, "empty": cause == "empty resolves",
            "cause": cause, "why": why}


def test_a_row_with_the_defects_outcome_is_reclassified_and_names_the_report():
    row = _row("django__django-7530", "empty resolves")
    verified.mark_upstream_defect(row)
    assert row["cause"] == verified.KNOWN_DEFECT
    assert row["why"].startswith("empty patch resolves; official harness: record defect")
    assert "(SWE-bench#502)" in row["why"]
    # merging the part again leaves it as it is
    verified.mark_upstream_defect(row)
    assert row["why"].count("#502") == 1


def test_only_the_defects_own_outcome_is_reclassified():
    # the same instance validating (or failing otherwise) is the grader's verdict, not the known defect's
    for cause in ("", "tests: gold not passing", "environment build"):
        row = _row("django__django-7530", cause, why="x")
        verified.mark_upstream_defect(row)
        assert row["cause"] == cause and row["why"].startswith("x; official harness:")  # named, kept
    # another instance whose empty patch resolves is not a known record defect
    row = _row("django__django-9296", "empty resolves")
    verified.mark_upstream_defect(row)
    assert row["cause"] == "empty resolves"


def test_the_summary_counts_the_defect_apart_from_empty_resolves():
    rows = [_row("django__django-7530", "empty resolves"), _row("django__django-9296", "empty resolves")]
    for row in rows:
        verified.mark_upstream_defect(row)
    assert verified.summarize([{**r, "repo": "django/django"} for r in rows])["failures_by_cause"] == {
        verified.KNOWN_DEFECT: 1, "empty resolves": 1}


def test_a_known_gold_failure_without_a_stated_cause_only_names_the_report():
    row = {"instance_id": "django__django-10097", "status": "graded", "gold": False, "empty": False, "ok": False,
           "cause": "tests: gold not passing", "why": "16 required test(s) not passing"}
    verified.mark_upstream_defect(row)
    assert row["cause"] == "tests: gold not passing"
    assert row["why"].startswith("16 required test(s) not passing; official harness: gold unresolved")
    verified.mark_upstream_defect(row)
    assert row["why"].count("sb-cli#15") == 1
    # a row that validates is not touched
    ok = {"instance_id": "django__django-10097", "ok": True, "cause": "", "why": ""}
    verified.mark_upstream_defect(ok)
    assert ok["why"] == ""


def test_agreement_with_the_harness_counts_its_own_verdicts_on_known_instances_only():
    def graded(instance_id, gold, empty):
        return {"instance_id": instance_id, "repo": instance_id.split("__")[0], "status": "graded", "gold": gold,
                "empty": empty, "ok": gold and not empty, "cause": "" if gold and not empty else "x"}

    rows = [graded("psf__requests-1142", True, False),     # valid
            graded("psf__requests-1724", False, False),    # the harness fails gold too: agrees
            graded("django__django-7530", True, True),     # the harness resolves empty too: agrees
            graded("pylint-dev__pylint-4551", False, False),  # not known: a real failure
            graded("psf__requests-1766", True, True),      # known, but not the harness's verdicts
            {"instance_id": "django__django-10097", "repo": "django", "status": "unavailable", "cause": "u"}]
    assert [verified.harness_agrees(r) for r in rows] == [True, True, True, False, False, False]
    s = verified.summarize(rows)
    assert (s["valid"], s["agrees_with_harness"]) == (1, 3)
    assert s["harness_gold_fails_in_sample"] == ["django__django-10097", "django__django-7530",
                                                 "psf__requests-1724", "psf__requests-1766"]


def test_every_known_instance_names_its_reports_and_the_harness_verdicts():
    known = verified.HARNESS_GOLD_FAILS
    for instance_id, entry in known["instances"].items():
        assert entry["sources"] and all(src in known["sources"] for src in entry["sources"]), instance_id
        assert set(entry["harness"]) == {"gold", "empty"} and entry["reason"]
        assert not (entry["harness"]["gold"] and not entry["harness"]["empty"])  # that would be valid
