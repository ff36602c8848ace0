"""History hints, blame, shallow clones and fix-commit mining on repositories built in the test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from expagent.codeintel.history import (blame, file_history, find_fix_commits, fix_score, is_test_path,
                                        open_repo, shallow_note)
from expagent.codeintel.patchkeys import files_and_symbols_from_patch
from expagent.codeintel.tools import blame_tool, history_tool
from expagent.errors import ExpagentError


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
           "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout


def _commit(repo: Path, files: dict[str, str], message: str, date: str) -> str:
    for rel, text in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", message, date=date)
    return _git(repo, "rev-parse", "HEAD").strip()


CALC_V1 = "class Calculator:\n    def divide(self, a, b):\n        return a / b\n\n    def add(self, a, b):\n        return a + b\n"
CALC_V2 = CALC_V1.replace("return a / b", "if b == 0:\n            raise ZeroDivisionError('b is zero')\n"
                                            "        return a / b")


@pytest.fixture
def history_repo(tmp_path: Path) -> dict:
    repo = tmp_path / "calc"
    repo.mkdir()
    _git(repo, "init", "-q")
    shas = {}
    shas["init"] = _commit(repo, {"calc/core.py": CALC_V1, "README.md": "calc\n"}, "Initial import",
                           "2024-01-01T10:00:00+00:00")
    shas["feature"] = _commit(repo, {"calc/extra.py": "def square(x):\n    return x * x\n"},
                              "Add square helper", "2024-02-01T10:00:00+00:00")
    shas["fix"] = _commit(
        repo, {"calc/core.py": CALC_V2,
               "tests/test_core.py": "def test_divide_by_zero():\n    pass\n"},
        "Fix crash in Calculator.divide when b is 0\n\nCloses #12: dividing by zero raised a bare error.",
        "2024-03-01T10:00:00+00:00")
    shas["docs"] = _commit(repo, {"README.md": "calc, a calculator\n"}, "Fix typo in README",
                           "2024-04-01T10:00:00+00:00")
    big = "".join(f"def f{i}():\n    return {i}\n\n" for i in range(300))
    shas["refactor"] = _commit(repo, {"calc/generated.py": big}, "Fix everything by regenerating tables",
                               "2024-05-01T10:00:00+00:00")
    shas["fix2"] = _commit(repo, {"calc/extra.py": "def square(x):\n    return x ** 2\n"},
                           "square: fix wrong result for big ints", "2024-06-01T10:00:00+00:00")
    return {"repo": repo, "shas": shas}


def test_find_fix_commits_shapes_and_heuristics(history_repo):
    repo, shas = history_repo["repo"], history_repo["shas"]
    found = find_fix_commits(repo)
    ids = [r["instance_id"] for r in found]
    # newest first; docs typo, oversized change and non-fix commits are not fixes
    assert ids == [f"git:{shas['fix2'][:10]}", f"git:{shas['fix'][:10]}"]
    fix = found[1]
    assert fix["base_commit"] == shas["feature"]  # the parent
    assert fix["problem_statement"].startswith("Fix crash in Calculator.divide")
    assert "Closes #12" in fix["problem_statement"]
    assert fix["created_at"].startswith("2024-03-01T10:00:00")
    assert fix["repo"] == "calc"
    # the patch holds the source change only; the test change is kept apart
    assert "calc/core.py" in fix["patch"] and "tests/test_core.py" not in fix["patch"]
    assert "tests/test_core.py" in fix["test_patch"]
    assert files_and_symbols_from_patch(fix["patch"]) == (["calc/core.py"], ["Calculator.divide"])
    # touching tests scores higher than not
    assert found[1]["fix_score"] > found[0]["fix_score"]


def test_find_fix_commits_since_and_max(history_repo):
    repo, shas = history_repo["repo"], history_repo["shas"]
    assert [r["instance_id"] for r in find_fix_commits(repo, since="2024-05-15")] == [f"git:{shas['fix2'][:10]}"]
    assert len(find_fix_commits(repo, max_count=1)) == 1


def test_fix_score_rules():
    src = [("pkg/mod.py", 3, 1)]
    assert fix_score("Fix off-by-one in parser", src) > 0
    assert fix_score("Add a parser", src) == 0  # no fix word
    assert fix_score("Fix crash", [("README.md", 1, 1)]) == 0  # no source code
    assert fix_score("Merge branch 'fix-1'", src) == 0
    assert fix_score("Fix bug", src + [("tests/test_mod.py", 5, 0)]) > fix_score("Fix bug", src)
    # a squash merge's "(#123)" is a pull request number, not an issue the commit fixes
    assert fix_score("Add a parser (#123)", src) == 0
    assert fix_score("Add a parser\n\nFixes #123", src) > 0
    # a body that mentions errors in passing does not make a feature a fix
    assert fix_score("Add a parser\n\nThe old one raised an error.", src) == 0
    # fixes to typing, linting and docs are not behaviour fixes
    for subject in ("Fix type hints", "Fix mypy error", "Fix flake8 issues", "Fix docstring of parse", "Fix typo"):
        assert fix_score(subject, src) == 0, subject
    assert is_test_path("tests/unit/x.py") and is_test_path("pkg/test_x.py") and not is_test_path("pkg/x.py")


def test_file_history_for_file_and_symbol(history_repo):
    repo, shas = history_repo["repo"], history_repo["shas"]
    text = file_history(repo, "calc/core.py")
    lines = text.splitlines()
    assert lines[0] == "Recent commits touching calc/core.py:"
    assert lines[1].startswith(f"  {shas['fix'][:7]} 2024-03-01 Ada: Fix crash in Calculator.divide")
    assert lines[1].endswith("(+2 -0)")
    assert lines[2].startswith(f"  {shas['init'][:7]} 2024-01-01")
    # a symbol is followed through its own lines: add() never changed after the initial import
    add_history = file_history(repo, "Calculator.add")
    assert "calc/core.py" in add_history.splitlines()[0]
    assert "Initial import" in add_history and "Fix crash" not in add_history
    assert "Fix crash" in file_history(repo, "divide")
    assert len(file_history(repo, "calc/core.py", max_count=1).splitlines()) == 2


def test_blame_range(history_repo):
    repo, shas = history_repo["repo"], history_repo["shas"]
    text = blame(repo, "calc/core.py", 2, 4)
    rows = [ln for ln in text.splitlines()[1:] if not ln.strip().startswith("^")]
    assert len(rows) == 3
    assert shas["init"][:8] in rows[0] and "def divide" in rows[0]
    assert shas["fix"][:8] in rows[1] and "if b == 0" in rows[1]
    with pytest.raises(ExpagentError, match="bad line range"):
        blame(repo, "calc/core.py", 5, 2)
    with pytest.raises(ExpagentError, match="only"):
        blame(repo, "calc/core.py", 500, 501)


def test_tools_return_errors_as_text(history_repo, tmp_path: Path):
    repo = str(history_repo["repo"])
    assert history_tool(repo, "calc/core.py", 2).startswith("Recent commits touching calc/core.py:")
    assert history_tool(repo, "NoSuchThing").startswith("error: no file or symbol named")
    assert history_tool(repo, "").startswith("error:")
    assert history_tool(str(tmp_path), "x.py").startswith("error: not inside a git repository")
    assert blame_tool(repo, "calc/core.py", 1, 2).startswith("Blame for calc/core.py:1-2")
    assert blame_tool(repo, "missing.py", 1, 2).startswith("error: no such file")
    assert blame_tool(repo, "calc/core.py", "one", 2).startswith("error: start and end must be integers")


def test_shallow_clone_is_reported(history_repo, tmp_path: Path):
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{history_repo['repo']}", str(clone)],
                   check=True, capture_output=True)
    assert shallow_note(open_repo(clone)).startswith("note: this is a shallow clone")
    assert shallow_note(open_repo(history_repo["repo"])) == ""
    assert "shallow clone" in file_history(clone, "calc/core.py")
    assert "shallow clone" in blame(clone, "calc/core.py", 1, 2)


def test_not_a_repository(tmp_path: Path):
    with pytest.raises(ExpagentError, match="not inside a git repository"):
        find_fix_commits(tmp_path)


def test_learn_git_stores_reference_fix_episodes(history_repo, tmp_path: Path):
    from expagent.codeintel.learn import learn_git
    from expagent.memory.store import MemoryStore

    repo, shas = history_repo["repo"], history_repo["shas"]
    dry = learn_git(repo, dry_run=True)
    assert dry["found"] == 2 and dry["added"] == 0

    store = MemoryStore.open(home=tmp_path / "home")
    try:
        first = learn_git(repo, store=store)
        again = learn_git(repo, store=store)
        episodes = {e.instance_id: e for e in store.list(kind="episode")}
    finally:
        store.close()
    assert (first["added"], again["added"], again["already_present"]) == (2, 0, 2)
    fix = episodes[f"git:{shas['fix'][:10]}"]
    assert fix.outcome_source == "reference_fix"
    assert fix.base_commit == shas["feature"]
    assert fix.files == ["calc/core.py"] and fix.symbols == ["Calculator.divide"]
    assert fix.issue.startswith("Fix crash in Calculator.divide")


def test_agent_tool_factories_run_against_the_repository(history_repo):
    from expagent.agent.tools import ToolBox
    from expagent.codeintel.agent_tools import run_repo_map, tool_factories

    repo = history_repo["repo"]

    class ElsewhereSandbox:  # a sandbox whose checkout is not on this machine (like Docker)
        kind = "docker"
        workdir = "/work/repo"

    box = ToolBox()
    for make in tool_factories(repo):
        box.add(make(ElsewhereSandbox()))
    sandbox = ElsewhereSandbox()
    assert box.execute(sandbox, "repo_map", {"focus": "divide"}).output.splitlines()[1] == "calc/core.py:"
    hist = box.execute(sandbox, "history", {"target": "Calculator.divide", "max_count": 5})
    assert not hist.error and "Fix crash" in hist.output
    bad = box.execute(sandbox, "blame", {"path": "calc/core.py", "start": 9, "end": 1})
    assert bad.error and bad.output.startswith("error: bad line range")
    assert box.execute(sandbox, "blame", {"path": "calc/core.py"}).error  # missing arguments
    assert run_repo_map(repo, "Calculator.divide crashes", 256).splitlines()[1] == "calc/core.py:"
    notices = []
    assert run_repo_map(repo / "missing", "x", 256, notice=notices.append) == ""
    assert notices and notices[0].startswith("repo map skipped: not a directory")


def test_learn_git_command(history_repo, tmp_path: Path):
    import json

    from conftest import run_cli as cli

    proc = cli("memory", "learn-git", str(history_repo["repo"]), "--dry-run", "--json", "--max", "1")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["found"] == 1 and data["dry_run"] and data["added"] == 0
    assert data["commits"][0]["instance_id"] == f"git:{history_repo['shas']['fix2'][:10]}"
    bad = cli("memory", "learn-git", str(tmp_path), "--dry-run")
    assert bad.returncode == 2 and bad.stderr.startswith("error: not inside a git repository")
    assert cli("memory", "learn-git", str(history_repo["repo"]), "--max", "0").returncode == 2
