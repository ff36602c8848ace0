"""Settings layering: defaults < user config < repo config < environment < flags, each with its source."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from expagent.config import load_settings
from expagent.errors import ConfigError


def test_layers_and_sources(tmp_path, isolated_home, monkeypatch):
    (isolated_home / "config.toml").write_text('model = "user/model"\nstep_limit = 10\nsandbox = "local"\n')
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".expagent.toml").write_text('[expagent]\nstep_limit = 20\ncost_limit = 0.5\n')
    monkeypatch.setenv("EXPAGENT_COST_LIMIT", "0.25")
    monkeypatch.setenv("EXPAGENT_REPO_MAP", "false")
    settings = load_settings(repo, {"model": "flag/model", "memory": None})
    assert settings.model == "flag/model" and settings.sources["model"] == "flag --model"
    assert settings.step_limit == 20 and settings.sources["step_limit"] == str(repo / ".expagent.toml")
    assert settings.cost_limit == 0.25 and settings.sources["cost_limit"] == "env EXPAGENT_COST_LIMIT"
    assert settings.repo_map is False
    assert settings.sandbox == "local" and settings.sources["sandbox"] == str(isolated_home / "config.toml")
    assert settings.memory == "on" and settings.sources["memory"] == "default"


def test_bad_config_values(tmp_path, isolated_home, monkeypatch):
    (isolated_home / "config.toml").write_text('model = "x"\nstep_limit = [1,\n')
    with pytest.raises(ConfigError, match=r"malformed config file .*config.toml.*line 2"):
        load_settings(tmp_path)
    (isolated_home / "config.toml").write_text('openai_api_key = "sk-123"\n')
    with pytest.raises(ConfigError, match="looks like a credential"):
        load_settings(tmp_path)
    (isolated_home / "config.toml").write_text('stepz = 3\n')
    with pytest.raises(ConfigError, match="unknown setting 'stepz'"):
        load_settings(tmp_path)
    (isolated_home / "config.toml").write_text('')
    monkeypatch.setenv("EXPAGENT_MEMORY", "sometimes")
    with pytest.raises(ConfigError, match="env EXPAGENT_MEMORY: 'memory' must be one of on, off, episodic, semantic"):
        load_settings(tmp_path)


def test_config_show_cli(tmp_path, isolated_home):
    (isolated_home / "config.toml").write_text('model = "ollama/qwen"\n')
    proc = run_cli("config", "show", "--json", "--repo", str(tmp_path), env={"EXPAGENT_STEP_LIMIT": "7"})
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["model"] == {"value": "ollama/qwen", "source": str(isolated_home / "config.toml")}
    assert shown["step_limit"] == {"value": 7, "source": "env EXPAGENT_STEP_LIMIT"}
    assert not any("key" in name for name in shown)
    table = run_cli("config", "show", "--repo", str(tmp_path))
    assert table.returncode == 0 and "ollama/qwen" in table.stdout


def test_sandbox_setup_runs_before_the_agent_with_network_then_without(buggy_repo, tmp_path, monkeypatch):
    from expagent.sandbox.local import LocalSandbox

    (buggy_repo / ".expagent.toml").write_text('sandbox_setup = ["echo prepared > .setup-marker"]\n')
    settings = load_settings(buggy_repo)
    assert settings.sandbox_setup == ["echo prepared > .setup-marker"]
    monkeypatch.setenv("EXPAGENT_SANDBOX_SETUP", "[not json")
    with pytest.raises(ConfigError, match="JSON list"):
        load_settings(buggy_repo)
    with LocalSandbox(buggy_repo, setup=settings.sandbox_setup) as sandbox:
        assert sandbox.read_file(".setup-marker") == "prepared\n"
        assert sandbox.network is False
