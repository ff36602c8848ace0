"""Per-test results from test-runner output.

Every parser maps test id -> status, one of ``PASSED FAILED ERROR SKIPPED XFAIL XPASS``.

* ``pytest``: the short test summary of ``pytest -rA``. Test ids are kept whole, including
  parametrized ids with spaces, brackets and ``::`` inside the brackets.
* ``pytest_options``: as ``pytest``, but a parameter that is an absolute path is shortened to its
  file name (SWE-bench's parser for pydicom, requests, pylint).
* ``pytest_v2``: as ``pytest``, after removing ANSI colour codes; also reads the
  ``path::test STATUS`` lines of old pytest versions (SWE-bench's parser for sphinx, astropy).

SWE-bench's own parsers split lines on whitespace, so the test names in SWE-bench records are
cut at the first space (``test_x[select``). ``lookup`` matches such truncated names too.
"""

from __future__ import annotations

import re
from typing import Callable

STATUSES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
PASSING = frozenset({"PASSED", "XFAIL", "XPASS"})
FAILING = frozenset({"FAILED", "ERROR"})
MISSING = "MISSING"  # the test did not run (or its result line was not found)

_SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (.+)$")
_OLD_STYLE_LINE = re.compile(r"^(\S+::\S.*?) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s*(?:\[\s*\d+%\])?$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\[(\d+)m")
_SKIP_LOCATION = re.compile(r"^\[\d+\] ")


def _split_id(rest: str) -> str:
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


def parse_pytest(log: str) -> dict[str, str]:
    results: dict[str, str] = {}
    for line in log.splitlines():
        match = _SUMMARY_LINE.match(line)
        if not match:
            continue
        status, rest = match.groups()
        if status == "SKIPPED" and _SKIP_LOCATION.match(rest):
            # "SKIPPED [1] path.py:12: reason" names a location, not a test id
            continue
        test_id = _split_id(rest)
        if test_id:
            results[test_id] = status
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


def parse_pytest_v2(log: str) -> dict[str, str]:
    escapes = "".join(chr(c) for c in range(1, 32) if c not in (9, 10))
    clean_lines = []
    for line in log.splitlines():
        line = _ANSI.sub("", line).translate(str.maketrans("", "", escapes))
        clean_lines.append(line)
    results = {}
    for line in clean_lines:
        match = _OLD_STYLE_LINE.match(line)
        if match:
            results[match.group(1)] = match.group(2)
    results.update(parse_pytest("\n".join(clean_lines)))
    return results


PARSERS: dict[str, Callable[[str], dict[str, str]]] = {
    "pytest": parse_pytest,
    "pytest_options": parse_pytest_options,
    "pytest_v2": parse_pytest_v2,
}


def get_parser(name: str) -> Callable[[str], dict[str, str]]:
    from expagent.errors import ExpagentError

    try:
        return PARSERS[name]
    except KeyError:
        raise ExpagentError(
            f"unknown test-output parser {name!r} (available: {', '.join(sorted(PARSERS))})"
        ) from None


def swebench_key(test_id: str) -> str:
    """The name SWE-bench's whitespace-splitting parsers give a test: the id up to its first space."""
    return test_id.split()[0] if test_id.split() else test_id


def lookup(results: dict[str, str], names: list[str]) -> dict[str, str]:
    """Status of each expected test name; ``MISSING`` when it did not run.

    A name matches a test id exactly, or else as SWE-bench's truncated form of it; when several
    ids truncate to the same name the last one reported wins, as in SWE-bench.
    """
    truncated: dict[str, str] = {}
    for test_id, status in results.items():
        key = swebench_key(test_id)
        if key != test_id:
            truncated[key] = status
    out = {}
    for name in names:
        if name in results:
            out[name] = results[name]
        elif name in truncated:
            out[name] = truncated[name]
        else:
            out[name] = MISSING
    return out
