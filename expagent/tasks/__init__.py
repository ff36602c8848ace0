"""Task suites, grading and reports (see docs/tasks.md).

The public API is importable from here; each name is loaded on first use, so importing this
package costs nothing at CLI start-up:

- ``load_suite(path) -> Suite``                       (expagent.tasks.suite)
- ``resolve_repo(suite, repo, repos_dir=None) -> Path`` and ``prepare_checkout(task, dest)``
                                                        (expagent.tasks.repos)
- ``ensure_env(task, ...) -> Env`` and ``build_env(recipe, repo, source, env_commit)``
                                                        (expagent.tasks.envs)
- ``grade(task, patch_text, *, sandbox_kind="local", repos_dir=None, settings=None) -> GradeResult``
                                                        (expagent.tasks.grader)
- ``ResultRow``, ``read_results``, ``append_result``  (expagent.tasks.results)
- ``write_report(runs, out)``, ``load_run(path)``     (expagent.tasks.report)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_suite": "suite", "Suite": "suite", "Task": "suite", "EnvRecipe": "suite", "SuiteError": "suite",
    "resolve_repo": "repos", "prepare_checkout": "repos", "RepoUnavailable": "repos",
    "ensure_env": "envs", "build_env": "envs", "Env": "envs", "EnvBuildError": "envs",
    "grade": "grader", "GradeResult": "grader",
    "ResultRow": "results", "read_results": "results", "append_result": "results",
    "write_report": "report", "load_run": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'expagent.tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(f"expagent.tasks.{module}"), name)
