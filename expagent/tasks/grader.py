"""Grading a candidate patch with the task's own tests (the SWE-bench definition of resolved).

``grade(task, patch_text)``:

1. resolves the repository and the cached environment for the task's (repo, version), then the
   install at ``base_commit`` on top of it (``overlays.ensure_overlay``: the recipe's ``pre_install``
   and ``install``, once per base commit, cached; the environment itself is never changed);
2. opens a sandbox holding a fresh checkout at ``base_commit``, runs the recipe's ``checkout_setup``
   commands and copies in the files the install generated;
3. applies the candidate patch (``git apply``, then ``patch --fuzz=5`` as SWE-bench does);
4. restores every graded test file (the test patch's files and those FAIL_TO_PASS / PASS_TO_PASS name)
   to ``base_commit``, discarding the candidate's edits to them, and applies the test patch;
5. runs the test command on the test patch's files with an explicit environment and an interpreter
   root that resolves to the task's packages however it is reached, parses per-test statuses, and
   checks FAIL_TO_PASS and PASS_TO_PASS.

Resolved (SWE-bench): every FAIL_TO_PASS and every PASS_TO_PASS test passes (PASSED, XFAIL or
XPASS); a FAILED, ERROR or MISSING test is a failure; a SKIPPED one counts for neither. A patch
that does not apply, or tests that outlive the timeout, are not resolved; ``reason`` says why.
Harness problems that are not the patch's fault (unknown repository, missing interpreter,
environment build failure) raise ``ExpagentError`` subclasses instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import os
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from expagent import paths
from expagent.errors import ExpagentError, SandboxUnavailable
from expagent.fsutil import atomic_write_json, atomic_write_text
from expagent.tasks import logparse
from expagent.patchutil import patch_files as patched_files
from expagent.redact import redactor

_WORK = ".expagent-grade"  # scratch directory inside the checkout for the patch files

#: what a test's output shows when it needed a network the sandbox does not give (no route, no name resolution)
NETWORK_ERROR = re.compile(r"Could not resolve host|Name or service not known|Temporary failure in name resolution|"
                           r"Network is unreachable|No address associated with hostname|getaddrinfo failed")
NETWORK_NOTE = ("the tests met network errors with the network off; the official harness runs them with the "
                "network on: grade with --test-network (the grade_network setting) to do the same")
UNREACHABLE_NOTE = ("the tests met network errors with the network on: a host they need cannot be reached from "
                    "here (the official harness fails such tests too while that host is down)")

if TYPE_CHECKING:
    from expagent.sandbox.config import SandboxConfig


@dataclass
class GradeResult:
    instance_id: str
    resolved: bool
    patch_applied: bool
    reason: str
    fail_to_pass: dict[str, str] = field(default_factory=dict)
    pass_to_pass: dict[str, str] = field(default_factory=dict)
    log_path: str | None = None
    # seconds: resolve, env (env_build when built now), install (install_build when the install at base_commit
    # ran now), checkout, apply, runtime, tests, cleanup, parse, total
    durations: dict[str, float] = field(default_factory=dict)
    test_exit_code: int | None = None
    timed_out: bool = False
    sandbox: str = "local"
    network: bool = False  # whether the tests ran with the network on (grade_network)
    environment: str = ""  # the env directory (local) or image (docker) the tests ran in
    # what this backend did differently from the harness, and eval commands that failed (the harness goes on too)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def harness_seconds(self) -> float:
        """Time spent outside the test command (and outside an env build)."""
        d = self.durations
        return max(0.0, d.get("total", 0.0) - d.get("tests", 0.0) - d.get("env_build", 0.0)
                   - d.get("install_build", 0.0) - d.get("reinstall", 0.0))


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


def _open_sandbox(kind: str, source: Path, settings, base_commit: str, env, echo, network: bool = False):
    if kind == "docker":
        from expagent.config import Settings
        from expagent.sandbox.docker import DockerSandbox

        # a built env image gets the install at base_commit as a cached set-up image (SWE-bench's instance image);
        # an official SWE-bench image already holds it, in /testbed. The network is the grade's, not the agent's
        # docker_network setting.
        return DockerSandbox(source, settings or Settings(), base_commit=base_commit, image=env.image,
                             setup=env.setup_commands(), network=network)
    from expagent.sandbox.local import LocalSandbox

    # the environment and its interpreter are host directories: exposed read-only, also when under /tmp
    # (bubblewrap gives the sandbox a private /tmp)
    return LocalSandbox(source, base_commit=base_commit, ro_paths=env.host_paths, warn=echo, network=network,
                        root_dir=grade_tmpdir())


#: a tmpfs with at least this much free space holds the grading checkouts by default
_TMPFS_MIN_FREE = 2 << 30


def grade_tmpdir() -> str | None:
    """Where the local backend makes its throwaway checkouts: ``$EXPAGENT_GRADE_TMPDIR`` when set (empty: the
    system's temporary directory), else ``/dev/shm`` when it is a writable tmpfs with 2 GiB free. On a disk, their
    creation and removal (thousands of files) are most of a grade's overhead; in memory they cost a fraction."""
    chosen = os.environ.get("EXPAGENT_GRADE_TMPDIR")
    if chosen is not None:
        return chosen or None
    shm = Path("/dev/shm")
    try:
        fs = os.statvfs(shm)
        mounts = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    tmpfs = any(line.split()[1:3] == [str(shm), "tmpfs"] for line in mounts if len(line.split()) > 2)
    runnable = not fs.f_flag & getattr(os, "ST_NOEXEC", 8)  # the grade's interpreter copy must be executable
    if tmpfs and runnable and os.access(shm, os.W_OK | os.X_OK) and fs.f_bavail * fs.f_frsize >= _TMPFS_MIN_FREE:
        return str(shm)
    return None


#: files whose change means the project must be installed again (its dependencies or build may differ)
_BUILD_FILES = re.compile(r"(^|/)(setup\.py|setup\.cfg|pyproject\.toml|requirements[^/]*\.txt)$")


def touches_build_files(patch_text: str) -> bool:
    return any(_BUILD_FILES.search(path) for path in patched_files(patch_text))


def _tail(text: str, lines: int = 3) -> str:
    body = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(body[-lines:])[-300:]


def _apply_candidate(sb, patch_text: str, cwd: str | None = None) -> tuple[bool, str]:
    sb.write_file(f"{_WORK}/candidate.patch", patch_text if patch_text.endswith("\n") else patch_text + "\n")
    p = shlex.quote(f"{sb.workdir}/{_WORK}/candidate.patch")
    result = sb.run(f"git apply --verbose {p} || patch --batch --fuzz=5 -p1 -i {p}", timeout=120, cwd=cwd)
    if result.exit_code != 0:
        return False, _tail(result.output)
    return True, ""


_DJANGO_ID = re.compile(r"^\S+ \(([\w.]+)\)$")


def graded_test_files(task) -> list[str]:
    """Every file that holds a graded test: the test patch's files and the files FAIL_TO_PASS / PASS_TO_PASS name.

    Names are ``path::test`` (pytest) or ``test (module.Class)`` (django's runner, under ``tests/``); files
    that do not exist at ``base_commit`` are skipped when restoring.
    """
    files: dict[str, None] = dict.fromkeys(patched_files(task.test_patch)) if task.test_patch.strip() else {}
    for name in [*task.fail_to_pass, *task.pass_to_pass]:
        if "::" in name:
            path = name.split("::", 1)[0]
            if path.endswith(".py") and not path.startswith(("/", "..")):
                files.setdefault(path, None)
        elif match := _DJANGO_ID.match(name):
            parts = match.group(1).split(".")
            for end in range(len(parts) - 1, 0, -1):  # the module is a prefix of the dotted name
                files.setdefault("tests/" + "/".join(parts[:end]) + ".py", None)
    return list(files)


def _restore_and_apply_tests(sb, task, cwd: str | None = None) -> tuple[bool, str]:
    """Put every graded test file back to ``base_commit`` (discarding the candidate's edits), then apply the
    test patch: a candidate cannot weaken or delete the tests it is graded by."""
    base = shlex.quote(task.base_commit)
    lines = []
    for path in graded_test_files(task):
        q = shlex.quote(path)
        # a file that exists at base is reset to it; one that does not is removed, so the test patch can add it
        lines.append(f"if git cat-file -e {base}:{q} 2>/dev/null; then git checkout -q {base} -- {q}; else rm -f {q}; fi")
    if task.test_patch.strip():
        sb.write_file(f"{_WORK}/test.patch",
                      task.test_patch if task.test_patch.endswith("\n") else task.test_patch + "\n")
        lines.append(f"git apply --verbose {shlex.quote(f'{sb.workdir}/{_WORK}/test.patch')}")
    if not lines:
        return True, ""
    result = sb.run("\n".join(lines), timeout=120, cwd=cwd)
    if result.exit_code != 0:
        return False, _tail(result.output)
    return True, ""


def _eval_steps(recipe, local: bool) -> tuple[dict[str, str], list[str], list[str]]:
    """The recipe's ``eval_commands`` for this backend: ``(exports, commands to run, notes)``. On the local backend
    a locale the machine lacks falls back to C.UTF-8, and commands that change the machine are not run."""
    from expagent.tasks.runtime import eval_setup, host_locale_exports, system_command

    setup = eval_setup(recipe.eval_commands)
    exports, notes, commands = dict(setup.exports), [], list(setup.commands)
    if local:
        exports, notes = host_locale_exports(exports)
        skipped = [c for c in commands if system_command(c)]
        notes += [f"eval command not run on the local backend (it changes the machine): {c}" for c in skipped]
        commands = [c for c in commands if c not in skipped]
        if recipe.system_packages:
            notes.append(f"apt-get packages not installed on the local backend: {' '.join(recipe.system_packages)}")
    return exports, commands, notes


def _run_eval_commands(sb, prefix: str, commands: list[str], cwd: str | None, notes: list[str]) -> str:
    """Run ``commands`` in the checkout before the tests; their transcript (for the test log)."""
    transcript = []
    for command in commands:
        done = sb.run(prefix + command, timeout=300, cwd=cwd)
        transcript.append(f"$ {command}\n{done.output}[exit {done.exit_code}]\n")
        if done.exit_code != 0:
            notes.append(f"eval command exited {done.exit_code}: {command}: {_tail(done.output, 1)}")
    return "".join(transcript)


def _unpack_generated(sb, tar_path: Path) -> None:
    """Copy the install's generated files into the checkout: in place when the checkout is a host directory (no
    sandboxed process needed for our own archive), else with ``tar`` inside the sandbox."""
    import tarfile

    host = sb.host_workdir
    if host is not None:
        try:
            with tarfile.open(tar_path) as tar:
                # the "data" filter refuses links and paths that leave the checkout; those go through the sandbox
                tar.extractall(host, filter="data")
            return
        except tarfile.FilterError:
            pass
        except (OSError, tarfile.TarError) as exc:
            raise ExpagentError(f"cannot copy the installed files into the checkout: {exc}") from None
    unpacked = sb.run(f"tar -xf {shlex.quote(str(tar_path))}", timeout=300)
    if unpacked.exit_code != 0:
        raise ExpagentError(f"cannot copy the installed files into the checkout: {_tail(unpacked.output)}")


def _local_runtime(sb, env, overlay, reinstall: bool = False, exports: dict[str, str] | None = None) -> str:
    """The shell prefix for the test command: a per-grade interpreter root (the checkout first on its path,
    then the overlay's and the environment's packages) and an explicit environment."""
    from expagent.tasks.envs import EnvBuildError
    from expagent.tasks.overlays import INSTALL_MARKER, clean_shell_prefix, make_root, site_packages
    from expagent.tasks.runtime import build_exports

    checkout = Path(sb.workdir)
    paths = [str(checkout / "src")] if (checkout / "src").is_dir() else []
    paths.append(str(checkout))
    if overlay is not None:
        site_dirs, scripts = [site_packages(overlay.root, env.interpreter)], [overlay.root / "bin", env.bin_dir]
    else:
        site_dirs, scripts = env.site_dirs, [env.bin_dir]
    bin_dir = make_root(Path(sb.root) / "python", env.interpreter, paths=paths, site_dirs=site_dirs,
                        script_dirs=scripts)
    prefix = clean_shell_prefix([str(bin_dir)], {"PYTHONNOUSERSITE": "1", **(exports or {})})
    if reinstall:
        # the candidate changed how the project is built or what it needs: install it again, into this grade's
        # root (never the cached overlay or env), as the harness re-runs the install with the patch applied
        # with the package index, proxy and CA bundle of the machine (none that carries credentials), as the
        # environment's own build had them
        build = "".join(f"export {k}={shlex.quote(v)}; " for k, v in build_exports().items())
        for command in env.recipe.install:
            done = sb.run(f"{prefix}{build}export {INSTALL_MARKER}=1; {command}", timeout=1800)
            if done.exit_code != 0:
                raise EnvBuildError(f"the install with the candidate patch applied failed: `{command}` exited "
                                    f"{done.exit_code}: {_tail(done.output)}")
    return prefix


def _docker_env_or_fallback(task, source, settings, kind: str, echo):
    """``(docker env, "docker")``; with ``auto``, ``(None, "local")`` when Docker cannot serve this task."""
    from expagent.tasks.docker_envs import ensure_docker_env

    if kind == "auto":
        from expagent.sandbox.docker import docker_available

        if not docker_available():
            echo("notice: no Docker daemon answered; grading with the local sandbox")
            return None, "local"
        try:
            return ensure_docker_env(task, source, settings, echo), "docker"
        except SandboxUnavailable as exc:
            echo(f"notice: {exc}; grading with the local sandbox")
            return None, "local"
    return ensure_docker_env(task, source, settings, echo), "docker"


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

    ``sandbox_kind`` is a backend name or the ``SandboxConfig`` the agent ran in (``sandbox.config``): the grade
    runs on the same backend; a config that ``auto`` chose may still fall back to local for this task.

    ``log_dir`` receives ``test_output.txt`` and ``grade.json`` (default: a new directory under
    ``cache_dir()/grades``). ``timeout`` overrides the recipe's per-test-run timeout (seconds).
    """
    from expagent.tasks.envs import ensure_env
    from expagent.tasks.overlays import ensure_overlay, needs_overlay
    from expagent.tasks.repos import RepoUnavailable, has_commit, resolve_repo
    from expagent.tasks.swebench_specs import require_spec

    echo = echo or (lambda _msg: None)
    if task.suite is None:
        raise ExpagentError(f"task {task.instance_id} belongs to no suite (load it with load_suite)")
    started = time.monotonic()
    durations: dict[str, float] = {}
    if not isinstance(sandbox_kind, str):  # a SandboxConfig: the backend the session resolved
        sandbox_kind = "auto" if getattr(sandbox_kind, "auto", False) else sandbox_kind.kind
    if sandbox_kind not in ("local", "docker", "auto"):
        raise ExpagentError(f"unknown sandbox {sandbox_kind!r} (choose local or docker)")
    require_spec(task.suite, task.repo, task.version)
    source = resolve_repo(task.suite, task.repo, repos_dir)
    if not has_commit(source, task.base_commit):
        raise RepoUnavailable(f"commit {task.base_commit[:12]} of {task.repo} is not in {source} (update that clone)")
    durations["resolve"] = time.monotonic() - started
    t = time.monotonic()
    env = None
    if sandbox_kind in ("docker", "auto"):
        env, sandbox_kind = _docker_env_or_fallback(task, source, settings, sandbox_kind, echo)
    if env is None:
        env = ensure_env(task, repos_dir=repos_dir, echo=echo, source=source, python=getattr(settings, "pythons", None))
    durations["env"] = time.monotonic() - t
    if not env.cached:
        durations["env_build"] = env.build_seconds
    recipe = task.suite.recipe(task.repo, task.version)
    overlay = None
    if sandbox_kind == "local" and needs_overlay(recipe):
        t = time.monotonic()
        overlay = ensure_overlay(env, source, task.base_commit, echo)
        durations["install"] = time.monotonic() - t
        if not overlay.cached:
            durations["install_build"] = overlay.build_seconds
    parser = logparse.get_parser(recipe.parser)
    log_dir = Path(log_dir) if log_dir else _default_log_dir(task)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "test_output.txt"

    def finish(**values) -> GradeResult:
        durations["total"] = time.monotonic() - started
        result = GradeResult(instance_id=task.instance_id, durations={k: round(v, 3) for k, v in durations.items()},
                             log_path=str(log_path) if log_path.exists() else None, sandbox=sandbox_kind,
                             environment=getattr(env, "image", None) or str(env.path), network=network,
                             **values)
        atomic_write_json(log_dir / "grade.json", result.to_dict())
        return result

    reinstall = overlay is not None and touches_build_files(patch_text)
    network = bool(getattr(settings, "grade_network", False))
    t = time.monotonic()
    # a re-install may fetch new dependencies: that grade's sandbox has the network, as the harness's containers do
    with _open_sandbox(sandbox_kind, source, settings, task.base_commit, env, echo,
                       network=network or reinstall) as sb:
        official = sandbox_kind == "docker" and env.official
        cwd = env.workdir if official else None  # SWE-bench's images hold the repository at /testbed
        for command in [] if official else recipe.checkout_setup:
            setup = sb.run(command, timeout=300)
            if setup.exit_code != 0:
                raise ExpagentError(f"checkout set-up command failed for {task.instance_id} ({command!r}): "
                                    f"{_tail(setup.output)}")
        if overlay is not None and overlay.generated.is_file():
            # the files the install at base_commit generated (e.g. a setuptools_scm _version.py), as in the harness
            _unpack_generated(sb, overlay.generated)
        durations["checkout"] = time.monotonic() - t
        t = time.monotonic()
        if patch_text.strip():
            applied, why = _apply_candidate(sb, patch_text, cwd)
            if not applied:
                durations["apply"] = time.monotonic() - t
                return finish(resolved=False, patch_applied=False, reason=f"patch does not apply: {why}")
        tests_ok, why = _restore_and_apply_tests(sb, task, cwd)
        durations["apply"] = time.monotonic() - t
        if not tests_ok:
            return finish(resolved=False, patch_applied=True, reason=f"test patch does not apply: {why}")
        command = test_command(recipe, task.test_files)
        run_timeout = float(timeout if timeout is not None else recipe.timeout)
        t = time.monotonic()
        exports, eval_commands, notes = _eval_steps(recipe, sandbox_kind == "local")
        if sandbox_kind == "local":
            prefix = _local_runtime(sb, env, overlay, reinstall, exports)
        else:
            prefix = env.shell_prefix(sb.workdir) + "".join(f"export {k}={shlex.quote(v)}; " for k, v in exports.items())
        eval_log = _run_eval_commands(sb, prefix, eval_commands, cwd, notes)
        durations["reinstall" if reinstall else "runtime"] = time.monotonic() - t
        t = time.monotonic()
        # the parser reads the output whole: test ids hold what the redactor would cut (requests'
        # ``test_get_auth_from_url[http://user:pass@...]``); what is stored or shown of it is redacted below
        run = sb.run(prefix + command, timeout=run_timeout, cwd=cwd, redact=False)
        durations["tests"] = time.monotonic() - t
        t = time.monotonic()
    durations["cleanup"] = time.monotonic() - t
    t = time.monotonic()
    stored = redactor().scrub(run.output)[0]
    atomic_write_text(log_path, f"{eval_log}$ {command}\n{stored}\n[exit {run.exit_code}]\n")
    results = parser(run.output)
    f2p, p2p, failing = evaluate(task, results)
    if run.timed_out:
        reason = f"tests timed out after {run_timeout:g} s"
    elif not results:
        reason = f"no test results in the output (exit {run.exit_code}): {_tail(stored)}"
    elif failing:
        shown = ", ".join(f"{name} {f2p.get(name) or p2p.get(name)}" for name in failing[:3])
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        reason = redactor().scrub(f"{len(failing)} required test(s) not passing: {shown}{more}")[0]
    else:
        reason = ""
    durations["parse"] = time.monotonic() - t
    if failing and NETWORK_ERROR.search(run.output):
        notes.append(UNREACHABLE_NOTE if network else NETWORK_NOTE)
    return finish(
        resolved=not run.timed_out and bool(results) and not failing,
        patch_applied=True,
        reason=reason,
        fail_to_pass=f2p,
        pass_to_pass=p2p,
        test_exit_code=run.exit_code,
        timed_out=run.timed_out,
        notes=notes,
    )
