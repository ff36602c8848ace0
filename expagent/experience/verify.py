"""Verified outcomes: the verdict on a run comes from tests, never from the model's opinion.

For ``expagent fix``: the repository's test command (configured, or detected) runs in the
sandbox twice after the agent has finished: once on the base commit plus the test files the agent
wrote or changed (its reproduction), once with the whole patch. Per-test results (pytest) decide:

- a test that passes only with the patch and no test that the patch breaks -> ``resolved``;
- a test that the patch breaks -> ``unresolved``;
- nothing discriminates (all pass both times, no test command, no patch) -> ``unknown``.

For tasks with FAIL_TO_PASS / PASS_TO_PASS the grader's verdict is used (``verdict_from_grade``).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from expagent.codeintel.history import is_test_path
from expagent.fsutil import atomic_write_text

_PYTEST_MARKERS = ("pytest.ini", "conftest.py", "tox.ini")


def detect_test_command(repo: Path) -> str | None:
    """A test command for a repository checkout, from what it contains; None when nothing is recognisable."""
    repo = Path(repo)
    pyproject = repo / "pyproject.toml"
    setup_cfg = repo / "setup.cfg"
    if (
        any((repo / name).exists() for name in _PYTEST_MARKERS)
        or (pyproject.is_file() and "[tool.pytest" in pyproject.read_text(errors="replace"))
        or (setup_cfg.is_file() and "[tool:pytest]" in setup_cfg.read_text(errors="replace"))
        or (repo / "tests").is_dir()
        or (repo / "test").is_dir()
        or any(repo.glob("test_*.py"))
        or any(repo.glob("*_test.py"))
    ):
        return "python -m pytest -rA -q -p no:cacheprovider"
    if (repo / "package.json").is_file():
        try:
            scripts = json.loads((repo / "package.json").read_text()).get("scripts", {})
        except (json.JSONDecodeError, OSError):
            scripts = {}
        if "test" in scripts:
            return "npm test --silent"
    if (repo / "Cargo.toml").is_file():
        return "cargo test --offline"
    if (repo / "go.mod").is_file():
        return "go test ./..."
    return None


def split_patch(patch: str) -> tuple[str, str, list[str]]:
    """(test part, source part, test files) of a unified git diff."""
    chunks: list[str] = []
    current: list[str] = []
    for line in patch.splitlines(keepends=True):
        if line.startswith("diff --git ") and current:
            chunks.append("".join(current))
            current = []
        current.append(line)
    if current:
        chunks.append("".join(current))
    tests, sources, test_files = [], [], []
    for chunk in chunks:
        header = chunk.split("\n", 1)[0]
        path = header.split(" b/", 1)[-1] if " b/" in header else ""
        if path and is_test_path(path):
            tests.append(chunk)
            test_files.append(path)
        else:
            sources.append(chunk)
    return "".join(tests), "".join(sources), test_files


def _results(output: str) -> dict[str, str]:
    from expagent.tasks.logparse import parse_pytest

    try:
        return parse_pytest(output)
    except Exception:  # an unparsable log falls back to exit codes
        return {}


def _passed(status: str) -> bool:
    return status in ("PASSED", "XFAIL", "XPASS", "SKIPPED")


def decide(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, str, list[str], list[str]]:
    """(verdict, reason, fixed tests, broken tests) from two test runs."""
    b, a = before["results"], after["results"]
    if a:
        fixed = sorted(t for t, s in a.items() if _passed(s) and not _passed(b.get(t, "MISSING")))
        broken = sorted(t for t, s in a.items() if not _passed(s) and _passed(b.get(t, "FAILED")))
        if broken:
            return "unresolved", f"{len(broken)} test(s) fail only with the patch", fixed, broken
        still_failing = sorted(t for t, s in a.items() if not _passed(s))
        if fixed and not still_failing:
            return "resolved", f"{len(fixed)} test(s) pass only with the patch; all others pass", fixed, broken
        if fixed:
            return "unknown", f"{len(fixed)} test(s) fixed but {len(still_failing)} still failing", fixed, broken
        return "unknown", "no test discriminates between before and after the patch", fixed, broken
    if before["exit_code"] != 0 and after["exit_code"] == 0:
        return "resolved", "the test command fails before the patch and passes after it", [], []
    if before["exit_code"] == 0 and after["exit_code"] != 0:
        return "unresolved", "the test command passes before the patch and fails after it", [], []
    return "unknown", "the test command's result does not change with the patch", [], []


class Verifier:
    """Runs the repository's tests in the sandbox before and after the patch (``after_run`` hook of a run)."""

    def __init__(self, test_command: str | None, timeout: float):
        self.test_command = test_command
        self.timeout = timeout

    def _run_tests(self, sandbox, command: str) -> dict[str, Any]:
        result = sandbox.run(command, timeout=self.timeout)
        return {"exit_code": result.exit_code, "timed_out": result.timed_out, "results": _results(result.output),
                "tail": result.output[-2000:]}

    def after_run(self, sandbox, run_result, checkout: Path | None = None) -> dict[str, Any]:
        """``checkout``: the sandbox's checkout as a host directory (``sandbox.view``), where the test command
        is detected when none is configured."""
        patch = run_result.patch
        command = self.test_command or (detect_test_command(checkout) if checkout is not None else None)
        if not patch.strip():
            return {"verdict": "unknown", "method": "none", "reason": "no patch to verify"}
        if not command:
            return {"verdict": "unknown", "method": "none",
                    "reason": "no test command configured or detected (set test_command)"}
        test_part, _source, test_files = split_patch(patch)
        base = shlex.quote(sandbox.base_commit)
        sandbox.write_file(".git/expagent-full.patch", patch)
        sandbox.write_file(".git/expagent-tests.patch", test_part)
        restore = "git reset -q --hard {0} && git clean -qfd && git apply --whitespace=nowarn {1}"
        # before: the base commit plus the agent's own tests (its reproduction), without the fix
        setup = sandbox.run(restore.format(base, ".git/expagent-tests.patch") if test_part else
                            f"git reset -q --hard {base} && git clean -qfd", timeout=120)
        if setup.exit_code != 0:
            return {"verdict": "unknown", "method": "tests", "reason": f"could not set up the before state: "
                    f"{setup.output.strip()[-200:]}"}
        before = self._run_tests(sandbox, command)
        back = sandbox.run(restore.format(base, ".git/expagent-full.patch"), timeout=120)
        if back.exit_code != 0:
            return {"verdict": "unknown", "method": "tests", "reason": "could not restore the patched state"}
        after = self._run_tests(sandbox, command)
        verdict, reason, fixed, broken = decide(before, after)
        return {
            "verdict": verdict, "method": "tests", "reason": reason, "test_command": command,
            "reproduction_files": test_files, "fixed": fixed, "broken": broken,
            "before": {k: v for k, v in before.items() if k != "results"} | {"tests": len(before["results"])},
            "after": {k: v for k, v in after.items() if k != "results"} | {"tests": len(after["results"])},
        }


def make_verifier(settings) -> Verifier:
    return Verifier(settings.test_command, timeout=max(settings.command_timeout, 60.0))


def verdict_from_grade(graded) -> dict[str, Any]:
    """The grader's result (FAIL_TO_PASS / PASS_TO_PASS) as a verdict."""
    return {
        "verdict": "resolved" if graded.resolved else "unresolved",
        "method": "grader",
        "reason": graded.reason or ("all FAIL_TO_PASS and PASS_TO_PASS tests pass" if graded.resolved else ""),
        "fail_to_pass": graded.fail_to_pass,
        "pass_to_pass": graded.pass_to_pass,
        "patch_applied": graded.patch_applied,
    }


def record_outcome(trajectory_path: Path, verdict: dict[str, Any]) -> None:
    """Write the verdict into a saved trajectory (atomically)."""
    data = json.loads(Path(trajectory_path).read_text())
    data["outcome"] = verdict
    atomic_write_text(trajectory_path, json.dumps(data, ensure_ascii=False, default=str) + "\n")
