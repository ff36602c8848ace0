"""The agent loop: every exit status, protocols, malformed replies, truncation, timeouts, patch extraction."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import write_script
from expagent.agent.loop import Agent, ExitStatus, Limits
from expagent.agent.prompting import build_messages
from expagent.agent.tools import ToolBox, truncate
from expagent.config import Settings
from expagent.models import make_model
from expagent.models.base import Model, ModelReply
from expagent.sandbox.base import CommandResult
from expagent.sandbox.local import LocalSandbox
from expagent.trajectory import TrajectoryWriter, load_trajectory


def _run(repo, tmp_path, replies, limits=None, model=None, toolbox=None, tools=None, sandbox=None):
    model = model or make_model(Settings(model=f"scripted:{write_script(tmp_path / 's.json', replies, tools)}"))
    toolbox = toolbox or ToolBox(command_timeout=20, output_limit=2000)
    writer = TrajectoryWriter(tmp_path / "traj.json", {"run_id": "t", "protocol": "native" if model.supports_tools else "text"})
    with (sandbox or LocalSandbox(repo)) as sb:
        agent = Agent(model, sb, toolbox, writer, limits or Limits())
        messages = build_messages("issue", workdir=sb.workdir, protocol="native" if model.supports_tools else "text",
                                  tool_schemas=toolbox.schemas())
        result = agent.run(messages)
    return result, load_trajectory(tmp_path / "traj.json")


def bash(command):
    return {"tool_calls": [{"name": "bash", "arguments": {"command": command}}]}


EDIT = {"tool_calls": [{"name": "edit", "arguments": {"path": "calc.py", "old": "a - b", "new": "a + b"}}]}
SUBMIT = {"tool_calls": [{"name": "submit"}]}


def test_submitted_with_patch(buggy_repo, tmp_path):
    result, traj = _run(buggy_repo, tmp_path, [EDIT, SUBMIT])
    assert result.exit_status is ExitStatus.SUBMITTED and result.ok
    assert "+    return a + b" in result.patch and traj["patch"] == result.patch
    assert traj["exit_status"] == "submitted" and traj["totals"]["steps"] == 2


def test_step_limit_keeps_the_patch(buggy_repo, tmp_path):
    result, traj = _run(buggy_repo, tmp_path, [EDIT, bash("true"), bash("true")], Limits(step_limit=2))
    assert result.exit_status is ExitStatus.STEP_LIMIT and result.steps == 2
    assert "+    return a + b" in result.patch  # extracted by the harness, not printed by the model


def test_cost_limit(buggy_repo, tmp_path):
    costly = {**bash("true"), "cost": 0.6}
    result, _ = _run(buggy_repo, tmp_path, [costly, costly, costly], Limits(cost_limit=1.0))
    assert result.exit_status is ExitStatus.COST_LIMIT and result.steps == 2 and result.cost == pytest.approx(1.2)


def test_unknown_cost_disables_cost_accounting(buggy_repo, tmp_path):
    result, traj = _run(buggy_repo, tmp_path, [{**bash("true"), "cost": 0.1}, bash("true"), SUBMIT])
    assert result.cost is None and traj["totals"]["cost"] is None


def test_time_limit_bounds_a_running_command(buggy_repo, tmp_path):
    started = time.monotonic()
    result, traj = _run(buggy_repo, tmp_path, [bash("sleep 30"), SUBMIT], Limits(time_limit=1.5))
    assert result.exit_status is ExitStatus.TIME_LIMIT
    assert time.monotonic() - started < 15
    assert "timed out" in traj["steps"][0]["actions"][0]["output"]


def test_consecutive_format_errors(buggy_repo, tmp_path):
    result, traj = _run(buggy_repo, tmp_path, ["no block here", "still nothing", "```python\nx\n```"], tools="text")
    assert result.exit_status is ExitStatus.FORMAT_ERRORS and result.steps == 3
    assert "exactly one fenced block" in traj["messages"][3]["content"]


def test_malformed_reply_is_recoverable(buggy_repo, tmp_path):
    replies = [
        {"tool_calls": [{"name": "bash", "arguments": "{not json"}]},
        {"tool_calls": [{"name": "nonexistent_tool", "arguments": {}}]},
        {"content": "no tool call"},
        EDIT, SUBMIT,
    ]
    result, traj = _run(buggy_repo, tmp_path, replies, Limits(max_format_errors=4))
    assert result.exit_status is ExitStatus.SUBMITTED and result.ok
    outputs = [a["output"] for s in traj["steps"] for a in s["actions"]]
    assert any("must be a JSON object" in o for o in outputs) and any("unknown tool" in o for o in outputs)


def test_text_protocol_edit_with_yaml_arguments(buggy_repo, tmp_path):
    replies = [
        "Fix it:\n```edit\npath: calc.py\nold: \"return a - b\"\nnew: \"return a + b\"\n```",
        "```bash\npython -m pytest -q test_calc.py | tail -1\n```",
        "```submit\n```",
    ]
    result, traj = _run(buggy_repo, tmp_path, replies, tools="text")
    assert result.ok and "2 passed" in traj["steps"][1]["actions"][0]["output"]
    assert traj["messages"][0]["content"].count("## How to act") == 1


def test_model_error_keeps_patch(buggy_repo, tmp_path):
    result, _ = _run(buggy_repo, tmp_path, [EDIT])  # the script runs out: a model error after an edit
    assert result.exit_status is ExitStatus.MODEL_ERROR and "exhausted" in result.error
    assert "+    return a + b" in result.patch


class _Interrupting(Model):
    name, supports_tools = "interrupting", True

    def query(self, messages, tools=None):
        raise KeyboardInterrupt


def test_interrupted(buggy_repo, tmp_path):
    result, traj = _run(buggy_repo, tmp_path, [], model=_Interrupting())
    assert result.exit_status is ExitStatus.INTERRUPTED and traj["exit_status"] == "interrupted"


class _DyingSandbox(LocalSandbox):
    """A local sandbox whose backend disappears mid-run (as a container can)."""

    def run(self, command, timeout=None, cwd=None, redact=True):
        if "boom" in command:
            from expagent.errors import SandboxError

            raise SandboxError("the sandbox went away")
        return super().run(command, timeout, cwd)


class _OOMSandbox(LocalSandbox):
    """Reports what the Docker backend reports when its memory limit kills a command."""

    def run(self, command, timeout=None, cwd=None, redact=True):
        if "hog" in command:
            return CommandResult("Killed", -1, 0.1, oom_killed=True)
        return super().run(command, timeout, cwd)


def test_sandbox_error_and_out_of_memory_statuses(buggy_repo, tmp_path):
    result, _ = _run(buggy_repo, tmp_path, [EDIT, bash("boom")], sandbox=_DyingSandbox(buggy_repo))
    assert result.exit_status is ExitStatus.SANDBOX_ERROR and "went away" in result.error
    assert "+    return a + b" in result.patch
    (tmp_path / "s.json").unlink()
    result, traj = _run(buggy_repo, tmp_path, [EDIT, bash("hog")], sandbox=_OOMSandbox(buggy_repo))
    assert result.exit_status is ExitStatus.OUT_OF_MEMORY and "+    return a + b" in result.patch
    assert "memory limit" in traj["steps"][1]["actions"][0]["output"]


def test_every_exit_status_is_covered():
    """Each member is asserted (``assert ... is ExitStatus.X``) by some other test of this file, read from its
    source: a new status without a test that reaches it fails here."""
    import ast
    from pathlib import Path

    asserted = set()
    for fn in ast.parse(Path(__file__).read_text()).body:
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_") and fn.name != "test_every_exit_status_is_covered":
            for node in ast.walk(fn):
                if isinstance(node, ast.Assert):
                    asserted |= {n.attr for n in ast.walk(node.test) if isinstance(n, ast.Attribute)
                                 and isinstance(n.value, ast.Name) and n.value.id == "ExitStatus"}
    assert asserted == {s.name for s in ExitStatus}


def test_truncation_keeps_head_and_tail(buggy_repo, tmp_path):
    text = "".join(f"line {i}\n" for i in range(2000))
    cut = truncate(text, 1000)
    assert cut.startswith("line 0\n") and cut.endswith("line 1999\n") and "characters omitted" in cut
    assert len(cut) < 1200
    result, traj = _run(buggy_repo, tmp_path, [bash("seq 1 100000"), SUBMIT])
    output = traj["steps"][0]["actions"][0]["output"]
    assert output.startswith("1\n2\n") and "100000" in output and "omitted" in output and len(output) < 2500


def test_command_timeout_kills_the_process_group(buggy_repo, tmp_path):
    marker = f"expagent-sleeper-{os.getpid()}"
    with LocalSandbox(buggy_repo) as sb:
        started = time.monotonic()
        result = sb.run(f"bash -c 'exec -a {marker} sleep 300' & bash -c 'exec -a {marker} sleep 300'; wait", timeout=1)
        assert result.timed_out and result.exit_code == -1
        assert time.monotonic() - started < 10
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"processes survived the timeout: {left}"


def test_edit_errors_are_messages(buggy_repo, tmp_path):
    box = ToolBox()
    with LocalSandbox(buggy_repo) as sb:
        sb.write_file("dup.py", "x = 1\nx = 1\n")
        assert "not found" in box.execute(sb, "edit", {"path": "calc.py", "old": "zzz", "new": "y"}).output
        ambiguous = box.execute(sb, "edit", {"path": "dup.py", "old": "x = 1", "new": "y"})
        assert ambiguous.error and "occurs 2 times" in ambiguous.output and "lines 1, 2" in ambiguous.output
        assert "already exists" in box.execute(sb, "create", {"path": "calc.py", "content": ""}).output
        assert "no such file" in box.execute(sb, "view", {"path": "nope.py"}).output
        assert "outside the sandbox" in box.execute(sb, "view", {"path": "/etc/passwd"}).output
        found = box.execute(sb, "search", {"pattern": "def (add|mul)"}).output
        assert "calc.py:1:def add" in found and "calc.py:5:def mul" in found
        view = box.execute(sb, "view", {"path": "calc.py", "start": 2, "end": 2}).output
        assert view == "     2\t    return a - b"
