"""Cached Python environments for task repositories (the local backend).

One virtualenv per (repository, version) recipe, under ``cache_dir()/envs/<slug>-<hash>/``::

    venv/        the virtualenv, built with the interpreter the recipe names
    src/         the checkout at ``env_commit`` the project was installed from
    build.log    every build command with its output and exit code
    env.json     recipe, key, interpreter and build time; written last, it marks the env ready

The hash covers everything that shapes the environment (interpreter path and version,
repository, ``env_commit``, and the recipe's build fields), so changing a recipe builds a new
env and a second use of the same recipe costs one file read. A failed build keeps its log under
``cache_dir()/envs/failed/`` and raises ``EnvBuildError`` naming the failing command and its tail.

The env is SWE-bench's environment image: the recipe's install steps run here too, at
``env_commit``, so that dependencies are in place; the install at the instance's ``base_commit``
(generated files, base-only dependencies) goes into an overlay (``expagent.tasks.overlays``), and
tests run with an interpreter root layered on both, never changing the cached env. Builds see an
explicit environment (``overlays.clean_environ``), not the caller's variables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from expagent import paths
from expagent.errors import RuntimeFailure
from expagent.fsutil import atomic_write_json, locked  # noqa: F401  (locked: used here and by callers)
from expagent.tasks.runtime import Interpreter, clean_environ, install_steps, site_packages, system_command
from expagent.tasks import index_date
from expagent.tasks.pythons import find_python
from expagent.tasks.suite import EnvRecipe

BUILD_COMMAND_TIMEOUT = 3600.0

#: pip releases before this one ignore Requires-Python while resolving dependencies and cannot backtrack
#: (20.3 made the backtracking resolver the default): a venv whose bundled pip is older (Python 3.6's 18.1)
#: picks e.g. the newest trio for an old exceptiongroup pin and fails. SWE-bench's conda environments carry
#: a current pip for their Python, so such a venv upgrades pip (and wheel, which conda's Python also has)
#: to the newest release that supports its interpreter before installing anything. The bundled pip is a
#: function of the interpreter version, which the recipe hash covers, so envs built with a newer bundled pip
#: are unaffected and keep their hash.
MODERN_PIP = (20, 3)
#: exits 0 when the running interpreter's pip predates ``MODERN_PIP`` (also run inside Docker builds)
OLD_PIP_CHECK = ("import sys, pip; v = tuple(int(p) for p in pip.__version__.split('.')[:2] if p.isdigit()); "
                 f"print('pip', pip.__version__); sys.exit(0 if v < {MODERN_PIP!r} else 1)")
#: the newest pip and wheel for interpreters that later releases dropped, as explicit bounds: an index or
#: find-links directory without Requires-Python data (a local mirror) would otherwise offer such a pip the
#: newest release, which it cannot see it does not support
LAST_PIP = {"2.7": ("pip<21", "wheel<0.38"), "3.6": ("pip<22", "wheel<0.38"), "3.7": ("pip<24.1", "wheel<0.43")}


def pip_upgrade_args(python_version: str) -> list[str]:
    """``-m pip install --upgrade ...``: pip and wheel at their newest releases for ``python_version``."""
    major_minor = ".".join(python_version.split(".")[:2])
    return ["-m", "pip", "install", "--upgrade", *LAST_PIP.get(major_minor, ("pip", "wheel"))]


class EnvBuildError(RuntimeFailure):
    """An environment build or install step failed (the failing command and its last lines): exit code 1."""


@dataclass
class Env:
    path: Path
    key: str
    recipe: EnvRecipe
    python_version: str
    build_seconds: float
    cached: bool  # True when this call found the env ready
    python_exe: str = ""  # the base interpreter the venv was made from

    @property
    def venv(self) -> Path:
        return self.path / "venv"

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"

    @property
    def src(self) -> Path:
        return self.path / "src"

    def shell_prefix(self, checkout: str) -> str:
        """Shell lines that put this env in front for commands run in ``checkout`` (the agent's own sandbox in
        ``replay``, and synthesis; grading uses an interpreter root instead, see ``overlays``)."""
        import shlex

        pythonpath = f"{checkout}/src:{checkout}" if checkout else ""
        return (
            f"export VIRTUAL_ENV={shlex.quote(str(self.venv))}; "
            f"export PATH={shlex.quote(str(self.bin_dir))}:\"$PATH\"; "
            f"export PYTHONPATH={shlex.quote(pythonpath)}${{PYTHONPATH:+:$PYTHONPATH}}; "
            "export PYTHONNOUSERSITE=1; unset PYTHONHOME; "
        )

    @property
    def interpreter(self) -> Interpreter:
        return Interpreter(self.python_exe or str(self.bin_dir / "python"), self.python_version)

    @property
    def host_paths(self) -> list[Path]:
        """Host directories a sandbox must expose read-only to run this env: the env itself and the Python
        installation it was made from (whose interpreter finds its libpython and standard library there)."""
        prefix = Path(self.interpreter.exe).resolve().parent.parent
        return [self.path, prefix] if prefix != self.path else [self.path]

    @property
    def site_dirs(self) -> list[Path]:
        """The env's package directories, for an interpreter root layered on it."""
        dirs = [site_packages(self.venv, self.interpreter)]
        if self.recipe.system_site_packages:
            dirs.append(self.interpreter.stdlib / "site-packages")
        return dirs


def env_key(recipe: EnvRecipe, repo: str, env_commit: str, python_exe: str, python_version: str) -> str:
    payload = {
        "repo": repo,
        "env_commit": env_commit,
        "python": [str(Path(python_exe).resolve()), python_version],
        # empty settings are left out, so that adding a new optional setting keeps existing envs valid
        "recipe": {name: getattr(recipe, name) for name in EnvRecipe.BUILD_FIELDS
                   if getattr(recipe, name) not in ([], False, None, "")},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def envs_root() -> Path:
    return paths.cache_dir() / "envs"


def _read_ready(path: Path, recipe: EnvRecipe, key: str) -> Env | None:
    meta_file = path / "env.json"
    if not meta_file.is_file() or not (path / "venv" / "bin" / "python").exists():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("key") != key:
        return None
    return Env(path=path, key=key, recipe=recipe, python_version=meta.get("python_version", ""),
               build_seconds=float(meta.get("build_seconds", 0.0)), cached=True, python_exe=meta.get("python", ""))


class Builder:
    """Runs build commands with an explicit environment, logging each command and its output to ``log``."""

    def __init__(self, log: Path, environ: dict[str, str], echo: Callable[[str], None]):
        self.log_path = log
        self.environ = environ
        self.echo = echo
        self.log = open(log, "a", encoding="utf-8")

    def run(self, argv: list[str], cwd: Path, display: str | None = None) -> None:
        display = display or " ".join(argv)
        self.echo(f"  $ {display}")
        self.log.write(f"\n$ {display}\n")
        self.log.flush()
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=cwd, env=self.environ, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=BUILD_COMMAND_TIMEOUT)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
        self.log.write(f"[exit {code} after {time.monotonic() - started:.1f}s]\n")
        self.log.flush()
        if code != 0:
            raise StepFailed(display, code)

    def shell(self, command: str, cwd: Path) -> None:
        self.run(["bash", "-c", command], cwd, display=command)

    def steps(self, commands: list[str], cwd: Path) -> None:
        """The recipe's shell steps in ``cwd``; a step that changes the machine (``runtime.system_command``:
        apt-get, locale-gen, a write under /etc) is not run on the host but noted in the log and echoed."""
        for command in commands:
            if system_command(command):
                note = f"note: not run on the local backend (it changes the machine, not the checkout): {command}"
                self.echo(f"  {note}")
                self.log.write(f"\n{note}\n")
                continue
            self.shell(command, cwd)

    def checkout(self, source: Path, dest: Path, commit: str) -> None:
        self.run(["git", "clone", "--quiet", "--no-checkout", str(source), str(dest)], dest.parent)
        self.run(["git", "-C", str(dest), "checkout", "--quiet", "--detach", commit], dest.parent)
        if (dest / ".gitmodules").is_file():
            self._submodules(source, dest)

    def _submodules(self, source: Path, dest: Path) -> None:
        """Check out the submodules (e.g. astropy's ``astropy_helpers``) from local mirrors next to ``source``
        (the ``--repos`` layout), as the harness gets them from GitHub; one missing here is noted and left to
        the project's own build (which fetches it when it has the network)."""
        from expagent.tasks.repos import submodule_mirror

        listed = subprocess.run(["git", "-C", str(dest), "config", "-f", ".gitmodules", "--get-regexp",
                                 r"^submodule\..*\.url$"], capture_output=True, text=True, env=self.environ)
        for line in listed.stdout.splitlines():
            key, _, url = line.partition(" ")
            name = key[len("submodule."):-len(".url")]
            mirror = submodule_mirror(source, url)
            if mirror is None:
                self.log.write(f"note: submodule {name} ({url}) has no local mirror next to {source}; "
                               "the project's build must fetch it\n")
                continue
            self.run(["git", "-C", str(dest), "config", f"submodule.{name}.url", str(mirror)], dest)
            self.run(["git", "-C", str(dest), "-c", "protocol.file.allow=always", "submodule", "update",
                      "--init", "--quiet", "--", name], dest)

    def close(self) -> None:
        self.log.close()


class StepFailed(Exception):
    def __init__(self, command: str, code: int):
        super().__init__(command)
        self.command = command
        self.code = code


def build_failure(what: str, path: Path, failed: StepFailed) -> EnvBuildError:
    """The one-line error for a failed build step of ``path`` (its log kept, the half-built directory removed)."""
    kept = _keep_failed_log(path)
    tail = _log_tail(kept)
    shutil.rmtree(path, ignore_errors=True)
    hint = missing_tool_hint(kept)
    return EnvBuildError(f"{what} failed: `{failed.command}` exited {failed.code}: {tail}{hint} (log: {kept})")


@contextmanager
def build_steps(builder: Builder, path: Path, what: str):
    """Closes ``builder``; a failed step becomes ``build_failure`` and any other error removes ``path``."""
    try:
        yield builder
    except StepFailed as failed:
        builder.close()
        raise build_failure(what, path, failed) from None
    except BaseException:
        builder.close()
        shutil.rmtree(path, ignore_errors=True)
        raise
    builder.close()


def _env_environ(path: Path, recipe: EnvRecipe) -> dict[str, str]:
    venv = path / "venv"
    extra = {"VIRTUAL_ENV": str(venv), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
             "PYTHONNOUSERSITE": "1", "GIT_TERMINAL_PROMPT": "0"}
    if recipe.constraints:
        extra["PIP_CONSTRAINT"] = str(path / "constraints.txt")
    return clean_environ([str(venv / "bin")], build=True, extra=extra)


def _needs_pip(recipe: EnvRecipe) -> bool:
    commands = " ".join(recipe.install + recipe.pre_install)
    return bool(recipe.bootstrap or recipe.requirements or recipe.packages or recipe.pip_packages or "pip" in commands)


def build_env(
    recipe: EnvRecipe,
    repo: str,
    source: Path,
    env_commit: str,
    *,
    echo: Callable[[str], None] | None = None,
    python: str | None = None,
    label: str = "",
) -> Env:
    """The env for ``recipe`` (built now unless cached). ``source`` is a git repo holding ``env_commit``.

    ``python`` overrides the interpreter search (``EXPAGENT_PYTHONS`` style list).
    """
    echo = echo or (lambda _msg: None)
    python_exe, python_version = find_python(recipe.python, python)
    key = env_key(recipe, repo, env_commit, python_exe, python_version)
    slug = "-".join(part for part in (repo.replace("/", "__"), label, f"py{recipe.python}", key) if part)
    path = envs_root() / slug
    ready = _read_ready(path, recipe, key)
    if ready is not None:
        return ready
    with locked(envs_root() / f".{slug}.lock"):
        ready = _read_ready(path, recipe, key)  # another process may have built it meanwhile
        if ready is not None:
            return ready
        return _build(path, recipe, repo, source, env_commit, python_exe, python_version, key, echo)


def _build(path, recipe, repo, source, env_commit, python_exe, python_version, key, echo) -> Env:
    if path.exists():
        shutil.rmtree(path)  # a partial build from an interrupted run
    path.mkdir(parents=True)
    started = time.monotonic()
    echo(f"building environment for {repo} (Python {python_version}) in {path}")
    builder = Builder(path / "build.log", _env_environ(path, recipe), echo)
    with build_steps(builder, path, f"environment build for {repo}"), index_date.serving(builder, recipe.index_date):
        if recipe.constraints:
            (path / "constraints.txt").write_text("\n".join(recipe.constraints) + "\n", encoding="utf-8")
        if recipe.system_packages:
            note = (f"note: the recipe's apt-get packages are not installed on the local backend (it cannot apt-get): "
                    f"{' '.join(recipe.system_packages)}")
            echo(f"  {note}")
            builder.log.write(note + "\n")
        venv_args = [python_exe, "-m", "venv"]
        if recipe.system_site_packages:
            # pip, when needed, is reached through the host interpreter's site-packages
            venv_args += ["--system-site-packages", "--without-pip"]
        elif not _needs_pip(recipe):
            venv_args.append("--without-pip")
        builder.run([*venv_args, str(path / "venv")], path)
        if "--without-pip" not in venv_args:
            _upgrade_old_pip(builder, path, python_version)
        builder.checkout(source, path / "src", env_commit)
        pip = [str(path / "venv" / "bin" / "python"), "-m", "pip", "install"]
        if recipe.bootstrap:
            builder.run([*pip, *recipe.bootstrap], path / "src")
        for name in recipe.requirements:
            if (path / "src" / name).is_file():
                if recipe.requirements_exclude:
                    name = _filtered_requirements(path / "src", name, recipe.requirements_exclude, builder)
                builder.run([*pip, "-r", name], path / "src")
                break
        if recipe.conda_env:
            name = _conda_requirements(path / "src", recipe.conda_env, builder)
            # the spec's pip pins go into the same resolution, as conda resolves the file and pip adds to it
            builder.run([*pip, "-r", name, *recipe.pip_packages], path / "src")
        if recipe.packages:
            builder.run([*pip, *recipe.packages], path / "src")
        if recipe.pip_packages:
            builder.run([*pip, *recipe.pip_packages], path / "src")
        builder.steps(install_steps(recipe), path / "src")
    seconds = time.monotonic() - started
    atomic_write_json(path / "env.json", {
        "key": key,
        "repo": repo,
        "env_commit": env_commit,
        "python": python_exe,
        "python_version": python_version,
        "recipe": recipe.to_dict(),
        "build_seconds": round(seconds, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return Env(path=path, key=key, recipe=recipe, python_version=python_version, build_seconds=seconds, cached=False,
               python_exe=python_exe)


def _upgrade_old_pip(builder: "Builder", path: Path, python_version: str) -> None:
    """Upgrade the venv's pip when it predates ``MODERN_PIP`` (a recorded build step; see ``MODERN_PIP``)."""
    python = str(path / "venv" / "bin" / "python")
    probe = subprocess.run([python, "-c", OLD_PIP_CHECK], env=builder.environ, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
    found = probe.stdout.strip() or "pip (version unknown)"
    if probe.returncode != 0:
        return
    builder.log.write(f"note: the venv's {found} predates pip {'.'.join(map(str, MODERN_PIP))} (it ignores "
                      "Requires-Python and cannot backtrack); upgrading pip and wheel to the newest releases "
                      "for this interpreter, as SWE-bench's conda environments have\n")
    builder.run([python, *pip_upgrade_args(python_version)], path)


def _requirement_name(line: str) -> str:
    name = re.split(r"[\s<>=!~;\[@]", line.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _filtered_requirements(src: Path, name: str, exclude: list[str], builder: "Builder") -> str:
    """A copy of requirements file ``name`` without the ``exclude``d packages; returns its name."""
    dropped = {re.sub(r"[-_.]+", "-", e).lower() for e in exclude}
    kept = []
    for line in (src / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "-")) and _requirement_name(line) in dropped:
            builder.log.write(f"note: dropped requirement {line.strip()!r} (requirements_exclude)\n")
            continue
        kept.append(line)
    filtered = Path(name).parent / f".expagent-{Path(name).name}"
    (src / filtered).write_text("\n".join(kept) + "\n", encoding="utf-8")
    return str(filtered)


def _conda_requirements(src: Path, candidates: list[str], builder: "Builder") -> str:
    """The first of ``candidates`` (environment.yml files) in ``src`` as a pip requirements file; its name."""
    from expagent.tasks.swebench_specs import conda_requirements

    for name in candidates:
        if (src / name).is_file():
            requirements, notes = conda_requirements((src / name).read_text(encoding="utf-8"), name)
            for note in notes:
                builder.log.write(f"note: {note}\n")
            out = ".expagent-environment.txt"
            (src / out).write_text("\n".join(requirements) + "\n", encoding="utf-8")
            builder.log.write(f"note: {name} as pip requirements: {' '.join(requirements)}\n")
            return out
    raise EnvBuildError(f"none of the environment files {', '.join(candidates)} exists at the environment commit")


def _keep_failed_log(path: Path) -> Path:
    failed_dir = envs_root() / "failed"
    failed_dir.mkdir(parents=True, exist_ok=True)
    dest = failed_dir / f"{path.name}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    shutil.copyfile(path / "build.log", dest)
    return dest


#: what a build log says when the build needs something pip cannot provide
_MISSING_TOOLS = (
    (re.compile(r"(?:gcc|cc|g\+\+|gfortran): (?:error trying to exec|command not found|No such file)|"
                r"error: command '([^']+)' failed: No such file"), "a compiler"),
    (re.compile(r"fatal error: ([\w./-]+\.h): No such file"), "the C header {0} (a system package)"),
    (re.compile(r"No matching distribution found for ([\w.\-\[\]<>=!~,]+)"), "{0}, which is not on the package index"),
    (re.compile(r"requires Python '([^']+)' but the running Python is ([\d.]+)"),
     "a package that requires Python {0} (the env has {1}): an old pin no longer resolves"),
)


def missing_tool_hint(log: Path) -> str:
    """`` (needs X)`` when the build log shows a missing compiler, header or package, else ``""``."""
    text = log.read_text(encoding="utf-8", errors="replace")[-200_000:]
    for pattern, what in _MISSING_TOOLS:
        match = pattern.search(text)
        if match:
            return f" (needs {what.format(*(g or '' for g in match.groups()))})"
    return ""


#: pip's closing lines after a failed build, which say nothing about the failure itself
_PIP_FOOTER = re.compile(r"^(note: This (error originates|is an issue)|hint: See above|╰─> See above|"
                         r"error: (metadata-generation-failed|subprocess-exited-with-error)|× |\[end of output\]|"
                         r"│ exit code|\[notice\])")


def _log_tail(log: Path, lines: int = 3) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    body = [line.strip() for line in text if line.strip() and not line.startswith(("[exit", "$ "))]
    body = [line for line in body if not _PIP_FOOTER.match(line)] or body
    return " | ".join(body[-lines:])[-400:] or "no output"


def ensure_env(task, *, repos_dir: str | Path | None = None, echo: Callable[[str], None] | None = None,
               python: str | None = None, source: Path | None = None) -> Env:
    """The cached environment for ``task`` (its suite's recipe for its repo and version).

    ``source`` is the task's repository when the caller has already resolved it.
    """
    from expagent.tasks.repos import resolve_repo
    from expagent.tasks.swebench_specs import require_spec

    require_spec(task.suite, task.repo, task.version)
    recipe = task.suite.recipe(task.repo, task.version)
    source = source or resolve_repo(task.suite, task.repo, repos_dir)
    env_commit = task.env_commit or task.base_commit
    if recipe.index_date:
        # the literal date is what the cache key covers (and what the install at a base commit reuses)
        recipe = dataclasses.replace(recipe, index_date=index_date.resolve(
            recipe.index_date, created_at=task.created_at, source=source, env_commit=env_commit))
    return build_env(recipe, task.repo, source, env_commit, echo=echo, python=python, label=task.version)
