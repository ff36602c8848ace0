"""Bad input: each case is one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os

import pytest

from conftest import fixing_replies, run_cli, write_script


def _one_line_error(proc, fragment, code=2):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr


def test_not_a_git_repo(tmp_path):
    _one_line_error(run_cli("fix", "x", "--model", "scripted:none", cwd=tmp_path), "not a git repository")


def test_empty_issue_and_unreadable_issue_file(buggy_repo, tmp_path):
    script = write_script(tmp_path / "s.json", fixing_replies())
    _one_line_error(run_cli("fix", "   ", "--model", f"scripted:{script}", cwd=buggy_repo), "the issue is empty")
    _one_line_error(run_cli("fix", "--issue-file", str(tmp_path / "nope.md"), "--model", f"scripted:{script}",
                            cwd=buggy_repo), "cannot read issue file")
    _one_line_error(run_cli("fix", "--model", f"scripted:{script}", cwd=buggy_repo), "no issue given")


def test_model_errors(buggy_repo, tmp_path, monkeypatch):
    # in-process: litellm is imported once per test session, not once per command
    _one_line_error(run_cli("fix", "x", "--model", "nosuchprovider-model", cwd=buggy_repo), "unknown model")
    for key in [k for k in os.environ if k.startswith("ANTHROPIC")]:
        monkeypatch.delenv(key)
    _one_line_error(run_cli("fix", "x", "--model", "anthropic/claude-3-5-sonnet-20241022", cwd=buggy_repo),
                    "missing API key")
    bad = tmp_path / "bad.yaml"
    bad.write_text("replies: {{{\n")
    _one_line_error(run_cli("fix", "x", "--model", f"scripted:{bad}", cwd=buggy_repo), "malformed scripted model file")


def test_exhausted_script_is_a_named_status(buggy_repo, tmp_path):
    script = write_script(tmp_path / "s.json", fixing_replies()[:2])
    proc = run_cli("fix", "x", "--model", f"scripted:{script}", "--sandbox", "local", "--memory", "off",
                   "--no-verify", cwd=buggy_repo)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "exit status: model_error" in proc.stderr and "exhausted after 2 replies" in proc.stderr


def test_malformed_repo_config_names_file_and_line(buggy_repo, tmp_path):
    (buggy_repo / ".expagent.toml").write_text('model = "a"\nstep_limit = = 3\n')
    _one_line_error(run_cli("fix", "x", cwd=buggy_repo), ".expagent.toml")
    proc = run_cli("fix", "x", cwd=buggy_repo)
    assert "line 2" in proc.stderr


def test_docker_requested_but_unavailable(buggy_repo, tmp_path):
    script = write_script(tmp_path / "s.json", fixing_replies())
    proc = run_cli("fix", "x", "--model", f"scripted:{script}", "--sandbox", "docker", cwd=buggy_repo,
                   env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    _one_line_error(proc, "sandbox doctor", code=1)  # a runtime failure, not a usage error


@pytest.mark.parametrize("value", ["sometimes"])
def test_bad_flag_value(buggy_repo, value):
    _one_line_error(run_cli("fix", "x", "--memory", value, cwd=buggy_repo), "'memory' must be one of")
