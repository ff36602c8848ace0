"""Django's test runner (``./tests/runtests.py --verbosity 2``): unittest's verbose lines.

A result line reads ``NAME ... STATUS``; NAME is ``test_x (module.Class)`` (Python before 3.11),
``test_x (module.Class.test_x)`` (3.11 and later), or, for a test with a docstring, the
docstring's first line, printed on the line after ``test_x (...)``: SWE-bench's records name
such tests by that line, and so does this parser. STATUS is ``ok``, ``FAIL``, ``ERROR``,
``skipped 'why'``, ``expected failure`` or ``unexpected success``. When the test writes output
of its own, the status comes on a later line after that output (``NAME ... some output`` then
``ok``); it is given to the last NAME seen.

``FAIL: NAME`` and ``ERROR: NAME`` headers of the failure report confirm a failure.

A test that runs ``migrate`` may leave the command's progress unterminated (``  Applying
sites.0002_alter_domain_unique...`` with no ``OK`` or newline), so the next test's line starts with it:
that prefix is not part of the name.
"""

from __future__ import annotations

import re

_SEPARATOR = " ... "
_RESULTS = (
    ("ok", "PASSED"),
    ("OK", "PASSED"),
    ("FAIL", "FAILED"),
    ("ERROR", "ERROR"),
    ("expected failure", "XFAIL"),
    ("unexpected success", "FAILED"),
)
_SKIPPED = re.compile(r"^skipped\b")
_REPORT_HEADER = re.compile(r"^(FAIL|ERROR): (.+)$")
#: migrate's progress left unterminated by a test, glued to the next test's name
_MIGRATE_PROGRESS = re.compile(r"^(?:(?:Un)?[Aa]pplying [\w.]+|Rendering model states)\.\.\.(?: OK| DONE)?(?=\S)")


def _status(text: str) -> str | None:
    """The status a result word (the text after `` ... `` or alone on a line) stands for."""
    text = text.strip()
    for word, status in _RESULTS:
        if text == word:
            return status
    if _SKIPPED.match(text):
        return "SKIPPED"
    return None


def parse_django(log: str) -> dict[str, str]:
    results: dict[str, str] = {}
    pending: str | None = None  # a test whose line ended in output instead of a status
    for raw in log.splitlines():
        line = raw.strip()
        header = _REPORT_HEADER.match(line)
        if header:
            name = header.group(2).strip()
            results[name] = "FAILED" if header.group(1) == "FAIL" else "ERROR"
            pending = None
            continue
        if _SEPARATOR in line or line.endswith(" ..."):
            name, _, rest = line.partition(" ...")
            name = _MIGRATE_PROGRESS.sub("", name.strip())
            status = _status(rest)
            if status is not None:
                results[name] = status
                pending = None
            else:
                pending = name
            continue
        if pending is not None:
            status = _status(line)
            if status is not None:
                results[pending] = status
                pending = None
    return results
