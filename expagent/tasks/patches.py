"""Small helpers about unified diffs: which files a patch touches, which of them are tests."""

from __future__ import annotations

import re

_DIFF_HEADER = re.compile(r"^diff --git a/(.*?) b/(.*)$", re.M)
# files in a test patch that are data, not tests to run (SWE-bench's list)
NON_TEST_EXTS = (".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml")


def patched_files(patch: str) -> list[str]:
    """Paths (post-image) of every file a git-style patch touches, in order, without duplicates."""
    seen: dict[str, None] = {}
    for match in _DIFF_HEADER.finditer(patch):
        seen.setdefault(match.group(2).strip(), None)
    return list(seen)


def test_directives(test_patch: str) -> list[str]:
    """The test files to run for a task: the files its test patch touches, minus data files."""
    return [path for path in patched_files(test_patch) if not path.endswith(NON_TEST_EXTS)]
