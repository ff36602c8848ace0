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
real prefix (no ``pyvenv.cfg``), so a tool that links to ``sys.executable`` and runs the link (``tox
--current-env``) still lands in the task's environment, and nothing depends on ``PYTHONPATH``, which tox strips.
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

#: the variables a build or a test run may see besides the ones set explicitly (an allowlist)
PASSED_VARS = ("HOME", "USER", "LOGNAME", "TERM", "TZ", "TMPDIR")
#: extra variables a build may see: the user's package index and proxy settings
BUILD_VARS = (
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST", "PIP_CERT", "PIP_CACHE_DIR",
    "PIP_CONFIG_FILE", "PIP_NO_INDEX", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
    "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CC", "CXX",
)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: what every run gets (SWE-bench's images run with a UTF-8 locale)
FIXED_VARS = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
#: set during an overlay install: the overlay then looks like a virtualenv to pip, which therefore never
#: uninstalls anything from the cached environment (it installs the new version into the overlay instead)
INSTALL_MARKER = "EXPAGENT_OVERLAY_INSTALL"


def clean_environ(path_dirs: list[str], *, build: bool = False, extra: dict[str, str] | None = None) -> dict[str, str]:
    """An explicit environment for a build or test process: allowlisted variables only, not the caller's."""
    names = PASSED_VARS + (BUILD_VARS if build else ())
    env = {name: os.environ[name] for name in names if name in os.environ}
    env.update(FIXED_VARS)
    env["PATH"] = os.pathsep.join([*path_dirs, SYSTEM_PATH])
    env.update(extra or {})
    return env


def clean_shell_prefix(path_dirs: list[str], extra: dict[str, str] | None = None) -> str:
    """Shell text that drops every exported variable but the allowlisted ones, then sets the run's own."""
    keep = "|".join(PASSED_VARS)
    exports = {**FIXED_VARS, "PATH": ":".join([*path_dirs, SYSTEM_PATH]), **(extra or {})}
    return (
        f"for __v in $(compgen -e); do case \"$__v\" in {keep}) ;; *) unset \"$__v\" 2>/dev/null;; esac; done; "
        "unset __v; " + "".join(f"export {k}={shlex.quote(v)}; " for k, v in exports.items())
    )


# -- interpreter roots ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interpreter:
    """A base CPython installation: its executable and where its standard library lives."""

    exe: str
    version: str  # X.Y.Z

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def stdlib(self) -> Path:
        return Path(self.exe).resolve().parent.parent / "lib" / f"python{self.major_minor}"


def site_packages(prefix: Path, interp: Interpreter) -> Path:
    return prefix / "lib" / f"python{interp.major_minor}" / "site-packages"


def make_root(dest: Path, interp: Interpreter, *, paths: list[str], site_dirs: list[Path],
              script_dirs: list[Path]) -> Path:
    """An interpreter root at ``dest`` (see the module docstring); returns its ``bin`` directory.

    ``paths`` go first on ``sys.path`` (the checkout under test), then ``site_dirs`` (their ``.pth`` files
    processed); the console scripts of ``script_dirs`` are copied into ``bin/`` with their ``#!`` line
    pointing at this root's interpreter (earlier directories win).
    """
    mm = interp.major_minor
    bin_dir = dest / "bin"
    lib = dest / "lib" / f"python{mm}"
    own_site = lib / "site-packages"
    own_site.mkdir(parents=True)
    bin_dir.mkdir(exist_ok=True)
    stdlib = interp.stdlib
    if not (stdlib / "os.py").is_file():
        from expagent.tasks.pythons import InterpreterMissing

        raise InterpreterMissing(f"Python {interp.version} at {interp.exe}: no standard library at {stdlib}")
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            os.symlink(entry, lib / entry.name)
    real = Path(interp.exe).resolve()
    shutil.copy2(real, bin_dir / f"python{mm}")
    for alias in ("python", "python3"):
        os.symlink(f"python{mm}", bin_dir / alias)
    python = str(bin_dir / "python")
    seen = {"python", "python3", f"python{mm}"}
    for scripts in script_dirs:
        if not scripts.is_dir():
            continue
        for entry in sorted(scripts.iterdir()):
            if entry.name in seen or entry.name.startswith(("python", "activate", "Activate")) or not entry.is_file():
                continue
            if _copy_script(entry, bin_dir / entry.name, python):
                seen.add(entry.name)
    # pip's isolated build environments (PYTHONPATH starting with its pip-build-env-* dir) must not see the
    # environment's packages: a build requirement would then conflict with an older installed pin
    isolated = "'pip-build-env-' in os.environ.get('PYTHONPATH', '')"
    lines = [*paths, *(f"import os, site; {isolated} or site.addsitedir({str(d)!r})" for d in site_dirs)]
    # a legacy-virtualenv marker, only while an overlay install runs (see INSTALL_MARKER)
    lines.append(f"import os, sys; os.environ.get({INSTALL_MARKER!r}) and setattr(sys, 'real_prefix', "
                 f"{str(real.parent.parent)!r})")
    (own_site / "_expagent_env.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bin_dir


def _copy_script(src: Path, dest: Path, python: str) -> bool:
    """Copy a Python console script with its interpreter line replaced; ``False`` when it is not one.

    pip writes a long interpreter path as a ``#!/bin/sh`` trampoline whose next two lines re-exec Python."""
    lines = src.read_bytes().split(b"\n")
    if not lines[0].startswith(b"#!"):
        return False
    if lines[0].startswith(b"#!/bin/sh") and len(lines) > 2 and lines[1].startswith(b"'" * 3 + b"exec'"):
        body = lines[3:]
    elif b"python" in lines[0]:
        body = lines[1:]
    else:
        return False
    dest.write_bytes(b"\n".join([b"#!" + python.encode(), *body]))
    dest.chmod(0o755)
    return True


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
    with build_steps(builder, path, f"the install of {source.name} at {base_commit[:12]}"):
        builder.checkout(source, src, base_commit)
        for command in [*recipe.pre_install, *recipe.install]:
            builder.shell(command, src)
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
