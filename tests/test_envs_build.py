"""Environment builds: the old-pip rule, submodules from local mirrors, and sandboxes that can run an env made
from another interpreter than the caller's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from expagent.tasks.envs import OLD_PIP_CHECK, Builder, build_env, pip_upgrade_args
from expagent.tasks.pythons import InterpreterMissing, find_python
from expagent.tasks.runtime import clean_environ
from expagent.tasks.suite import EnvRecipe

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_ALLOW_PROTOCOL": "file"}
    return subprocess.run(["git", "-C", str(repo), "-c", "protocol.file.allow=always", *args], check=True,
                          capture_output=True, text=True, env=env).stdout


def make_repo(path: Path, files: dict[str, str]) -> str:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "init")
    return git(path, "rev-parse", "HEAD").strip()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPAGENT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _other_python() -> str | None:
    """A Python version other than the running one that is installed here, if any."""
    for version in ("3.9", "3.10", "3.8", "3.12", "3.7", "3.6"):
        if version == PY:
            continue
        try:
            find_python(version)
        except InterpreterMissing:
            continue
        return version
    return None


@pytest.mark.slow  # builds venvs of old interpreters (a few seconds)
def test_the_old_pip_check_tells_a_pre_resolver_pip_from_a_current_one(tmp_path):
    # the running interpreter's pip is current: no upgrade
    assert subprocess.run([sys.executable, "-c", OLD_PIP_CHECK], capture_output=True).returncode == 1
    # an index without Requires-Python data would offer an old pip the newest release: the bound is explicit
    assert pip_upgrade_args("3.6.15")[-2:] == ["pip<22", "wheel<0.38"]
    assert pip_upgrade_args("3.11.7")[-2:] == ["pip", "wheel"]
    try:
        exe, _ = find_python("3.6")
    except InterpreterMissing:
        pytest.skip("no Python 3.6 here (its venvs start with pip 18.1)")
    subprocess.run([exe, "-m", "venv", str(tmp_path / "v")], check=True, capture_output=True)
    probe = subprocess.run([str(tmp_path / "v/bin/python"), "-c", OLD_PIP_CHECK], capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.startswith("pip 18.")


def test_submodules_are_checked_out_from_a_mirror_next_to_the_repository(tmp_path):
    repos = tmp_path / "repos"
    sub_commit = make_repo(repos / "acme+helpers", {"helpers/__init__.py": "VALUE = 42\n"})
    make_repo(repos / "acme+main", {"README": "main\n"})
    main = repos / "acme+main"
    git(main, "submodule", "add", "-q", str(repos / "acme+helpers"), "acme_helpers")
    git(main, "config", "-f", ".gitmodules", "submodule.acme_helpers.url", "https://github.com/acme/helpers.git")
    git(main, "add", "-A")
    git(main, "commit", "-q", "-m", "helpers as a submodule")
    commit = git(main, "rev-parse", "HEAD").strip()
    dest = tmp_path / "build" / "src"
    dest.parent.mkdir()
    builder = Builder(tmp_path / "build.log", clean_environ([]), lambda _m: None)
    try:
        builder.checkout(main, dest, commit)
    finally:
        builder.close()
    assert (dest / "acme_helpers" / "helpers" / "__init__.py").read_text() == "VALUE = 42\n"
    assert git(dest / "acme_helpers", "rev-parse", "HEAD").strip() == sub_commit
    # no network was needed: the GitHub URL was replaced by the mirror
    assert "github.com" not in git(dest, "config", "submodule.acme_helpers.url")


def test_a_missing_submodule_mirror_is_noted_in_the_build_log(tmp_path):
    repos = tmp_path / "repos"
    make_repo(repos / "acme+helpers", {"x.py": "x = 1\n"})
    make_repo(repos / "acme+main", {"README": "main\n"})
    main = repos / "acme+main"
    git(main, "submodule", "add", "-q", str(repos / "acme+helpers"), "vendored")
    git(main, "config", "-f", ".gitmodules", "submodule.vendored.url", "https://github.com/elsewhere/gone.git")
    git(main, "commit", "-q", "-am", "sub")
    dest = tmp_path / "src"
    builder = Builder(tmp_path / "build.log", clean_environ([]), lambda _m: None)
    try:
        builder.checkout(main, dest, git(main, "rev-parse", "HEAD").strip())
    finally:
        builder.close()
    log = (tmp_path / "build.log").read_text()
    assert "note: submodule vendored (https://github.com/elsewhere/gone.git) has no local mirror" in log


def test_the_grading_sandbox_runs_an_env_made_from_another_interpreter(tmp_path, home):
    from expagent.tasks.grader import _open_sandbox

    other = _other_python()
    if other is None:
        pytest.skip("no Python other than the running one is installed here")
    repo = tmp_path / "repo"
    commit = make_repo(repo, {"m.py": "x = 1\n"})
    env = build_env(EnvRecipe(python=other, install=[]), "t/r", repo, commit)
    assert Path(env.interpreter.exe).resolve().parent.parent in env.host_paths
    with _open_sandbox("local", repo, None, commit, env, lambda _m: None) as sb:
        done = sb.run(f"{env.bin_dir}/python -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'", timeout=60)
    assert done.exit_code == 0, done.output
    assert done.output.strip().splitlines()[-1] == other


def test_an_interpreter_root_has_the_c_headers_for_extension_builds(tmp_path):
    import sysconfig

    from expagent.tasks.runtime import Interpreter, make_root

    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        pytest.skip("this interpreter has no C headers installed")
    interp = Interpreter(sys.executable, "%d.%d.%d" % sys.version_info[:3])
    bin_dir = make_root(tmp_path / "root", interp, paths=[], site_dirs=[], script_dirs=[])
    probe = subprocess.run([str(bin_dir / "python"), "-c",
                            "import sys, sysconfig; print(sys.prefix); print(sysconfig.get_paths()['include'])"],
                           capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    prefix, include = probe.stdout.split()
    assert prefix == str(tmp_path / "root")  # the root is the interpreter's prefix (installs land there) ...
    assert (Path(include) / "Python.h").is_file()  # ... and an extension build finds the headers


def test_grading_checkouts_go_where_expagent_grade_tmpdir_says(tmp_path, monkeypatch):
    from expagent.tasks.grader import grade_tmpdir

    monkeypatch.setenv("EXPAGENT_GRADE_TMPDIR", str(tmp_path))
    assert grade_tmpdir() == str(tmp_path)
    monkeypatch.setenv("EXPAGENT_GRADE_TMPDIR", "")
    assert grade_tmpdir() is None  # empty: the system's temporary directory
    monkeypatch.delenv("EXPAGENT_GRADE_TMPDIR")
    chosen = grade_tmpdir()
    assert chosen in (None, "/dev/shm")
    if chosen:
        assert os.statvfs(chosen).f_bavail * os.statvfs(chosen).f_frsize >= 2 << 30


def _root_interpreters() -> list:
    """This interpreter and, when the machine has them, one before 3.11 (other venv rules) and 3.6 (sysconfig
    imported before any .pth)."""
    from expagent.errors import ExpagentError
    from expagent.tasks.pythons import find_python

    found = [pytest.param((sys.executable, "%d.%d.%d" % sys.version_info[:3]), id="this")]
    for version in ("3.9", "3.6"):
        try:
            found.append(pytest.param(find_python(version), id=version))
        except ExpagentError:
            found.append(pytest.param(None, id=version, marks=pytest.mark.skip(f"no Python {version} here")))
    return found


@pytest.mark.parametrize("python", _root_interpreters())
def test_an_interpreter_root_keeps_the_standard_library_where_it_really_is(tmp_path, python):
    """Code that resolves a module's real path to decide whether it is standard (astroid's is_standard_module,
    SWE-bench astroid-1333) must see the installation's standard library, not the root's links to it; and a
    link to the root's interpreter from elsewhere (tox --current-env's .tox/py39/bin/python, sphinx 7.2) must
    start the root, its packages included: before 3.11 a venv marker lost it ("No module named pytest")."""
    from expagent.tasks.runtime import Interpreter, make_root

    packages = tmp_path / "env-site"
    packages.mkdir()
    (packages / "envonly.py").write_text("WHERE = 'env'\n")
    bin_dir = make_root(tmp_path / "root", Interpreter(*python), paths=[], site_dirs=[packages], script_dirs=[])
    linked = tmp_path / "checkout" / ".tox" / "py" / "bin"
    linked.mkdir(parents=True)
    (linked / "python").symlink_to(bin_dir / "python")
    code = ("import os, sys, sysconfig, hashlib, envonly; std = os.path.realpath(sysconfig.get_paths()['stdlib']); "
            "print(os.path.realpath(hashlib.__file__).startswith(std + os.sep), sys.prefix, "
            "sysconfig.get_paths()['purelib'])")
    for start in (bin_dir / "python", linked / "python"):
        probe = subprocess.run([str(start), "-c", code], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})
        assert probe.returncode == 0, (start, probe.stderr[-300:])
        standard, prefix, purelib = probe.stdout.split()
        assert standard == "True", start
        assert prefix == str(tmp_path / "root") and purelib.startswith(prefix), start  # installs land in the root


def test_an_install_in_the_grading_sandbox_gets_the_index_settings_but_never_credentials(monkeypatch):
    """A candidate patch that changes the build is installed again inside the grading sandbox, where its own
    build code runs: it gets the machine's index, proxy and CA bundle (pylint-4661's reinstall failed on the
    proxy's certificate without them), never a variable that carries a user or a password."""
    from expagent.tasks.runtime import build_exports

    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "HTTPS_PROXY", "PIP_CERT", "PIP_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///opt/pypi/simple https://tok3n@private.example/simple")
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.org/simple")
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pa55@proxy.example:3128")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/root/.config/pip/pip.conf")
    got = build_exports()
    assert got["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"
    assert got["PIP_INDEX_URL"] == "https://pypi.org/simple"
    assert "PIP_EXTRA_INDEX_URL" not in got and "HTTPS_PROXY" not in got  # they carry credentials
    assert "PIP_CONFIG_FILE" not in got  # a config file may hold them too
    assert not any("tok3n" in v or "pa55" in v for v in got.values())
