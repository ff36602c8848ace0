"""End to end through the real CLI: a scripted model fixes a real repository, on every sandbox backend."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import fixing_replies, git, run_cli, write_script


def _run_dir(home):
    runs = sorted(p for p in (home / "runs").iterdir() if "replay" not in p.name)
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("sandbox_kind", ["local", pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])],
                         indirect=True)  # the Docker case runs with the slow set (.ci/run runs both)
def test_fix_end_to_end_and_replay(buggy_repo, tmp_path, isolated_home, sandbox_kind):
    script = write_script(tmp_path / "script.json", fixing_replies())
    # an uncommitted change in the user's tree must survive untouched
    (buggy_repo / "test_calc.py").write_text((buggy_repo / "test_calc.py").read_text() + "# my local note\n")
    before = (buggy_repo / "test_calc.py").read_text()

    proc = run_cli("fix", "add(2, 3) returns -1 instead of 5", "--model", f"scripted:{script}",
                   "--sandbox", sandbox_kind, cwd=buggy_repo)
    assert proc.returncode == 0, proc.stderr
    assert "-    return a - b\n+    return a + b" in proc.stdout
    assert (buggy_repo / "test_calc.py").read_text() == before
    assert (buggy_repo / "calc.py").read_text().count("a - b") == 1  # no --apply: user's tree unchanged

    run = _run_dir(isolated_home)
    patch = (run / "patch.diff").read_text()
    assert patch == proc.stdout
    traj = json.loads((run / "trajectory.json").read_text())
    assert traj["exit_status"] == "submitted" and traj["sandbox"] == sandbox_kind
    assert [a["tool"] for s in traj["steps"] for a in s["actions"]] == ["view", "bash", "edit", "bash", "submit"]
    assert "1 failed, 1 passed" in traj["steps"][1]["actions"][0]["output"]
    assert "2 passed" in traj["steps"][3]["actions"][0]["output"]
    assert traj["totals"]["prompt_tokens"] == 1000 and traj["totals"]["cost"] is None
    assert traj["patch"] == patch and traj["memory"]["injected"] == []
    # the verdict comes from the repository's tests, run before and after the patch in the sandbox
    assert traj["outcome"]["verdict"] == "resolved" and traj["outcome"]["method"] == "tests"
    assert traj["outcome"]["fixed"] == ["test_calc.py::test_add"]

    # the patch really fixes the bug: apply it to a clean clone and run the tests
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(buggy_repo), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "apply", str(run / "patch.diff")], check=True)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "test_calc.py"], cwd=clone, capture_output=True,
                           text=True)
    assert tests.returncode == 0, tests.stdout

    replay = run_cli("traj", "replay", str(run), "--json", cwd=buggy_repo)
    assert replay.returncode == 0, replay.stderr
    report = json.loads(replay.stdout)
    assert report["matches"] and report["actions_replayed"] == 5 and report["patch_matches"]

    shown = run_cli("traj", "show", str(run / "trajectory.json"))
    assert shown.returncode == 0 and "submitted" in shown.stdout and "return a + b" in shown.stdout


def test_fix_apply_refuses_dirty_files_and_applies_clean(buggy_repo, tmp_path):
    # memory, verification and test runs are not what this tests (the end-to-end test covers them)
    script = write_script(tmp_path / "script.json", [r for r in fixing_replies() if r["tool_calls"][0]["name"] != "bash"])
    (buggy_repo / "calc.py").write_text("# work in progress\n" + (buggy_repo / "calc.py").read_text())
    dirty = (buggy_repo / "calc.py").read_text()
    proc = run_cli("fix", "add is wrong", "--model", f"scripted:{script}", "--sandbox", "local", "--apply",
                   "--memory", "off", "--no-verify", cwd=buggy_repo)
    assert proc.returncode == 2
    assert "uncommitted changes: calc.py" in proc.stderr and "Traceback" not in proc.stderr
    assert (buggy_repo / "calc.py").read_text() == dirty

    git(buggy_repo, "checkout", "calc.py")
    proc = run_cli("fix", "add is wrong", "--model", f"scripted:{script}", "--sandbox", "local", "--apply",
                   "--memory", "off", "--no-verify", cwd=buggy_repo)
    assert proc.returncode == 0, proc.stderr
    assert "return a + b" in (buggy_repo / "calc.py").read_text()


def test_fix_reads_issue_from_stdin_and_file(buggy_repo, tmp_path, isolated_home):
    script = write_script(tmp_path / "script.json", [{"tool_calls": [{"name": "submit"}]}])
    proc = run_cli("fix", "-", "--model", f"scripted:{script}", "--sandbox", "local", cwd=buggy_repo,
                   input="issue from stdin\n")
    # submitted with an empty patch: not a fix, named status, non-zero exit
    assert proc.returncode == 1 and "empty patch" in proc.stderr
    traj = json.loads(next((isolated_home / "runs").glob("*/trajectory.json")).read_text())
    assert traj["issue"] == {"text": "issue from stdin\n", "source": "stdin"}

    issue_file = tmp_path / "issue.md"
    issue_file.write_text("issue from a file")
    proc = run_cli("fix", "--issue-file", str(issue_file), "--model", f"scripted:{script}", "--sandbox", "local",
                   cwd=buggy_repo)
    assert proc.returncode == 1
    texts = {json.loads(p.read_text())["issue"]["text"] for p in (isolated_home / "runs").glob("*/trajectory.json")}
    assert "issue from a file" in texts
