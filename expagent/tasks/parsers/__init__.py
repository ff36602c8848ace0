"""Per-repository test-output parsers: test name -> status, with SWE-bench's test names.

One module per test-runner family: ``pytest`` (``-rA`` summary and verbose lines, and the
variants SWE-bench uses per repository), ``django`` (``runtests.py --verbosity 2``), ``sympy``
(``bin/test --verbose``). Statuses are those of ``status.STATUSES``.

``get_parser(name)`` returns a parser by name (the ``parser`` setting of an environment
recipe); ``parser_for_repo(repo)`` by repository, for every Python repository of SWE-bench
(an unknown repository gets the plain pytest parser, as in the official harness);
``parse(repo, log)`` parses in one call.
"""

from __future__ import annotations

from typing import Callable

from expagent.tasks.parsers.django import parse_django
from expagent.tasks.parsers.pytest import (
    parse_matplotlib,
    parse_pytest,
    parse_pytest_options,
    parse_pytest_v2,
)
from expagent.tasks.parsers.status import FAILING, MISSING, PASSING, STATUSES
from expagent.tasks.parsers.sympy import parse_sympy

Parser = Callable[[str], dict[str, str]]

PARSERS: dict[str, Parser] = {
    "pytest": parse_pytest,
    "pytest_options": parse_pytest_options,
    "pytest_v2": parse_pytest_v2,
    "matplotlib": parse_matplotlib,
    # seaborn's runs are plain pytest ones (-rA, --no-header); the pytest parser reads both their forms
    "seaborn": parse_pytest,
    "django": parse_django,
    "sympy": parse_sympy,
}

#: parser name per repository: the 18 Python repositories of SWE-bench (Lite, Verified and the full set)
REPO_PARSERS: dict[str, str] = {
    "astropy/astropy": "pytest_v2",
    "django/django": "django",
    "marshmallow-code/marshmallow": "pytest",
    "matplotlib/matplotlib": "matplotlib",
    "mwaskom/seaborn": "seaborn",
    "pallets/flask": "pytest",
    "psf/requests": "pytest_options",
    "pvlib/pvlib-python": "pytest",
    "pydata/xarray": "pytest",
    "pydicom/pydicom": "pytest_options",
    "pylint-dev/astroid": "pytest",
    "pylint-dev/pylint": "pytest_options",
    "pytest-dev/pytest": "pytest",
    "pyvista/pyvista": "pytest",
    "scikit-learn/scikit-learn": "pytest_v2",
    "sphinx-doc/sphinx": "pytest_v2",
    "sqlfluff/sqlfluff": "pytest",
    "sympy/sympy": "sympy",
}

DEFAULT = "pytest"

__all__ = [
    "FAILING", "MISSING", "PARSERS", "PASSING", "REPO_PARSERS", "STATUSES",
    "get_parser", "parse", "parser_for_repo", "parser_name_for_repo",
]


def get_parser(name: str) -> Parser:
    from expagent.errors import ExpagentError

    try:
        return PARSERS[name]
    except KeyError:
        raise ExpagentError(
            f"unknown test-output parser {name!r} (available: {', '.join(sorted(PARSERS))})"
        ) from None


def parser_name_for_repo(repo: str) -> str:
    return REPO_PARSERS.get(repo, DEFAULT)


def parser_for_repo(repo: str) -> Parser:
    return PARSERS[parser_name_for_repo(repo)]


def parse(repo: str, log: str) -> dict[str, str]:
    """Test name -> status for ``log``, the output of ``repo``'s test command."""
    return parser_for_repo(repo)(log)
