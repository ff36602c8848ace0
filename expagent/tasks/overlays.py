"""The task's own install at ``base_commit`` on top of a cached environment, and the interpreter tests run with.

SWE-bench builds one environment per (repository, version), then, per instance, checks the repository out at
``base_commit`` and runs the spec's ``pre_install`` and ``install`` steps there (``pip install -e .``): that is
what generates files such as pytest's setuptools_scm ``_pytest/_version.py`` and installs dependencies only the
base commit declares. Here that install runs once per (environment, base commit) into an **overlay** kept next
to the cached environment (``<env>/base/<commit>/``), which itself stays unchanged for the next instance::

    root/        an interpreter root: bin/pythonX.Y (a copy of the interpreter), lib/pythonX.Y/ (links to the
                 standard library) and its own site-packages, which first adds the environment's site-packages
    src/         the checkout at base_commit the install ran in
    generated.tar  the files the install left in the checkout (untracked or ignored), copied into every test checkout
    build.log    the install's commands and output;  overlay.json  written last, it marks the overlay ready

Tests then run with a per-grade interpreter root made the same way inside the sandbox (:func:`make_root`):
its site-packages puts the checkout under test first, then the overlay's and the environment's packages, and
its ``bin/`` holds the environments' console scripts re-pointed at it. The interpreter is a real file at a
real prefix (found by its landmark; before Python 3.11 without a ``pyvenv.cfg``, which a linked start would
lose), so a tool that links to ``sys.executable`` and runs the link (``tox --current-env``) still lands in the
task's environment, and nothing depends on ``PYTHONPATH``, which tox strips.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from expagent.fsutil import atomic_write_json
from expagent.tasks import index_date

#: the variables a build or a test run may see besides the ones set explicitly (an allowlist)
from expagent.tasks.runtime import (  # noqa: F401  (the explicit environment, re-exported)
    install_steps,
    PASSED_VARS,
    BUILD_VARS,
    SYSTEM_PATH,
    FIXED_VARS,
    INSTALL_MARKER,
    clean_environ,
    clean_shell_prefix,
    Interpreter,
    site_packages,
    make_root,
    _copy_script,
)


# -- the overlay: the install at base_commit, cached -----------------------------------------------------------

@dataclass
class Overlay:
    path: Path
    base_commit: str
    build_seconds: float
    cached: bool

    @property
    def root(self) -> Path:
        return self.path / "root"

    @property
    def generated(self) -> Path:
        return self.path / "generated.tar"


def _ready(path: Path, base_commit: str) -> Overlay | None:
    import json

    meta = path / "overlay.json"
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Overlay(path, base_commit, float(data.get("build_seconds", 0.0)), cached=True)


def needs_overlay(recipe) -> bool:
    return bool(recipe.pre_install or recipe.install)


def ensure_overlay(env, source: Path, base_commit: str, echo: Callable[[str], None] | None = None) -> Overlay:
    """The install of ``source`` at ``base_commit`` on top of ``env`` (built now unless cached)."""
    from expagent.tasks.envs import locked

    echo = echo or (lambda _msg: None)
    path = env.path / "base" / base_commit
    ready = _ready(path, base_commit)
    if ready is not None:
        return ready
    with locked(env.path / "base" / f".{base_commit}.lock"):
        ready = _ready(path, base_commit)
        if ready is not None:
            return ready
        return _build_overlay(env, source, base_commit, path, echo)


def _build_overlay(env, source: Path, base_commit: str, path: Path, echo) -> Overlay:
    from expagent.tasks.envs import Builder, build_steps

    if path.exists():
        shutil.rmtree(path)  # an interrupted build
    path.mkdir(parents=True)
    started = time.monotonic()
    recipe = env.recipe
    interp = env.interpreter
    echo(f"installing {source.name} at {base_commit[:12]} on its environment ({path})")
    bin_dir = make_root(path / "root", interp, paths=[], site_dirs=env.site_dirs, script_dirs=[env.bin_dir])
    extra = {INSTALL_MARKER: "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
             "PYTHONNOUSERSITE": "1", "GIT_TERMINAL_PROMPT": "0"}
    if recipe.constraints:
        extra["PIP_CONSTRAINT"] = str(env.path / "constraints.txt")
    builder = Builder(path / "build.log", clean_environ([str(bin_dir)], build=True, extra=extra), echo)
    src = path / "src"
    with build_steps(builder, path, f"the install of {source.name} at {base_commit[:12]}"), \
            index_date.serving(builder, recipe.index_date):
        builder.checkout(source, src, base_commit)
        builder.steps(install_steps(recipe), src)
        generated = _generated_files(src)
        with tarfile.open(path / "generated.tar", "w") as tar:
            for name in generated:
                tar.add(src / name, arcname=name, recursive=False)
    seconds = time.monotonic() - started
    atomic_write_json(path / "overlay.json", {"base_commit": base_commit, "build_seconds": round(seconds, 2),
                                              "generated_files": len(generated)})
    return Overlay(path, base_commit, seconds, cached=False)


def _generated_files(src: Path) -> list[str]:
    """Files the install left in the checkout (untracked or ignored), except build scratch and caches."""
    proc = subprocess.run(["git", "-C", str(src), "ls-files", "--others", "-z"], capture_output=True, check=True)
    names = [n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    skip = ("build/", ".eggs/", ".expagent-")
    return [n for n in names if not n.startswith(skip) and "__pycache__/" not in n and not n.endswith(".pyc")]
