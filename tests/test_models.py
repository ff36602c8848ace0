"""The model layer: scripted and replay models, litellm's real call path via a custom provider, costs, retries."""

from __future__ import annotations

import json

import pytest

from conftest import write_script
from expagent.config import Settings
from expagent.errors import ModelError
from expagent.models import make_model
from expagent.models.base import reply_from_response

TOOLS = [{"type": "function", "function": {"name": "bash", "description": "run",
                                            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}]


def test_scripted_model_replies_in_order_then_exhausts(tmp_path):
    script = write_script(tmp_path / "s.json", [
        {"content": "a", "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}],
         "usage": {"prompt_tokens": 7, "completion_tokens": 3}, "cost": 0.5},
        "plain text reply",
    ])
    model = make_model(Settings(model=f"scripted:{script}"))
    assert model.supports_tools
    first = model.query([{"role": "user", "content": "x"}], TOOLS)
    assert first.tool_calls[0].name == "bash" and first.tool_calls[0].arguments == {"command": "ls"}
    assert (first.prompt_tokens, first.completion_tokens, first.cost) == (7, 3, 0.5)
    assert model.query([]).content == "plain text reply"
    with pytest.raises(ModelError, match="exhausted after 2 replies"):
        model.query([])


def test_scripted_yaml_file_and_malformed_files(tmp_path):
    good = tmp_path / "s.yaml"
    good.write_text("tools: text\nreplies:\n  - |\n    ```bash\n    ls\n    ```\n")
    model = make_model(Settings(model=f"scripted:{good}"))
    assert not model.supports_tools and "```bash" in model.query([]).content
    bad = tmp_path / "bad.yaml"
    bad.write_text("replies:\n  - content: [unclosed\n")
    with pytest.raises(ModelError, match=r"malformed scripted model file .*line"):
        make_model(Settings(model=f"scripted:{bad}"))
    with pytest.raises(ModelError, match="unknown keys"):
        make_model(Settings(model=f"scripted:{write_script(tmp_path / 'k.json', [{'contents': 'x'}])}"))
    with pytest.raises(ModelError, match="cannot read scripted model file"):
        make_model(Settings(model=f"scripted:{tmp_path / 'missing.json'}"))


def test_litellm_custom_provider_path_native_tool_calls(tmp_path):
    script = write_script(tmp_path / "s.json", [
        {"content": "run", "tool_calls": [{"name": "bash", "arguments": {"command": "echo hi"}}],
         "usage": {"prompt_tokens": 11, "completion_tokens": 4}},
    ])
    model = make_model(Settings(model=f"litellm+scripted:{script}"))
    from expagent.models.litellm_model import LitellmModel

    assert isinstance(model, LitellmModel)  # the real litellm.completion path, served offline
    reply = model.query([{"role": "user", "content": "hello"}], TOOLS)
    assert reply.tool_calls[0].name == "bash" and reply.tool_calls[0].arguments == {"command": "echo hi"}
    assert (reply.prompt_tokens, reply.completion_tokens) == (11, 4)
    assert reply.cost is None  # no price for a custom provider: unknown, not an error
    with pytest.raises(ModelError, match="exhausted"):
        model.query([{"role": "user", "content": "again"}], TOOLS)


def test_unknown_price_is_unknown_and_known_price_is_counted():
    from expagent.models.litellm_model import LitellmModel, import_litellm

    litellm = import_litellm()
    unknown = litellm.completion(model="openai/expagent-no-such-model", messages=[{"role": "user", "content": "hi"}],
                                 mock_response="hello")
    known = litellm.completion(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], mock_response="hello")
    model = LitellmModel.__new__(LitellmModel)
    model._litellm = litellm
    assert model._cost(unknown) is None
    assert model._cost(known) > 0
    assert reply_from_response(unknown, model._cost(unknown)).content == "hello"


def test_transient_errors_are_retried_then_reported(tmp_path):
    from expagent.models.litellm_model import LitellmModel, import_litellm

    litellm = import_litellm()
    from litellm import CustomLLM

    calls = {"n": 0}

    class Flaky(CustomLLM):
        def completion(self, model, messages, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] < 3:
                raise litellm.RateLimitError(message="slow down", model=model, llm_provider="flaky")
            return litellm.ModelResponse(choices=[{"message": {"role": "assistant", "content": "ok"}}])

    litellm.custom_provider_map = [{"provider": "flaky", "custom_handler": Flaky()}]
    model = LitellmModel("flaky/m", retries=3, retry_wait=0.01, tool_mode="text")
    assert model.query([{"role": "user", "content": "x"}]).content == "ok"
    assert calls["n"] == 3
    calls["n"] = -10
    model = LitellmModel("flaky/m", retries=1, retry_wait=0.01, tool_mode="text")
    with pytest.raises(ModelError, match="after 2 attempts"):
        model.query([{"role": "user", "content": "x"}])


def test_unknown_model_and_missing_key(monkeypatch):
    with pytest.raises(ModelError, match="unknown model 'no-such-provider-model'"):
        make_model(Settings(model="no-such-provider-model"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError, match="missing API key .*OPENAI_API_KEY"):
        make_model(Settings(model="openai/gpt-4o"))
    with pytest.raises(ModelError, match="no model configured"):
        make_model(Settings())


def _recorded_trajectory(tmp_path):
    """A minimal recorded trajectory with one native tool call."""
    traj = {"format": "expagent-trajectory", "version": 1, "protocol": "native", "steps": [
        {"reply": {"content": "x", "tool_calls": [{"id": "c1", "name": "bash", "raw_arguments": json.dumps({"command": "ls"})}],
                   "prompt_tokens": 5, "completion_tokens": 2, "cost": None}},
    ]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(traj))
    return path


def test_replay_model_reissues_recorded_replies(tmp_path):
    path = _recorded_trajectory(tmp_path)
    model = make_model(Settings(model=f"replay:{path}"))
    reply = model.query([])
    assert reply.tool_calls[0].id == "c1" and reply.tool_calls[0].arguments == {"command": "ls"}
    with pytest.raises(ModelError, match="exhausted"):
        model.query([])


def test_replay_model_through_litellm_custom_provider(tmp_path):
    path = _recorded_trajectory(tmp_path)
    model = make_model(Settings(model=f"litellm+replay:{path}"))
    from expagent.models.litellm_model import LitellmModel

    assert isinstance(model, LitellmModel) and model.supports_tools
    reply = model.query([{"role": "user", "content": "go"}], TOOLS)
    assert reply.tool_calls[0].name == "bash" and reply.tool_calls[0].arguments == {"command": "ls"}
    assert (reply.prompt_tokens, reply.completion_tokens) == (5, 2)
