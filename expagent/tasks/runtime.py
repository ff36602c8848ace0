"""The explicit environment and the interpreter roots that task builds and test runs use (see ``overlays``).

Split from ``overlays`` so that ``envs`` (which builds environments with this explicit environment) and
``overlays`` (which builds on ``envs``) import one way.
"""

from __future__ import annotations

import functools
import os
import re
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


def build_exports() -> dict[str, str]:
    """The build variables (package index, proxy, CA bundle: :data:`BUILD_VARS`) for an install that runs inside a
    grading sandbox, where a candidate patch's own build code runs too: none that carries credentials (a URL with a
    user or password, e.g. a private index token), so those never reach code the agent wrote."""
    from urllib.parse import urlsplit

    def has_credentials(value: str) -> bool:
        for part in value.replace(",", " ").split():
            try:
                url = urlsplit(part)
            except ValueError:
                return True
            if url.username or url.password:
                return True
        return False

    return {name: os.environ[name] for name in BUILD_VARS
            if name in os.environ and name != "PIP_CONFIG_FILE" and not has_credentials(os.environ[name])}


def clean_shell_prefix(path_dirs: list[str], extra: dict[str, str] | None = None) -> str:
    """Shell text that drops every exported variable but the allowlisted ones, then sets the run's own."""
    keep = "|".join(PASSED_VARS)
    exports = {**FIXED_VARS, "PATH": ":".join([*path_dirs, SYSTEM_PATH]), **(extra or {})}
    return (
        f"for __v in $(compgen -e); do case \"$__v\" in {keep}) ;; *) unset \"$__v\" 2>/dev/null;; esac; done; "
        "unset __v; " + "".join(f"export {k}={shlex.quote(v)}; " for k, v in exports.items())
    )


# -- the spec's eval_commands and machine-level steps ------------------------------------------------------------

#: a command that changes the machine rather than the checkout: a package manager, locale generation, or a write
#: to a system directory. SWE-bench runs these in its containers; the local backend cannot (and must not) run them
#: on the host, so it skips them with a note; the Docker backend runs them.
_SYSTEM_COMMAND = re.compile(r"(^|[;&|(]\s*)(sudo\s+)?(apt-get|apt|dpkg|yum|apk|locale-gen|update-locale)\b|"
                             r"(>|\s)/(etc|usr|var|opt|root|lib|bin|sbin)/")
_EXPORT_ITEM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_LOCALE_VARS = {"LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_COLLATE", "LC_NUMERIC", "LC_TIME"}


def system_command(command: str) -> bool:
    return bool(_SYSTEM_COMMAND.search(command))


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def one_shell(commands: list[str]) -> list[str]:
    """A spec's steps, each still run on its own (so a failure names its command), with the variables the steps
    before it assigned: the harness runs a spec's ``pre_install`` and ``install`` lines as one script, so a line
    such as ``QHULL_TAR="/tmp/qhull.tgz"`` (matplotlib 3.5+) is seen by the lines after it. A step that is only
    assignments (``NAME=value``, ``export NAME=value``) is carried into each later step as a prefix."""
    carried: list[str] = []
    out = []
    for command in commands:
        out.append("; ".join([*carried, command]) if carried else command)
        if _only_assignments(command):
            carried.append(command)
    return out


def install_steps(recipe) -> list[str]:
    """The recipe's ``pre_install`` then ``install`` steps, as every backend runs them (``one_shell``)."""
    return one_shell([*recipe.pre_install, *recipe.install])


def _only_assignments(command: str) -> bool:
    if re.search(r"[;&|`]", command):
        return False
    try:
        words = shlex.split(command, posix=True)
    except ValueError:
        return False
    if words[:1] == ["export"]:
        words = words[1:]
    return bool(words) and all(_ASSIGNMENT.match(word) for word in words)


@dataclass(frozen=True)
class EvalSetup:
    """The spec's ``eval_commands`` as the harness applies them: ``export NAME=VALUE`` lines become the test run's
    explicit environment, every other command runs in the checkout before the tests."""

    exports: dict[str, str]
    commands: list[str]


def eval_setup(commands: list[str]) -> EvalSetup:
    exports: dict[str, str] = {}
    others: list[str] = []
    for command in commands:
        try:
            words = shlex.split(command)
        except ValueError:
            words = []
        plain = not re.search(r"[$`;&|<>()]", command)
        if plain and len(words) > 1 and words[0] == "export" and all(_EXPORT_ITEM.match(w) for w in words[1:]):
            exports.update(w.split("=", 1) for w in words[1:])
        else:
            others.append(command)
    return EvalSetup(exports, others)


@functools.cache
def available_locales() -> frozenset[str]:
    """This machine's locales (``locale -a``), normalized (``en_us.utf8``)."""
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset({"c", "posix", "c.utf8"})
    return frozenset(_normal_locale(line) for line in out.split())


def _normal_locale(name: str) -> str:
    return name.strip().lower().replace("utf-8", "utf8")


def host_locale_exports(exports: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """``exports`` for a run on this machine: a locale it lacks becomes ``C.UTF-8`` (same encoding; the harness
    generates the locale in its image, which the local backend cannot do), with a note saying so."""
    out, notes = dict(exports), []
    for name, value in exports.items():
        if name in _LOCALE_VARS and value and _normal_locale(value) not in available_locales():
            out[name] = FIXED_VARS["LANG"]
            notes.append(f"{name}={value}: that locale is not installed here; the run uses {FIXED_VARS['LANG']}")
    return out, notes


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


_ROOT_MODULE = "_expagent_root"
#: run at start-up by an interpreter root's .pth: sys.base_prefix, sys.path's standard library entries and
#: sysconfig (which Python 3.6 imports before any .pth) name the real installation, as in a venv
_ROOT_SOURCE = '''"""Written by expagent into a grading interpreter root: its standard library is the installation's."""
import sys

REAL, REAL_LIB, OWN_LIB = {real!r}, {real_lib!r}, {own_lib!r}
sys.base_prefix = sys.base_exec_prefix = REAL
sys.path[:] = [REAL_LIB + p[len(OWN_LIB):] if (p + "/").startswith(OWN_LIB + "/") and "site-packages" not in p
               else p for p in sys.path]
_sysconfig = sys.modules.get("sysconfig")
if _sysconfig is not None:
    _sysconfig._BASE_PREFIX = _sysconfig._BASE_EXEC_PREFIX = REAL
    if getattr(_sysconfig, "_CONFIG_VARS", None):
        _sysconfig._CONFIG_VARS.update(installed_base=REAL, installed_platbase=REAL)
'''


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
    installation = real.parent.parent  # the real prefix the interpreter belongs to
    # the C headers, for an install that compiles extensions (astropy): distutils looks under sys.prefix
    include = installation / "include"
    if include.is_dir() and not (dest / "include").exists():
        os.symlink(include, dest / "include")
    shutil.copy2(real, bin_dir / f"python{mm}")
    # Code that resolves a module's real path to decide whether it is in the standard library (astroid's
    # is_standard_module) must find the standard library at the installation, not at these links, while the
    # root's site-packages stays ours; and a link to this root's interpreter from elsewhere (tox --current-env's
    # .tox/<env>/bin/python) must still start this root.
    python3 = mm != "2.7"
    if python3 and tuple(int(n) for n in mm.split(".")) >= (3, 11):
        # 3.11+: a venv marker naming the real installation: a direct start is a venv of it, as before (a linked
        # start is a plain prefix, completed by the module below)
        (dest / "pyvenv.cfg").write_text(f"home = {real.parent}\ninclude-system-site-packages = false\n"
                                         f"version = {interp.version}\n", encoding="utf-8")
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
    if python3:
        # before 3.11 a venv marker is found through the link but the venv is then looked for beside the link,
        # so a linked start lost the root (sphinx 7.2's tox: "No module named pytest"); from 3.11 a linked
        # start finds the root by its landmark (lib/pythonX.Y/os.py) but not the marker. Before 3.11 the root is
        # such a plain prefix for every start; this module, run first, makes the standard library the
        # installation's, as a venv's is
        (own_site / f"{_ROOT_MODULE}.py").write_text(_ROOT_SOURCE.format(
            real=str(installation), real_lib=str(stdlib), own_lib=str(lib)), encoding="utf-8")
        lines.insert(0, f"import {_ROOT_MODULE}")
    # a legacy-virtualenv marker, only while an overlay install runs (see INSTALL_MARKER)
    lines.append(f"import os, sys; os.environ.get({INSTALL_MARKER!r}) and setattr(sys, 'real_prefix', "
                 f"{str(installation)!r})")
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
