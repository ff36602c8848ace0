"""pytest output: the ``-rA`` short test summary and the verbose (``-v``) per-test lines.

Test ids are kept whole, including parametrized ids with spaces, brackets and ``::`` inside the
brackets (SWE-bench's own parsers split lines on whitespace, so its records hold the id cut at the
first space; ``expagent.tasks.logparse.lookup`` matches those).

A status line that carries no test id but a progress marker (``PASSED [100%]``,
``PASSED [ 50%]``: pytest's verbose output when a test printed before its status, often seen in
the captured output of pytest's own tests) is recorded under the first word after the status
(``[100%]``, ``[``), because that is the name SWE-bench's records give it. A captured log record at
error level (``ERROR    pkg:module.py:12 message`` under "Captured log call") is not a test.

Variants per repository family: ``parse_pytest_options`` shortens a parameter that is an absolute
path to its file name (pydicom, requests, pylint); ``parse_pytest_v2`` first removes ANSI colours
and control characters (astropy, scikit-learn, sphinx under tox); ``parse_matplotlib`` reads
``MouseButton.LEFT``/``RIGHT`` as ``1``/``3`` as in SWE-bench's records.
"""

from __future__ import annotations

import re

from expagent.tasks.parsers.status import STATUSES

_STATUS_WORDS = "|".join(STATUSES)
_SUMMARY_LINE = re.compile(rf"^({_STATUS_WORDS})\s+(.+)$")
_VERBOSE_LINE = re.compile(rf"^(\S+::\S.*?) ({_STATUS_WORDS})(?:\s+\[\s*\d+%\])?\s*$")
_SKIP_LOCATION = re.compile(r"^\[\d+\] ")
#: a captured log record ("ERROR    pkg:module.py:12 message", pytest's default log format pads the level to 8
#: characters); summary lines have one space after the status
_LOG_RECORD = "ERROR  "
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\[(\d+)m")
_CONTROL = str.maketrans("", "", "".join(chr(c) for c in range(1, 32) if c not in (9, 10)))


def split_id(rest: str) -> str:
    """The test id at the start of ``rest`` (the text after the status word).

    Failure lines read ``id - message``. An id ends at the first space unless it has a
    parameter part (``[...]``), which may contain spaces: then it ends at the ``]`` that is
    followed by `` - `` or the end of the line.
    """
    rest = rest.rstrip()
    bracket = rest.find("[")
    first_space = rest.find(" ")
    if bracket == -1 or (first_space != -1 and first_space < bracket):
        return rest if first_space == -1 else rest[:first_space]
    if rest.endswith("]") and " - " not in rest[bracket:]:
        return rest
    search_from = bracket
    while True:
        end = rest.find("] - ", search_from)
        if end == -1:
            return rest if rest.endswith("]") else rest.split(" ", 1)[0]
        # the id is balanced up to here: a "] - " inside a parameter is followed by more "]" text
        candidate = rest[: end + 1]
        if candidate.count("[") <= candidate.count("]") or rest.find("]", end + 1) == -1:
            return candidate
        search_from = end + 1


def _summary_entry(line: str) -> tuple[str, str] | None:
    match = _SUMMARY_LINE.match(line)
    if not match or line.startswith(_LOG_RECORD):
        return None
    status, rest = match.groups()
    if rest.startswith("["):
        if status == "SKIPPED" and _SKIP_LOCATION.match(rest):
            return None  # "SKIPPED [1] path.py:12: reason" names a location, not a test
        # a progress marker, not a test id: SWE-bench's name for it is the first word
        return rest.split()[0], status
    test_id = split_id(rest)
    return (test_id, status) if test_id else None


def parse_pytest(log: str) -> dict[str, str]:
    """Test id -> status from ``-rA`` summary lines and verbose ``id STATUS [ n%]`` lines; the last line wins."""
    results: dict[str, str] = {}
    for line in log.splitlines():
        entry = _summary_entry(line)
        if entry is None:
            verbose = _VERBOSE_LINE.match(line)
            entry = (verbose.group(1), verbose.group(2)) if verbose else None
        if entry is not None:
            results[entry[0]] = entry[1]
    return results


_OPTION = re.compile(r"(.*?)\[(.*)\]$")


def parse_pytest_options(log: str) -> dict[str, str]:
    results = {}
    for test_id, status in parse_pytest(log).items():
        match = _OPTION.match(test_id)
        if match:
            main, option = match.groups()
            if option.startswith("/") and not option.startswith("//") and "*" not in option:
                option = "/" + option.split("/")[-1]
            test_id = f"{main}[{option}]"
        results[test_id] = status
    return results


def strip_colour(log: str) -> str:
    return "\n".join(_ANSI.sub("", line).translate(_CONTROL) for line in log.splitlines())


def parse_pytest_v2(log: str) -> dict[str, str]:
    return parse_pytest(strip_colour(log))


def parse_matplotlib(log: str) -> dict[str, str]:
    return parse_pytest(log.replace("MouseButton.LEFT", "1").replace("MouseButton.RIGHT", "3"))
