"""Suite loading, repository sources and private checkouts."""

import json
import subprocess
from pathlib import Path

import pytest

from expagent.tasks.demo import make_demo_suite
from expagent.tasks.pythons import InterpreterMissing, find_python
from expagent.tasks.repos import RepoUnavailable, prepare_checkout, resolve_repo
from expagent.tasks.suite import SuiteError, load_suite

SWE_LITE = Path(__file__).resolve().parents[2] / "shared" / "data" / "swe-lite-dev-23.jsonl"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPAGENT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EXPAGENT_REPOS", raising=False)
    return tmp_path / "home"


@pytest.fixture()
def demo(tmp_path, home):
    return make_demo_suite(tmp_path / "demo")


def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_demo_suite_loads_with_list_and_json_string_test_names(demo):
    suite = load_suite(demo)
    assert [t.instance_id for t in suite.tasks] == ["demo__calc-1", "demo__calc-2", "demo__calc-3"]
    # demo__calc-1 stores PASS_TO_PASS as a JSON-encoded string, demo__calc-2 as a list
    assert suite.task("demo__calc-1").pass_to_pass == [
        "tests/test_arith.py::test_add", "tests/test_arith.py::test_sub", "tests/test_arith.py::test_div"]
    assert "tests/test_stats.py::test_mean_empty[empty list]" in suite.task("demo__calc-2").fail_to_pass
    # tasks of one (repo, version) share the environment built from the first task's commit
    assert {t.env_commit for t in suite.tasks} == {suite.tasks[0].base_commit}
    assert suite.task("demo__calc-2").test_files == ["tests/test_stats.py"]


def test_suite_name_lookup_and_unknown_instance(demo, monkeypatch):
    monkeypatch.chdir(demo.parent)
    (demo.parent / "swe_tasks").mkdir()
    demo.rename(demo.parent / "swe_tasks" / "demo")
    suite = load_suite("demo")
    with pytest.raises(SuiteError, match="unknown instance 'nope'.*demo__calc-1"):
        suite.task("nope")


def test_recipe_layers_manifest_repo_and_version(tmp_path):
    suite_dir = tmp_path / "s"
    suite_dir.mkdir()
    (suite_dir / "tasks.jsonl").write_text(json.dumps({
        "instance_id": "o__r-1", "repo": "o/r", "base_commit": "abc", "problem_statement": "p",
        "test_patch": "diff --git a/t.py b/t.py\n", "FAIL_TO_PASS": "[\"t.py::test\"]", "PASS_TO_PASS": "[]",
        "version": "1.2",
    }) + "\n")
    (suite_dir / "suite.toml").write_text(
        'name = "s"\n[env]\npython = "3.10"\ntimeout = 60\n'
        '[repos."o/r"]\nurl = "file:///nowhere/r.git"\n'
        '[repos."o/r".env]\ninstall = ["python -m pip install ."]\n'
        '[repos."o/r".env.versions."1.2"]\npython = "3.9"\nextend_install = ["echo done"]\n'
    )
    suite = load_suite(suite_dir / "suite.toml")
    recipe = suite.recipe("o/r", "1.2")
    assert recipe.python == "3.9" and recipe.timeout == 60
    assert recipe.install == ["python -m pip install .", "echo done"]
    assert suite.recipe("o/r", "1.3").python == "3.10"


@pytest.mark.parametrize("manifest, message", [
    ('[repos."o/r"]\nurl = "u"\npath = "p"\n', "exactly one of url, path, pypi"),
    ('[repos."x/y"]\nurl = "u"\n', "'o/r' is not listed"),
    ('[env]\npyhton = "3.9"\n[repos."o/r"]\nurl = "u"\n', "unknown env setting 'pyhton'"),
    ('name = \n', "malformed suite manifest"),
])
def test_bad_manifests_are_clear_errors(tmp_path, manifest, message):
    (tmp_path / "tasks.jsonl").write_text(json.dumps({
        "instance_id": "o__r-1", "repo": "o/r", "base_commit": "abc", "problem_statement": "p",
        "test_patch": "x", "FAIL_TO_PASS": [], "PASS_TO_PASS": []}) + "\n")
    (tmp_path / "suite.toml").write_text(manifest)
    with pytest.raises(SuiteError, match=message):
        load_suite(tmp_path)


def test_bad_task_records_name_the_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"instance_id": "a", "repo": "o/r"}\n')
    with pytest.raises(SuiteError, match=r"t.jsonl:1: missing field\(s\) base_commit"):
        load_suite(path)
    path.write_text("{not json\n")
    with pytest.raises(SuiteError, match="t.jsonl:1: malformed JSON"):
        load_suite(path)


@pytest.mark.skipif(not SWE_LITE.is_file(), reason="shared SWE-bench Lite extract not present")
def test_plain_swebench_jsonl_gets_swebench_recipes(tmp_path):
    records = [json.loads(line) for line in SWE_LITE.read_text().splitlines()[:2]]
    records[1]["FAIL_TO_PASS"] = json.dumps(records[1]["FAIL_TO_PASS"])  # the HF dataset form
    path = tmp_path / "lite.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    suite = load_suite(path)
    task = suite.tasks[1]
    assert task.fail_to_pass == json.loads(records[1]["FAIL_TO_PASS"])
    assert task.env_commit == records[1]["environment_setup_commit"]
    recipe = suite.recipe(task.repo, task.version)
    assert recipe.python == "3.9"
    assert recipe.requirements == ["requirements_dev.txt"]
    assert "types-pkg_resources" in recipe.requirements_exclude  # our carried override
    assert suite.source(task.repo).url == f"https://github.com/{task.repo}.git"


def test_sphinx_recipe_carries_the_docutils_and_pygments_pins():
    from expagent.tasks.swebench_specs import recipe_values

    values = recipe_values("sphinx-doc/sphinx", "4.0")
    assert {"docutils==0.17.1", "Pygments==2.18.0"} <= set(values["constraints"])
    assert "sed -i 's/pytest/pytest -rA/' tox.ini" in values["checkout_setup"]
    later = recipe_values("sphinx-doc/sphinx", "7.2")
    # apt-get steps become recorded system packages, never commands run on the host
    assert later["system_packages"] == ["graphviz"]
    assert not any("apt-get" in c for c in later["pre_install"])
    assert recipe_values("sphinx-doc/sphinx", "0.0") is None


def test_resolve_repo_from_repos_dir_layouts(demo, tmp_path):
    suite = load_suite(demo)
    source = demo / "repos" / "calc"
    repos = tmp_path / "repos"
    repos.mkdir()
    # <owner>+<name>/repo as a bare git dir (the mirror layout)
    git("clone", "-q", "--bare", str(source), str(repos / "demo+calc" / "repo"))
    assert resolve_repo(suite, "demo/calc", repos) == (repos / "demo+calc" / "repo").resolve()
    # <owner>__<name> as a work tree wins over the + form
    git("clone", "-q", str(source), str(repos / "demo__calc"))
    assert resolve_repo(suite, "demo/calc", repos) == (repos / "demo__calc").resolve()
    # without --repos the manifest's path is used
    assert resolve_repo(suite, "demo/calc") == source.resolve()


def test_unavailable_repo_says_which_and_how_to_provide_it(tmp_path, home):
    (tmp_path / "tasks.jsonl").write_text(json.dumps({
        "instance_id": "o__r-1", "repo": "o/r", "base_commit": "abc", "problem_statement": "p",
        "test_patch": "x", "FAIL_TO_PASS": [], "PASS_TO_PASS": []}) + "\n")
    (tmp_path / "suite.toml").write_text(f'[repos."o/r"]\nurl = "file://{tmp_path}/missing.git"\n')
    suite = load_suite(tmp_path)
    with pytest.raises(RepoUnavailable, match=r"repository o/r is not available.*--repos DIR.*o__r"):
        resolve_repo(suite, "o/r", tmp_path)


def test_prepare_checkout_is_private_and_leaves_the_source_alone(demo, tmp_path):
    suite = load_suite(demo)
    task = suite.task("demo__calc-2")
    source = demo / "repos" / "calc"
    head_before = git("rev-parse", "HEAD", cwd=source)
    checkout = prepare_checkout(task, tmp_path / "co")
    assert git("rev-parse", "HEAD", cwd=checkout) == task.base_commit
    (checkout / "calc" / "stats.py").write_text("broken\n")
    assert git("rev-parse", "HEAD", cwd=source) == head_before
    assert git("status", "--porcelain", cwd=source) == ""
    assert "broken" not in (source / "calc" / "stats.py").read_text()


def test_missing_interpreter_names_the_version(monkeypatch, tmp_path):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    with pytest.raises(InterpreterMissing, match=r"no Python 2\.5 interpreter found.*EXPAGENT_PYTHONS"):
        find_python("2.5", extra="")


def test_find_python_uses_expagent_pythons(tmp_path):
    import sys

    exe, version = find_python(f"{sys.version_info.major}.{sys.version_info.minor}", extra=sys.executable)
    assert version.startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert Path(exe).exists()


def test_requirements_exclude_drops_packages_before_pip_sees_them(tmp_path):
    import sys

    from expagent.tasks.envs import build_env
    from expagent.tasks.suite import EnvRecipe

    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "requirements_dev.txt").write_text("# dev tools\ntypes-pkg_resources>=0.1\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "reqs", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo)
    recipe = EnvRecipe(python=f"{sys.version_info.major}.{sys.version_info.minor}", system_site_packages=True,
                       requirements=["missing.txt", "requirements_dev.txt"],
                       requirements_exclude=["types_pkg_resources"], install=[])
    # the package does not exist on the index any more: pip would fail if it saw it
    env = build_env(recipe, "o/r", repo, head)
    filtered = (env.src / ".expagent-requirements_dev.txt").read_text()
    assert "types-pkg_resources" not in filtered and "# dev tools" in filtered
    assert "dropped requirement 'types-pkg_resources>=0.1'" in (env.path / "build.log").read_text()


def test_package_exports_the_api_lazily():
    import expagent.tasks as tasks
    from expagent.tasks import grader, suite

    assert tasks.load_suite is suite.load_suite and tasks.grade is grader.grade
    with pytest.raises(AttributeError):
        tasks.no_such_thing
