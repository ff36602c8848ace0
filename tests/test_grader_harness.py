"""Grading the way SWE-bench's harness does: the install at base_commit, tox-safe interpreters, an explicit
environment, tamper-proof test files, and one-line errors for bad input.

Synthetic repositories reproduce each mechanism here; the real instances (pytest's setuptools_scm
``_version.py``, sphinx's ``tox --current-env``) run when their repositories are available offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expagent.tasks.grader import grade, graded_test_files
from expagent.tasks.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def write(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)


# a setuptools_scm-like build: the install writes genpkg/_version.py (git-ignored) from the commit it runs at
_SETUP = '''\
import subprocess
from pathlib import Path
from setuptools import setup

commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
Path("genpkg/_version.py").write_text(f"version = '0.1.dev0+g{commit}'\\n")
setup(name="genpkg", version="0.1", packages=["genpkg"])
'''
_BUGGY = "from genpkg._version import version\n\n\ndef double(x):\n    return x + x + 1\n"
_FIXED = "from genpkg._version import version\n\n\ndef double(x):\n    return x + x\n"
_TESTS = '''\
import os

import genpkg


def test_version_is_generated():
    assert genpkg.version.startswith("0.1.dev0+g")


def test_runs_see_a_clean_environment():
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ and "EXPAGENT_CANARY" not in os.environ


def test_double():
    assert genpkg.double(2) == 4
'''


def make_suite(dest: Path, env: str, extra_files: dict[str, str] | None = None) -> Path:
    """A one-task suite whose package is only importable after its install has generated ``_version.py``."""
    repo = dest / "repos" / "genpkg"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write(repo, {"setup.py": _SETUP, ".gitignore": "genpkg/_version.py\n*.egg-info/\n", "genpkg/__init__.py": _BUGGY,
                 "tests/test_gen.py": _TESTS, **(extra_files or {})})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "genpkg")
    base = git(repo, "rev-parse", "HEAD").strip()
    write(repo, {"genpkg/__init__.py": _FIXED})
    gold = git(repo, "diff")
    git(repo, "checkout", "-q", ".")
    record = {"instance_id": "gen__pkg-1", "repo": "gen/pkg", "base_commit": base, "problem_statement": "double",
              "patch": gold, "test_patch": "", "FAIL_TO_PASS": ["tests/test_gen.py::test_double"],
              "PASS_TO_PASS": ["tests/test_gen.py::test_version_is_generated",
                               "tests/test_gen.py::test_runs_see_a_clean_environment"], "version": "0.1"}
    (dest / "tasks.jsonl").write_text(json.dumps(record) + "\n")
    (dest / "suite.toml").write_text(f'name = "gen"\n[repos."gen/pkg"]\npath = "repos/genpkg"\n\n[env]\n{env}')
    return dest


_ENV = (f'python = "{PY}"\nsystem_site_packages = true\n'
        'install = ["python setup.py -q develop --no-deps"]\n'
        'test_cmd = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -rA -p no:cacheprovider"\ntimeout = 120\n')


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPAGENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # the caller's variables must not reach the tests
    monkeypatch.setenv("EXPAGENT_CANARY", "leaked")
    return tmp_path / "home"


def _site_listing(env_path: Path) -> list[str]:
    return sorted(str(p.relative_to(env_path)) for p in (env_path / "venv").rglob("*") if "__pycache__" not in p.parts)


def test_install_at_base_commit_generates_files_in_an_overlay_and_leaves_the_env_unchanged(tmp_path, home):
    from expagent.tasks.envs import ensure_env

    suite = load_suite(make_suite(tmp_path / "gen", _ENV))
    task = suite.task("gen__pkg-1")
    env = ensure_env(task)
    before = _site_listing(env.path)
    gold = grade(task, task.patch)
    assert gold.resolved, gold.reason
    assert gold.pass_to_pass == {"tests/test_gen.py::test_version_is_generated": "PASSED",
                                 "tests/test_gen.py::test_runs_see_a_clean_environment": "PASSED"}
    overlay = env.path / "base" / task.base_commit
    assert (overlay / "overlay.json").is_file() and (overlay / "src" / "genpkg" / "_version.py").is_file()
    assert "install_build" in gold.durations  # the install ran now, once ...
    empty = grade(task, "")
    assert not empty.resolved and empty.fail_to_pass == {"tests/test_gen.py::test_double": "FAILED"}
    assert "install_build" not in empty.durations  # ... and the second grade reused it
    assert _site_listing(env.path) == before  # the cached env itself is untouched


def test_a_patch_to_the_build_is_installed_again_in_the_grade_only(tmp_path, home):
    from expagent.tasks.envs import ensure_env

    suite = load_suite(make_suite(tmp_path / "gen", _ENV))
    task = suite.task("gen__pkg-1")
    # the fix is in the build: what the install generates changes, so the project must be installed again
    task.fail_to_pass = ["tests/test_gen.py::test_version_is_generated"]
    task.pass_to_pass = []
    build_fix = _SETUP.replace("0.1.dev0+g", "0.2.dev0+g")
    repo = tmp_path / "gen" / "repos" / "genpkg"
    write(repo, {"setup.py": build_fix, "tests/test_gen.py": _TESTS.replace('"0.1.dev0+g"', '"0.2.dev0+g"')})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "0.2")
    task.base_commit = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "HEAD~1", "--", "setup.py")
    broken = git(repo, "diff", "--cached") or git(repo, "diff", "HEAD")
    git(repo, "checkout", "-q", "HEAD", "--", "setup.py")
    assert "setup.py" in broken
    # base has the 0.2 build; the candidate takes it back to 0.1: only a re-install shows that
    result = grade(task, broken)
    assert "reinstall" in result.durations and not result.resolved
    assert result.fail_to_pass == {"tests/test_gen.py::test_version_is_generated": "FAILED"}
    assert grade(task, "").resolved  # and the overlay for base_commit was left as it was
    assert ensure_env(task).cached


def test_tests_that_reach_python_through_a_link_stay_in_the_task_env(tmp_path, home):
    # what tox --current-env does: link .tox/<env>/bin/python to sys.executable and run the link
    runner = ("import os, subprocess, sys\n"
              "os.makedirs('.tox/py/bin', exist_ok=True)\n"
              "link = '.tox/py/bin/python'\n"
              "os.path.lexists(link) or os.symlink(sys.executable, link)\n"
              "env = {'PATH': os.path.abspath('.tox/py/bin') + ':/usr/bin:/bin'}  # tox drops PYTHONPATH\n"
              "sys.exit(subprocess.call([link, '-m', 'pytest', *sys.argv[1:]], env=env))\n")
    env = _ENV.replace("python -m pytest -rA", "python run_linked.py -rA")
    suite = load_suite(make_suite(tmp_path / "gen", env, {"run_linked.py": runner}))
    task = suite.task("gen__pkg-1")
    gold = grade(task, task.patch)
    assert gold.resolved, gold.reason
    assert not grade(task, "").resolved


@pytest.mark.slow
def test_tox_current_env_runs_in_the_task_env(tmp_path, home, sandbox_kind):
    # on Docker the env image is built from the same recipe on the project's base image, and tox's link must
    # resolve to that image's environment as it does to the local env
    tox_ini = "[tox]\nenvlist = py\n\n[testenv]\ncommands = python -m pytest -rA -p no:cacheprovider {posargs}\n"
    env = (f'python = "{PY}"\nsystem_site_packages = true\npip_packages = ["tox==4.16.0", "tox-current-env==0.0.11"]\n'
           'install = ["python setup.py -q develop --no-deps"]\n'
           'test_cmd = "tox --current-env -e py -v --"\ntimeout = 300\n')
    suite = load_suite(make_suite(tmp_path / "gen", env, {"tox.ini": tox_ini}))
    task = suite.task("gen__pkg-1")
    gold = grade(task, task.patch, sandbox_kind=sandbox_kind)
    assert gold.resolved, gold.reason
    assert "current-env" in Path(gold.log_path).read_text() or ".tox" in Path(gold.log_path).read_text()
    assert not grade(task, "", sandbox_kind=sandbox_kind).resolved


def _toolz_cheats(task, source: Path, tmp_path: Path) -> dict[str, str]:
    work = tmp_path / "toolz"
    subprocess.run(["git", "clone", "-q", str(source), str(work)], check=True)
    git(work, "checkout", "-q", task.base_commit)
    test_file, test_name = task.fail_to_pass[0].split("::")
    path = work / test_file
    text = path.read_text()
    start = text.index(f"def {test_name}(")
    body_start = text.index("\n", start) + 1
    end = text.find("\ndef ", body_start)
    path.write_text(text[:body_start] + "    pass\n" + (text[end:] if end != -1 else ""))
    weakened = git(work, "diff")
    git(work, "checkout", "-q", ".")
    path.unlink()
    deleted = git(work, "diff")
    return {"weakened": weakened, "deleted": deleted}


@pytest.mark.slow
def test_a_patch_that_weakens_or_deletes_the_graded_tests_is_not_resolved_on_toolz(tmp_path):
    # the shipped suites have no test patch: the graded test files are restored all the same
    from expagent.tasks.repos import resolve_repo

    suite = load_suite(ROOT / "swe_tasks" / "toolz")
    task = suite.task("toolz__itertoolz-1")
    assert task.test_patch == "" and graded_test_files(task) == ["toolz/tests/test_itertoolz.py"]
    try:
        source = resolve_repo(suite, task.repo)
    except Exception as exc:  # the sdist cannot be fetched here
        pytest.skip(f"toolz is not available: {exc}")
    for kind, cheat in _toolz_cheats(task, source, tmp_path).items():
        result = grade(task, cheat)
        assert result.patch_applied, kind
        assert not result.resolved, kind
        assert result.fail_to_pass == {"toolz/tests/test_itertoolz.py::test_get": "FAILED"}, kind


def test_candidate_edits_to_graded_tests_are_discarded_without_a_test_patch(tmp_path, home):
    suite = load_suite(make_suite(tmp_path / "gen", _ENV))
    task = suite.task("gen__pkg-1")
    assert task.test_patch == ""
    weakened = _TESTS.replace("assert genpkg.double(2) == 4", "assert True")
    repo = tmp_path / "gen" / "repos" / "genpkg"
    write(repo, {"tests/test_gen.py": weakened})
    cheat = git(repo, "diff")
    git(repo, "checkout", "-q", ".")
    result = grade(task, cheat)
    assert result.patch_applied and not result.resolved
    assert result.fail_to_pass == {"tests/test_gen.py::test_double": "FAILED"}
    # the same edit next to the real fix still resolves: only the tests are put back
    assert grade(task, task.patch + cheat).resolved


_EVAL_TEST = '''\
import os
from pathlib import Path


def test_eval_commands_ran():
    assert os.environ.get("EXPAGENT_EVAL_FLAG") == "on" and os.environ.get("EXPAGENT_EVAL_OTHER") == "two words"
    assert Path("eval_marker.txt").read_text().strip() == "made"
'''


def _task_with_test(tmp_path: Path, env: str, path: str, text: str, name: str):
    """The generated suite's task with one more test file, its test ``name`` added to PASS_TO_PASS."""
    root = make_suite(tmp_path / "gen", env, {path: text})
    record = json.loads((root / "tasks.jsonl").read_text())
    record["PASS_TO_PASS"].append(f"{path}::{name}")
    (root / "tasks.jsonl").write_text(json.dumps(record) + "\n")
    return load_suite(root).task("gen__pkg-1")


def test_eval_commands_set_the_environment_and_run_in_the_checkout(tmp_path, home, sandbox_kind):
    # SWE-bench's eval_commands: exports become the run's environment, other commands run in the checkout first;
    # on the local backend a locale the machine lacks falls back to C.UTF-8 and machine-level commands are skipped
    env = _ENV + ('eval_commands = ["export EXPAGENT_EVAL_FLAG=on LC_ALL=xx_NOWHERE.UTF-8", '
                  '"export EXPAGENT_EVAL_OTHER=\'two words\'", "echo made > eval_marker.txt", '
                  '"echo probe > /etc/expagent-eval-probe"]\n')
    task = _task_with_test(tmp_path, env, "tests/test_eval.py", _EVAL_TEST, "test_eval_commands_ran")
    gold = grade(task, task.patch, sandbox_kind=sandbox_kind)
    assert gold.resolved, gold.reason
    assert gold.pass_to_pass["tests/test_eval.py::test_eval_commands_ran"] == "PASSED"
    log = Path(gold.log_path).read_text()
    assert log.index("$ echo made > eval_marker.txt") < log.index("$ PYTEST_DISABLE_PLUGIN_AUTOLOAD=1")
    if sandbox_kind == "local":
        assert not Path("/etc/expagent-eval-probe").exists()
        assert any("/etc/expagent-eval-probe" in n and "not run on the local backend" in n for n in gold.notes)
        assert any(n.startswith("LC_ALL=xx_NOWHERE.UTF-8: that locale is not installed here") for n in gold.notes)


def test_machine_level_recipe_steps_are_noted_not_run_on_the_local_backend(tmp_path, home):
    from expagent.tasks.envs import ensure_env

    env = _ENV.replace('install = ["python setup.py -q develop --no-deps"]',
                       'install = ["python setup.py -q develop --no-deps"]\n'
                       'pre_install = ["echo \'en_US UTF-8\' > /etc/expagent-locale-probe", "locale-gen en_US.UTF-8"]\n'
                       'system_packages = ["graphviz"]')
    task = load_suite(make_suite(tmp_path / "gen", env)).task("gen__pkg-1")
    built = ensure_env(task)
    assert not Path("/etc/expagent-locale-probe").exists()
    log = (built.path / "build.log").read_text()
    assert "note: not run on the local backend (it changes the machine, not the checkout): locale-gen en_US.UTF-8" in log
    assert "apt-get packages are not installed on the local backend (it cannot apt-get): graphviz" in log
    gold = grade(task, task.patch)
    assert gold.resolved, gold.reason
    assert "apt-get packages not installed on the local backend: graphviz" in gold.notes


def test_graded_test_files_cover_pytest_and_django_names():
    from expagent.tasks.suite import Task

    task = Task(instance_id="x", repo="a/b", base_commit="0", problem_statement="", test_patch="",
                fail_to_pass=["pkg/tests/test_a.py::test_x[1]", "test_y (model_fields.tests.Tests)"],
                pass_to_pass=["pkg/tests/test_a.py::T::test_z", "weird [100%]"])
    files = graded_test_files(task)
    assert files[0] == "pkg/tests/test_a.py"
    assert "tests/model_fields/tests.py" in files and len(files) == len(set(files))


# -- real instances, from a small local mirror made in the test ---------------------------------------------------

def _real(instance_id: str, tmp_path: Path):
    """The instance from the Verified dev file with a mirror of its repository, or a skip saying what is missing."""
    data = ROOT.parent / "shared" / "data" / "swe-verified-dev-407.jsonl"
    repos = os.environ.get("SWEBENCH_REPOS")  # EXPAGENT_* settings are cleared for tests
    if not data.is_file():
        pytest.skip(f"{data.name} is not available")
    record = next(json.loads(line) for line in data.open() if json.loads(line)["instance_id"] == instance_id)
    owner, name = record["repo"].split("/")
    found = [Path(repos) / f"{owner}{sep}{name}" for sep in ("+", "__")] if repos else []
    found = [p for p in found if p.exists()]
    if not found:
        pytest.skip(f"{record['repo']} is not available offline (set SWEBENCH_REPOS to a directory holding "
                    f"{owner}+{name} or {owner}__{name})")
    mirror = tmp_path / "repos" / f"{owner}__{name}"
    subprocess.run(["git", "clone", "-q", "--mirror", "--shared", str(found[0]), str(mirror)], check=True)
    (tmp_path / "tasks.jsonl").write_text(json.dumps(record) + "\n")
    return load_suite(tmp_path / "tasks.jsonl").task(instance_id), tmp_path / "repos"


@pytest.mark.slow
@pytest.mark.parametrize("instance_id", ["pytest-dev__pytest-5262", "sphinx-doc__sphinx-7440"])
def test_real_instance_gold_resolves_and_empty_does_not(instance_id, tmp_path):
    task, repos = _real(instance_id, tmp_path)
    gold = grade(task, task.patch, repos_dir=repos)
    assert gold.resolved, gold.reason
    assert not grade(task, "", repos_dir=repos).resolved


# -- bad input: one line, exit non-zero, no traceback ---------------------------------------------------------------

def _eval(*args: str):
    from typer.testing import CliRunner

    from expagent.cli import _register, app

    _register()
    return CliRunner().invoke(app, ["eval", *args, "--sandbox", "local"])


def _one_line_error(result) -> str:
    assert result.exit_code not in (0, None), result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return str(result.exception)  # the CLI's error handler turns this into one line
    return lines[-1]


def _record(tmp_path: Path, **changes) -> Path:
    data = ROOT.parent / "shared" / "data" / "swe-verified-dev-407.jsonl"
    if data.is_file():
        record = json.loads(data.open().readline())
    else:
        record = {"instance_id": "psf__requests-1142", "repo": "psf/requests", "base_commit": "0" * 40,
                  "problem_statement": "x", "test_patch": "", "FAIL_TO_PASS": [], "PASS_TO_PASS": [], "version": "1.1"}
    record.update(changes)
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


def test_bad_input_is_one_line(tmp_path, home, monkeypatch):
    # a SWE-bench instance whose repository is not available offline: named, with the --repos layout
    path = _record(tmp_path, repo="psf/requests", version="2.0", instance_id="psf__requests-1")
    message = _one_line_error(_eval(str(path), "-i", "psf__requests-1", "--patch", "empty", "--repos", str(tmp_path)))
    assert "psf/requests" in message and "psf__requests" in message and "\n" not in message
    # a spec version SWE-bench does not have
    path = _record(tmp_path, repo="psf/requests", version="9.9", instance_id="psf__requests-2")
    message = _one_line_error(_eval(str(path), "-i", "psf__requests-2", "--patch", "empty"))
    assert "no SWE-bench spec for psf/requests version '9.9'" in message and "2.0" in message


def test_missing_interpreter_names_version_and_where_it_looked(tmp_path, home, monkeypatch):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("EXPAGENT_PYTHONS", str(tmp_path / "nowhere"))
    suite = load_suite(make_suite(tmp_path / "gen", _ENV.replace(f'python = "{PY}"', 'python = "2.5"')))
    message = _one_line_error(_eval(str(tmp_path / "gen"), "-i", "gen__pkg-1", "--patch", "empty"))
    assert message.startswith("no Python 2.5 interpreter found") and str(tmp_path / "no-pyenv") in message
    assert suite.task("gen__pkg-1")


def test_failing_build_step_names_the_command_and_keeps_the_log(tmp_path, home):
    import re

    env = _ENV.replace('install = ["python setup.py -q develop --no-deps"]',
                       'install = ["python setup.py -q develop --no-deps"]\n'
                       'pre_install = ["test -f genpkg/_version.py || (echo no-version-yet-4242; exit 5)"]')
    suite = load_suite(make_suite(tmp_path / "gen", env))
    task = suite.task("gen__pkg-1")
    from expagent.tasks.envs import EnvBuildError

    with pytest.raises(EnvBuildError) as caught:
        grade(task, task.patch)
    message = str(caught.value)
    assert caught.value.exit_code == 1  # the input was fine, the work failed
    assert "exited 5" in message and "no-version-yet-4242" in message and "\n" not in message
    assert "no-version-yet-4242" in open(re.search(r"\(log: (.+)\)$", message).group(1)).read()


# -- SWE-bench's own images (a locally built image that mimics their layout: registry pulls fail here) -----------

def _mimic_official_image(task, source: Path) -> str:
    """An image laid out like SWE-bench's instance images: the repository installed at /testbed and an
    ``activate`` script whose ``conda activate testbed`` puts the environment first."""
    from expagent.config import Settings
    from expagent.sandbox import images
    from expagent.sandbox.docker import DockerSandbox, connect
    from expagent.tasks.docker_envs import official_image_name

    name = official_image_name(task.instance_id)
    client = connect()
    activate = ('conda() { if [ "$1" = activate ]; then export PATH=/opt/miniconda3/envs/$2/bin:$PATH '
                'CONDA_DEFAULT_ENV=$2; fi; }')
    with DockerSandbox(source, Settings(), base_commit=task.base_commit, image=images.find_default_image(client)) as b:
        made = b.run("cp -a /work/repo /testbed && python3 -m venv --system-site-packages /opt/miniconda3/envs/testbed"
                     f" && mkdir -p /opt/miniconda3/bin && echo {json.dumps(activate)} > /opt/miniconda3/bin/activate",
                     timeout=300)
        assert made.exit_code == 0, made.output
        repository, _, tag = name.rpartition(":")
        b.container.commit(repository=repository, tag=tag)
    return name


@pytest.mark.slow
@pytest.mark.docker
def test_an_official_image_is_used_when_present_and_gives_the_local_outcomes(tmp_path, home):
    from conftest import docker_daemon_available

    from expagent.tasks.demo import make_demo_suite

    if not docker_daemon_available():
        pytest.skip("no Docker daemon on this machine")
    from expagent.sandbox.docker import connect

    suite = load_suite(make_demo_suite(tmp_path / "demo"))
    task = suite.task("demo__calc-2")
    name = _mimic_official_image(task, tmp_path / "demo" / "repos" / "calc")
    try:
        assert name == "swebench/sweb.eval.x86_64.demo_1776_calc-2:latest"
        for patch in (task.patch, ""):
            docker = grade(task, patch, sandbox_kind="docker")
            local = grade(task, patch, sandbox_kind="local")
            assert docker.environment == name
            assert (docker.fail_to_pass, docker.pass_to_pass) == (local.fail_to_pass, local.pass_to_pass)
            assert docker.resolved == local.resolved == bool(patch)
    finally:
        connect().images.remove(name, force=True)


_CARRIED_TEST = '''\
from pathlib import Path


def test_pre_install_variables_carried():
    assert Path("genpkg/carried.txt").read_text().strip() == "made here"
'''


def test_pre_install_lines_see_the_variables_earlier_lines_assigned(tmp_path, home, sandbox_kind):
    # the harness runs pre_install and install as one script (matplotlib 3.5+: QHULL_TAR="..." then wget "$QHULL_TAR")
    env = _ENV.replace('install = [', 'pre_install = ["GEN_TEXT=\\"made here\\"", '
                       '"echo \\"$GEN_TEXT\\" > genpkg/carried.txt"]\ninstall = [', 1)
    task = _task_with_test(tmp_path, env, "tests/test_carried.py", _CARRIED_TEST, "test_pre_install_variables_carried")
    gold = grade(task, task.patch, sandbox_kind=sandbox_kind)
    assert gold.resolved, gold.reason
    assert gold.pass_to_pass["tests/test_carried.py::test_pre_install_variables_carried"] == "PASSED"


def test_only_assignment_steps_are_carried():
    from expagent.tasks.runtime import one_shell

    steps = ['A=1 make', 'export B="x y"', 'echo "$B"', 'C=1; rm -f x', 'D="$HOME/b" E=2', 'echo "$D"']
    assert one_shell(steps) == ['A=1 make', 'export B="x y"', 'export B="x y"; echo "$B"',
                                'export B="x y"; C=1; rm -f x', 'export B="x y"; D="$HOME/b" E=2',
                                'export B="x y"; D="$HOME/b" E=2; echo "$D"']


_NET_TEST = '''import socket


def test_reaches_the_package_index():
    socket.create_connection(("pypi.org", 443), timeout=15).close()
'''


def test_tests_run_without_the_network_unless_grading_asks_for_it(tmp_path, home, sandbox_kind):
    # the official harness's containers have the network; by default a grade does not (the patch is untrusted
    # code), says so when the tests met network errors, and grade_network runs them as the harness does
    from expagent.config import Settings
    from expagent.tasks.grader import NETWORK_NOTE

    task = _task_with_test(tmp_path, _ENV, "tests/test_net.py", _NET_TEST, "test_reaches_the_package_index")
    offline = grade(task, task.patch, sandbox_kind=sandbox_kind)
    assert not offline.resolved and not offline.network
    assert offline.pass_to_pass["tests/test_net.py::test_reaches_the_package_index"] == "FAILED"
    assert NETWORK_NOTE in offline.notes
    online = grade(task, task.patch, sandbox_kind=sandbox_kind, settings=Settings(grade_network=True))
    assert online.resolved, online.reason
    assert online.network and NETWORK_NOTE not in online.notes
    # the agent's docker_network setting does not open the grade's network
    assert not grade(task, task.patch, sandbox_kind=sandbox_kind, settings=Settings(docker_network=True)).resolved


def test_a_host_the_tests_cannot_reach_with_the_network_on_is_noted(tmp_path, home):
    from expagent.config import Settings
    from expagent.tasks.grader import NETWORK_NOTE, UNREACHABLE_NOTE

    test = _NET_TEST.replace('("pypi.org", 443)', '("expagent-no-such-host.invalid", 80)')
    task = _task_with_test(tmp_path, _ENV, "tests/test_net.py", test, "test_reaches_the_package_index")
    result = grade(task, task.patch, settings=Settings(grade_network=True))
    assert not result.resolved and result.network
    assert UNREACHABLE_NOTE in result.notes and NETWORK_NOTE not in result.notes


def test_eval_test_network_flag_grades_with_the_network(tmp_path, home):
    _task_with_test(tmp_path, _ENV, "tests/test_net.py", _NET_TEST, "test_reaches_the_package_index")
    offline = _eval(str(tmp_path / "gen"))
    assert offline.exit_code == 1 and "note: the tests met network errors with the network off" in offline.output
    online = _eval(str(tmp_path / "gen"), "--test-network")
    assert online.exit_code == 0, online.output


_CREDENTIAL_ID_TEST = '''import pytest


@pytest.mark.parametrize("url", ["http://user:pass@example.com/path?query", "http://example.com/plain"])
def test_auth(url):
    print("parsed", url)
    assert url.startswith("http://")
'''


def test_test_ids_holding_url_credentials_are_graded_and_stored_redacted(tmp_path, home, sandbox_kind):
    # psf/requests' test ids hold URLs with fixture credentials; the sandbox's redactor cuts those from output,
    # which once left 15 PASS_TO_PASS tests of requests-6028 MISSING: the parser reads the output whole, the kept
    # log is redacted
    name = "test_auth[http://user:pass@example.com/path?query]"
    task = _task_with_test(tmp_path, _ENV, "tests/test_auth.py", _CREDENTIAL_ID_TEST, name)
    gold = grade(task, task.patch, sandbox_kind=sandbox_kind)
    assert gold.resolved, gold.reason
    assert gold.pass_to_pass[f"tests/test_auth.py::{name}"] == "PASSED"
    log = Path(gold.log_path).read_text()
    assert "user:pass@" not in log and "test_auth[http://[REDACTED]@example.com/path?query]" in log
