"""The statuses every parser reports, and how grading reads them."""

from __future__ import annotations

STATUSES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
PASSING = frozenset({"PASSED", "XFAIL", "XPASS"})
FAILING = frozenset({"FAILED", "ERROR"})
MISSING = "MISSING"  # the test did not run (or its result line was not found)
