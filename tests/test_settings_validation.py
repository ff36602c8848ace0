"""Every setting's type and range is checked when settings load: a bad value never reaches a run."""

from __future__ import annotations

import pytest

from expagent.config import load_settings
from expagent.errors import ConfigError


@pytest.mark.parametrize("text, message", [
    ('docker_memory = "lots"', "'docker_memory' must be a size such as 512m or 4g (got 'lots')"),
    ("step_limit = -5", "'step_limit' must be at least 1 (got -5)"),
    ("step_limit = 0", "'step_limit' must be at least 1 (got 0)"),
    ("temperature = 7.5", "'temperature' must be between 0 and 2 (got 7.5)"),
    ("docker_pids = 3", "'docker_pids' must be at least 16 (got 3)"),
    ('api_base = "localhost:11434"', "'api_base' must be an http:// or https:// URL"),
    ('embedding_model = "bert"', "'embedding_model' must be minilm-int8 or litellm:<model>"),
    ('step_limit = "many"', "'step_limit' must be int (got 'many')"),
])
def test_bad_values_in_a_config_file_are_rejected_at_load(isolated_home, text, message):
    config = isolated_home / "config.toml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert str(info.value).startswith(f"{config}: ")
    assert message in str(info.value)


def test_bad_values_from_environment_and_flags_name_their_source(monkeypatch):
    monkeypatch.setenv("EXPAGENT_DOCKER_MEMORY", "1.5 GB")
    with pytest.raises(ConfigError, match=r"^env EXPAGENT_DOCKER_MEMORY: 'docker_memory' must be a size"):
        load_settings(None)
    monkeypatch.delenv("EXPAGENT_DOCKER_MEMORY")
    with pytest.raises(ConfigError, match=r"^flag --cost-limit: 'cost_limit' must be at least 0 \(got -1.0\)"):
        load_settings(None, {"cost_limit": -1})


def test_good_values_pass_unchanged(isolated_home):
    (isolated_home / "config.toml").write_text(
        'docker_memory = "512m"\nstep_limit = 1\ncost_limit = 0\napi_base = "http://127.0.0.1:9/v1"\n'
        'embedding_model = "litellm:openai/text-embedding-3-small"\n')
    settings = load_settings(None)
    assert (settings.docker_memory, settings.step_limit, settings.cost_limit) == ("512m", 1, 0.0)
    assert settings.api_base == "http://127.0.0.1:9/v1"


def test_config_show_and_fix_fail_in_one_line_on_a_bad_value(isolated_home, buggy_repo):
    from conftest import run_cli

    (isolated_home / "config.toml").write_text('docker_memory = "lots"\n')
    for args in (["config", "show"], ["fix", "add is wrong", "--model", "scripted:/nonexistent"]):
        proc = run_cli(*args, cwd=buggy_repo)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines == [f"error: {isolated_home / 'config.toml'}: 'docker_memory' must be a size such as 512m or 4g "
                         "(got 'lots')"], lines
