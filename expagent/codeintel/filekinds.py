"""What kind of file a repository path is: a test, code, or peripheral (tests, docs, examples, benchmarks).

One answer for every package: memory keys (source vs test files of a patch), verification (the test part of a
patch), synthesis (which files pytest collects), the repo map (what an outline should not lead with).
"""

from __future__ import annotations

import os

CODE_EXTENSIONS = frozenset({".py", ".pyi", ".js", ".jsx", ".mjs", ".ts", ".tsx", ".go", ".rs", ".java", ".c", ".h",
                             ".cc", ".cpp", ".hpp", ".rb", ".php", ".cs", ".kt", ".swift", ".scala"})
TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec"})
DOC_DIRS = frozenset({"doc", "docs", "example", "examples", "bench", "benchmarks"})


def is_pytest_file(path: str) -> bool:
    """A file pytest collects by default: ``test_*.py`` or ``*_test.py``."""
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def is_test_name(name: str) -> bool:
    """A file name that says "test" in any of the usual conventions (Python, Go, JavaScript/TypeScript)."""
    return (is_pytest_file(name) or name.startswith("test_") or name.endswith("_test.go") or ".test." in name
            or ".spec." in name or name == "conftest.py")


def is_test_path(path: str) -> bool:
    """A test file: under a test directory, or named as one (``tests/x.py``, ``pkg/test_x.py``, ``x_test.go``)."""
    parts = path.replace("\\", "/").split("/")
    return bool(TEST_DIRS.intersection(parts[:-1])) or is_test_name(parts[-1])


def is_code_path(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in CODE_EXTENSIONS


def is_peripheral(path: str) -> bool:
    """Tests, docs, examples and benchmarks: useful when asked for, not what an outline of the code leads with."""
    return is_test_path(path) or bool(DOC_DIRS.intersection(path.split("/")[:-1]))
