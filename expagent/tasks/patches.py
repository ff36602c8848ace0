"""Which files of a task's test patch are tests to run (the file list itself: ``expagent.patchutil``)."""

from __future__ import annotations

from expagent.patchutil import patch_files

# files in a test patch that are data, not tests to run (SWE-bench's list)
NON_TEST_EXTS = (".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml")


def test_directives(test_patch: str, repo: str = "") -> list[str]:
    """The test files to run for a task: the files its test patch touches, minus data files.

    Django's ``runtests.py`` takes test modules, not paths, as the harness passes them:
    ``tests/migrations/test_commands.py`` is ``migrations.test_commands``.
    """
    paths = [path for path in patch_files(test_patch) if not path.endswith(NON_TEST_EXTS)]
    if repo == "django/django":
        return [_django_label(path) for path in paths]
    return paths


def _django_label(path: str) -> str:
    path = path[: -len(".py")] if path.endswith(".py") else path
    path = path[len("tests/"):] if path.startswith("tests/") else path
    return path.replace("/", ".")
