"""Finding a Python interpreter of a given version for a task environment.

Looked up, in order: ``settings.pythons`` / ``$EXPAGENT_PYTHONS`` (a ``:``-separated list of
interpreters, or of directories holding ``bin/python3.X`` such as pyenv version dirs), pyenv's
versions directory (``$PYENV_ROOT`` or ``~/.pyenv``), then ``python3.X`` on ``PATH``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from expagent.errors import ExpagentError


class InterpreterMissing(ExpagentError):
    pass


@functools.cache
def interpreter_version(exe: str) -> str | None:
    """``X.Y.Z`` of the interpreter at ``exe``, or ``None`` when it does not run."""
    try:
        proc = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True, text=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _matches(found: str, wanted: str) -> bool:
    return found == wanted or found.startswith(wanted + ".")


def _candidates(version: str, extra: str | None) -> list[str]:
    major_minor = ".".join(version.split(".")[:2])
    names = [f"python{major_minor}", "python3", "python"]
    out: list[str] = []
    for entry in (extra or "").split(os.pathsep):
        if not entry.strip():
            continue
        path = Path(entry.strip()).expanduser()
        if path.is_dir():
            out += [str(path / "bin" / name) for name in names if (path / "bin" / name).exists()]
            out += [str(path / name) for name in names if (path / name).is_file()]
        elif path.exists():
            out.append(str(path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv_root.is_dir():
        dirs = [d for d in pyenv_root.iterdir() if d.name == version or d.name.startswith(major_minor + ".")]

        def key(d: Path):
            return [int(p) if p.isdigit() else -1 for p in d.name.split(".")]

        for d in sorted(dirs, key=key, reverse=True):
            exe = d / "bin" / f"python{major_minor}"
            if exe.exists():
                out.append(str(exe))
    on_path = shutil.which(f"python{major_minor}")
    if on_path:
        out.append(on_path)
    return out


def find_python(version: str, extra: str | None = None) -> tuple[str, str]:
    """``(path, X.Y.Z)`` of an interpreter for ``version`` ("3.9" or "3.9.18"), or a clear error."""
    extra = extra if extra is not None else os.environ.get("EXPAGENT_PYTHONS")
    for exe in _candidates(version, extra):
        found = interpreter_version(exe)
        if found and _matches(found, version):
            return exe, found
    major_minor = ".".join(version.split(".")[:2])
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    where = [f"EXPAGENT_PYTHONS={extra}" if extra else "EXPAGENT_PYTHONS (unset)", f"{pyenv}/{major_minor}.*",
             f"python{major_minor} on PATH"]
    raise InterpreterMissing(
        f"no Python {version} interpreter found (looked in {', '.join(where)}); "
        f"install it (e.g. 'pyenv install {version}') or list it in EXPAGENT_PYTHONS"
    )
