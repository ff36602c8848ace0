"""The explicit environment and the interpreter roots that task builds and test runs use (see ``overlays``).

Split from ``overlays`` so that ``envs`` (which builds environments with this explicit environment) and
``overlays`` (which builds on ``envs``) import one way.
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
    # the C headers, for an install that compiles extensions (astropy): distutils looks under sys.prefix
    include = real.parent.parent / "include"
    if include.is_dir() and not (dest / "include").exists():
        os.symlink(include, dest / "include")
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
