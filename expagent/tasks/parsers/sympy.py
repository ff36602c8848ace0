"""sympy's ``bin/test --verbose``: one ``test_name STATUS`` line per test, grouped by file.

STATUS is ``ok``, ``F`` (failed), ``E`` (exception; ``T`` a timeout), ``f`` (expected failure),
``X`` (unexpected pass), or a skip (``s``, ``w`` for slow, ``K``), which may follow a reason
(``test_x Slow w``). The last test of a file carries the file's verdict at the end of its line
(``test_y ok      [FAIL]``); that marker is not the test's status.
"""

from __future__ import annotations

import re

_STATUS = {
    "ok": "PASSED",
    "F": "FAILED",
    "E": "ERROR",
    "T": "ERROR",
    "f": "XFAIL",
    "X": "XPASS",
    "s": "SKIPPED",
    "w": "SKIPPED",
    "K": "SKIPPED",
}
_FILE_VERDICT = re.compile(r"\s+\[(?:OK|FAIL)\]$")
_TEST_NAME = re.compile(r"^test_\w*$")


def parse_sympy(log: str) -> dict[str, str]:
    results: dict[str, str] = {}
    for raw in log.splitlines():
        words = _FILE_VERDICT.sub("", raw.strip()).split()
        if len(words) >= 2 and _TEST_NAME.match(words[0]) and words[-1] in _STATUS:
            results[words[0]] = _STATUS[words[-1]]
    return results
