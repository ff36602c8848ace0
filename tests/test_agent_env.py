"""The agent works in the installed task environment, as the grader tests in it (replay, local backend).

The synthetic package is importable only after its install at the base commit has generated ``_version.py``
(the mechanism of pytest's setuptools_scm file): the agent's own ``python`` must see it, and the generated file
must not become part of the agent's patch.
"""

from __future__ import annotations

import json

from conftest import run_cli
from test_grader_harness import _ENV, make_suite


def test_replay_agent_sees_the_install_at_base_commit_and_its_patch_leaves_it_out(tmp_path):
    suite = make_suite(tmp_path / "gen", _ENV)
    record = json.loads((suite / "tasks.jsonl").read_text())
    script = tmp_path / "agent.json"
    script.write_text(json.dumps({"replies": [
        {"content": "What does the package say?", "tool_calls": [{"name": "bash", "arguments": {
            "command": "python -c 'import genpkg; print(\"VERSION\", genpkg.version)'; git status --porcelain"}}]},
        {"content": "Fix it.", "tool_calls": [{"name": "bash", "arguments": {
            "command": f"git apply <<'PATCH'\n{record['patch']}PATCH"}}]},
        {"content": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]},
    ]}))
    out = tmp_path / "run"
    proc = run_cli("replay", str(suite), "--model", f"scripted:{script}", "--sandbox", "local", "--memory", "off",
                   "--out", str(out), env={"EXPAGENT_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    traj = json.loads((out / "tasks" / "gen__pkg-1" / "trajectory.json").read_text())
    first = json.dumps(traj["steps"][0])
    assert "VERSION 0.1.dev0+g" in first, first[-1500:]  # the generated file is there, the package imports
    assert "_version.py" not in first  # and git does not list it as the agent's change
    assert "_version.py" not in traj["patch"] and "genpkg/__init__.py" in traj["patch"]
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert row["resolved"] is True
