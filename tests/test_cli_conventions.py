"""Command-line conventions: --version, completion, -v/-q logging, exit codes, --json, runs ls, help texts."""

from __future__ import annotations

import json
import re
from importlib.metadata import version

from conftest import fixing_replies, interruptible, run_cli, run_cli_process, write_script


def _commands():
    import typer

    from expagent import cli

    cli._register()
    root = typer.main.get_command(cli.app)

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, path + [name])

    return list(walk(root, []))


def test_version_prints_the_installed_package_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout == f"expagent {version('expagent')}\n"


def test_every_option_has_help_and_settings_defaults_are_the_real_ones():
    from expagent.config import Settings

    defaults = Settings()
    missing, wrong = [], []
    for path, command in _commands():
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            where = f"{' '.join(path)} {param.opts[0]}"
            if not (param.help or "").strip():
                missing.append(where)
            # "(default: the step_limit setting, 60)": the number must be Settings' own default
            for name, shown in re.findall(r"the (\w+) setting, ([^)]+)\)", param.help or ""):
                if str(getattr(defaults, name)) != shown.strip():
                    wrong.append(f"{where}: says {shown!r}, Settings has {getattr(defaults, name)!r}")
    assert missing == [] and wrong == []
    fix = next(c for p, c in _commands() if p == ["fix"])
    step = next(p for p in fix.params if p.name == "step_limit")
    assert "60" in step.help and "step_limit" in step.help


def test_help_shows_defaults():
    proc = run_cli("tasks", "synth", "--help")
    assert proc.returncode == 0 and "[default: 12; x>=1]" in proc.stdout  # --n: default and range
    fix = run_cli("fix", "--help").stdout
    assert "--step-limit" in fix and "the step_limit setting, 60" in " ".join(fix.split())


def test_shell_completion_is_offered():
    proc = run_cli("--help")
    assert "--install-completion" in proc.stdout and "--show-completion" in proc.stdout
    shown = run_cli_process("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert shown.returncode == 0 and "_EXPAGENT_COMPLETE" in shown.stdout  # the bash completion function


def test_verbose_shows_debug_lines_and_quiet_hides_warnings(buggy_repo):
    loud = run_cli("-v", "map", str(buggy_repo), "--tokens", "64")
    assert loud.returncode == 0
    assert re.search(r"^DEBUG expagent\.gitutil: git ls-files", loud.stderr, re.M), loud.stderr
    plain = run_cli("map", str(buggy_repo), "--tokens", "64")
    assert "DEBUG" not in plain.stderr and plain.stdout == loud.stdout  # logs never reach stdout
    import logging

    logger = logging.getLogger("expagent")  # a command run in-process leaves no handler and no level behind
    assert [h for h in logger.handlers if h.get_name() == "expagent-cli"] == [] and logger.level == logging.NOTSET
    both = run_cli("-v", "-q", "map", str(buggy_repo))
    assert both.returncode == 2 and "exclude each other" in both.stderr and "Traceback" not in both.stderr


def test_exit_codes_usage_runtime_interrupted(buggy_repo, tmp_path):
    usage = run_cli("fix", "x", "--step-limit", "many", cwd=buggy_repo)  # click's own usage error
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    bad_value = run_cli("runs", "ls", "--kind", "weird")
    assert bad_value.returncode == 2 and bad_value.stderr == "error: --kind must be one of fix, traj-replay, replay (got 'weird')\n"
    missing = run_cli("replay", "no-such-suite")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    script = write_script(tmp_path / "s.json", fixing_replies()[:1])
    runtime = run_cli("fix", "x", "--model", f"scripted:{script}", "--sandbox", "docker", "--memory", "off",
                      cwd=buggy_repo, env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    assert runtime.returncode == 1 and "Traceback" not in runtime.stderr
    assert runtime.stderr.strip().splitlines()[-1].startswith("error: ")  # SandboxUnavailable: a runtime failure


def test_ctrl_c_exits_130(buggy_repo, tmp_path):
    """A real process: SIGINT while the agent's command runs ends the run with 130 and says so."""
    import signal
    import subprocess
    import sys
    import time

    marker = f"sleep {60 + (hash(str(tmp_path)) % 1000) / 1000:.3f}"
    script = write_script(tmp_path / "s.json", [{"tool_calls": [{"name": "bash", "arguments": {"command": marker}}]},
                                                {"tool_calls": [{"name": "submit"}]}])
    proc = subprocess.Popen([sys.executable, "-m", "expagent", "fix", "x", "--model", f"scripted:{script}",
                             "--sandbox", "local", "--memory", "off", "--no-verify"], cwd=buggy_repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 120
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "interrupted" in err


def test_a_missing_suite_lists_the_shipped_ones():
    proc = run_cli("replay", "no-such-suite")
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "no-such-suite" in error
    assert "toolz" in error and "inflection" in error  # the suites under swe_tasks/


def test_fix_json_traj_show_json_and_runs_ls(buggy_repo, tmp_path, isolated_home):
    script = write_script(tmp_path / "s.json", [r for r in fixing_replies() if r["tool_calls"][0]["name"] != "bash"])
    proc = run_cli("fix", "add is wrong", "--model", f"scripted:{script}", "--sandbox", "local", "--memory", "off",
                   "--json", cwd=buggy_repo)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout is one JSON document, the patch inside it
    assert result["kind"] == "fix" and result["status"] == "submitted" and result["steps"] == 3
    assert "+    return a + b" in result["patch"] and result["target"] == str(buggy_repo)
    assert result["resolved"] == "resolved"  # the repo's tests before and after the patch

    shown = run_cli("traj", "show", result["path"], "--json")
    assert shown.returncode == 0
    traj = json.loads(shown.stdout)
    assert traj["format"] == "expagent-trajectory" and traj["patch"] == result["patch"]

    runs = run_cli("runs", "ls", "--json")
    listed = json.loads(runs.stdout)
    assert [r["id"] for r in listed] == [result["id"]] and listed[0]["kind"] == "fix"
    table = run_cli("runs", "ls", env={"COLUMNS": "250"}).stdout  # rich folds cells to the width
    assert result["id"][:15] in table and "submitted" in table
    assert json.loads(run_cli("runs", "ls", "--kind", "replay", "--json").stdout) == []


def test_help_imports_only_typer():
    """``expagent --help`` (a real process: a fresh interpreter's modules) loads none of the machinery."""
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['expagent', '--help']\n"
            "from expagent.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('rich', 'litellm', 'chromadb', 'expagent.config', 'logging') if m in sys.modules]\n"
            "print(heavy, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr.strip().splitlines()[-1] == "[]", out.stderr
