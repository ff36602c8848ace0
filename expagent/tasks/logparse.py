"""Per-test results from test-runner output, and how SWE-bench's test names are looked up in them.

The parsers themselves live in ``expagent.tasks.parsers`` (one module per test runner, a
registry by parser name and by repository); this module keeps the names the grader uses:
``get_parser(name)``, ``parser_for_repo(repo)``, the status constants, and ``lookup``.

SWE-bench's own parsers split lines on whitespace, so the test names in SWE-bench records are
cut at the first space (``test_x[select``). ``lookup`` matches such truncated names too.
"""

from __future__ import annotations

from expagent.tasks.parsers import (  # noqa: F401  (the public names of this module)
    FAILING,
    MISSING,
    PARSERS,
    PASSING,
    STATUSES,
    get_parser,
    parse,
    parser_for_repo,
    parser_name_for_repo,
)
from expagent.tasks.parsers.django import parse_django  # noqa: F401
from expagent.tasks.parsers.pytest import (  # noqa: F401
    parse_matplotlib,
    parse_pytest,
    parse_pytest_options,
    parse_pytest_v2,
)
from expagent.tasks.parsers.sympy import parse_sympy  # noqa: F401


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
