"""Grading a candidate patch with the task's own tests (the SWE-bench definition of resolved).

``grade(task, patch_text)``:

1. resolves the repository and the cached environment for the task's (repo, version);
2. opens a sandbox holding a fresh checkout at ``base_commit`` and runs the recipe's
   ``checkout_setup`` commands;
3. applies the candidate patch (``git apply``, then ``patch --fuzz=5`` as SWE-bench does);
4. resets the test files to ``base_commit`` and applies the test patch;
5. runs the test command on the test patch's files, parses per-test statuses, and checks
   FAIL_TO_PASS and PASS_TO_PASS.

Resolved (SWE-bench): every FAIL_TO_PASS and every PASS_TO_PASS test passes (PASSED, XFAIL or
XPASS); a FAILED, ERROR or MISSING test is a failure; a SKIPPED one counts for neither. A patch
that does not apply, or tests that outlive the timeout, are not resolved; ``reason`` says why.
Harness problems that are not the patch's fault (unknown repository, missing interpreter,
environment build failure) raise ``ExpagentError`` subclasses instead.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from expagent import paths
from expagent.errors import ExpagentError
from expagent.fsutil import atomic_write_json, atomic_write_text
from expagent.tasks import logparse
from expagent.tasks.patches import patched_files

if TYPE_CHECKING:
    from expagent.sandbox.config import SandboxConfig

_WORK = ".expagent-grade"  # scratch directory inside the checkout for the patch files


@dataclass
class GradeResult:
    instance_id: str
    resolved: bool
    patch_applied: bool
    reason: str
    fail_to_pass: dict[str, str] = field(default_factory=dict)
    pass_to_pass: dict[str, str] = field(default_factory=dict)
    log_path: str | None = None
    # seconds: resolve, env (env_build when built now), checkout, apply, tests, cleanup, parse, total
    durations: dict[str, float] = field(default_factory=dict)
    test_exit_code: int | None = None
    timed_out: bool = False
    sandbox: str = "local"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def harness_seconds(self) -> float:
        """Time spent outside the test command (and outside an env build)."""
        d = self.durations
        return max(0.0, d.get("total", 0.0) - d.get("tests", 0.0) - d.get("env_build", 0.0))


def test_command(recipe, test_files: list[str]) -> str:
    """The recipe's test command with the test files in place of ``{tests}`` (appended when absent)."""
    files = " ".join(shlex.quote(f) for f in test_files)
    if "{tests}" in recipe.test_cmd:
        return recipe.test_cmd.replace("{tests}", files)
    return f"{recipe.test_cmd} {files}".strip()


def evaluate(task, results: dict[str, str]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Per-test statuses of FAIL_TO_PASS and PASS_TO_PASS, and the names of the failing ones."""
    f2p = logparse.lookup(results, task.fail_to_pass)
    p2p = logparse.lookup(results, task.pass_to_pass)
    failing = [name for name, status in {**f2p, **p2p}.items()
               if status in logparse.FAILING or status == logparse.MISSING]
    return f2p, p2p, failing


def _default_log_dir(task) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return paths.cache_dir() / "grades" / f"{task.instance_id}-{stamp}-{time.monotonic_ns() % 100000}"


def _tail(text: str, lines: int = 3) -> str:
    body = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(body[-lines:])[-300:]


def _apply_candidate(sb, patch_text: str) -> tuple[bool, str]:
    sb.write_file(f"{_WORK}/candidate.patch", patch_text if patch_text.endswith("\n") else patch_text + "\n")
    p = f"{_WORK}/candidate.patch"
    result = sb.run(f"git apply --verbose {p} || patch --batch --fuzz=5 -p1 -i {p}", timeout=120)
    if result.exit_code != 0:
        return False, _tail(result.output)
    return True, ""


def _reset_and_apply_tests(sb, task) -> tuple[bool, str]:
    if not task.test_patch.strip():
        return True, ""  # synthesized tasks: the tests are already in the base commit
    base = shlex.quote(task.base_commit)
    lines = []
    for path in patched_files(task.test_patch):
        q = shlex.quote(path)
        # a test file that exists at base is reset to it; one that does not is removed, so the test patch can add it
        lines.append(f"if git cat-file -e {base}:{q} 2>/dev/null; then git checkout -q {base} -- {q}; else rm -f {q}; fi")
    sb.write_file(f"{_WORK}/test.patch", task.test_patch if task.test_patch.endswith("\n") else task.test_patch + "\n")
    lines.append(f"git apply --verbose {_WORK}/test.patch")
    result = sb.run("\n".join(lines), timeout=120)
    if result.exit_code != 0:
        return False, _tail(result.output)
    return True, ""


def grade(
    task,
    patch_text: str,
    *,
    sandbox_kind: "str | SandboxConfig" = "local",
    repos_dir: str | Path | None = None,
    settings=None,
    log_dir: str | Path | None = None,
    timeout: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> GradeResult:
    """Grade ``patch_text`` (a unified diff; empty for no change) on ``task``. See the module docstring.

    ``sandbox_kind`` is a backend name or a ``SandboxConfig`` (``expagent.sandbox.config``).
    ``log_dir`` receives ``test_output.txt`` and ``grade.json`` (default: a new directory under
    ``cache_dir()/grades``). ``timeout`` overrides the recipe's per-test-run timeout (seconds).
    """
    from expagent.sandbox.config import resolve_sandbox, task_sandbox
    from expagent.tasks.repos import RepoUnavailable, has_commit, resolve_repo

    echo = echo or (lambda _msg: None)
    if task.suite is None:
        raise ExpagentError(f"task {task.instance_id} belongs to no suite (load it with load_suite)")
    started = time.monotonic()
    durations: dict[str, float] = {}
    config = resolve_sandbox(sandbox_kind, settings, echo) if isinstance(sandbox_kind, str) else sandbox_kind
    source = resolve_repo(task.suite, task.repo, repos_dir)
    if not has_commit(source, task.base_commit):
        raise RepoUnavailable(f"commit {task.base_commit[:12]} of {task.repo} is not in {source} (update that clone)")
    durations["resolve"] = time.monotonic() - started
    t = time.monotonic()
    config, env = task_sandbox(config, task, source, echo, purpose="grading")
    durations["env"] = time.monotonic() - t
    if not env.cached:
        durations["env_build"] = env.build_seconds
    recipe = task.suite.recipe(task.repo, task.version)
    parser = logparse.get_parser(recipe.parser)
    log_dir = Path(log_dir) if log_dir else _default_log_dir(task)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "test_output.txt"

    def finish(**values) -> GradeResult:
        durations["total"] = time.monotonic() - started
        result = GradeResult(instance_id=task.instance_id, durations={k: round(v, 3) for k, v in durations.items()},
                             log_path=str(log_path) if log_path.exists() else None, sandbox=config.kind, **values)
        atomic_write_json(log_dir / "grade.json", result.to_dict())
        return result

    t = time.monotonic()
    with config.open(source, task.base_commit, env, setup=[]) as sb:
        for command in recipe.checkout_setup:
            setup = sb.run(command, timeout=300)
            if setup.exit_code != 0:
                raise ExpagentError(f"checkout set-up command failed for {task.instance_id} ({command!r}): "
                                    f"{_tail(setup.output)}")
        durations["checkout"] = time.monotonic() - t
        t = time.monotonic()
        if patch_text.strip():
            applied, why = _apply_candidate(sb, patch_text)
            if not applied:
                durations["apply"] = time.monotonic() - t
                return finish(resolved=False, patch_applied=False, reason=f"patch does not apply: {why}")
        tests_ok, why = _reset_and_apply_tests(sb, task)
        durations["apply"] = time.monotonic() - t
        if not tests_ok:
            return finish(resolved=False, patch_applied=True, reason=f"test patch does not apply: {why}")
        command = test_command(recipe, task.test_files)
        run_timeout = float(timeout if timeout is not None else recipe.timeout)
        t = time.monotonic()
        run = sb.run(command, timeout=run_timeout)  # the sandbox puts the environment in front
        durations["tests"] = time.monotonic() - t
        t = time.monotonic()
    durations["cleanup"] = time.monotonic() - t
    t = time.monotonic()
    atomic_write_text(log_path, f"$ {command}\n{run.output}\n[exit {run.exit_code}]\n")
    results = parser(run.output)
    f2p, p2p, failing = evaluate(task, results)
    if run.timed_out:
        reason = f"tests timed out after {run_timeout:g} s"
    elif not results:
        reason = f"no test results in the output (exit {run.exit_code}): {_tail(run.output)}"
    elif failing:
        shown = ", ".join(f"{name} {f2p.get(name) or p2p.get(name)}" for name in failing[:3])
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        reason = f"{len(failing)} required test(s) not passing: {shown}{more}"
    else:
        reason = ""
    durations["parse"] = time.monotonic() - t
    return finish(
        resolved=not run.timed_out and bool(results) and not failing,
        patch_applied=True,
        reason=reason,
        fail_to_pass=f2p,
        pass_to_pass=p2p,
        test_exit_code=run.exit_code,
        timed_out=run.timed_out,
    )
