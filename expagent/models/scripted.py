"""Models that need no network: replies come from a file (scripted) or a recorded trajectory (replay).

Scripted file format (YAML or JSON), documented in the README:

    tools: native            # optional: native (tool calls) or text (fenced blocks); default: native if any
                             # reply has tool_calls
    replies:                 # or the file is just this list
      - content: "Let me look around."
        tool_calls:
          - name: bash
            arguments: {command: "ls"}
      - "```bash\\npytest -q\\n```"          # a bare string is a reply's content
      - content: "..."
        usage: {prompt_tokens: 120, completion_tokens: 30}   # optional
        cost: 0.0004                                          # optional; omitted -> unknown

Each reply is turned into the OpenAI-shaped response litellm returns and parsed by
``reply_from_response``, the same code that parses real model output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from expagent.errors import ModelError
from expagent.models.base import Model, ModelReply, reply_from_response


def _response_dict(reply: Any, index: int, where: str) -> tuple[dict[str, Any], float | None]:
    if isinstance(reply, str):
        reply = {"content": reply}
    if not isinstance(reply, dict):
        raise ModelError(f"{where}: reply {index + 1} must be a string or a mapping")
    unknown = set(reply) - {"content", "tool_calls", "usage", "cost"}
    if unknown:
        raise ModelError(f"{where}: reply {index + 1} has unknown keys: {', '.join(sorted(unknown))}")
    calls = []
    for n, call in enumerate(reply.get("tool_calls") or []):
        if not isinstance(call, dict) or not call.get("name"):
            raise ModelError(f"{where}: reply {index + 1}, tool call {n + 1} needs a 'name'")
        arguments = call.get("arguments", {})
        calls.append(
            {
                "id": call.get("id") or f"call_{index}_{n}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content") or ""}
    if calls:
        message["tool_calls"] = calls
    usage = reply.get("usage") or {}
    response = {
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
            "total_tokens": int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)),
        },
    }
    cost = reply.get("cost")
    return response, (float(cost) if cost is not None else None)


class ReplySource:
    """An ordered list of OpenAI-shaped responses, handed out one per call."""

    def __init__(self, responses: list[tuple[dict[str, Any], float | None]], label: str, native_tools: bool):
        self.responses = responses
        self.label = label
        self.native_tools = native_tools
        self.position = 0

    def next(self) -> tuple[dict[str, Any], float | None]:
        if self.position >= len(self.responses):
            raise ModelError(f"{self.label} is exhausted after {len(self.responses)} replies")
        item = self.responses[self.position]
        self.position += 1
        return item


def load_scripted_source(path: str | Path) -> ReplySource:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"cannot read scripted model file {path}: {exc.strerror}") from None
    try:
        import yaml

        data = yaml.safe_load(text)
    except Exception as exc:  # yaml's errors carry line numbers in their text
        detail = " ".join(str(exc).split())
        raise ModelError(f"malformed scripted model file {path}: {detail}") from None
    mode = None
    if isinstance(data, dict):
        mode = data.get("tools")
        data = data.get("replies")
    if not isinstance(data, list) or not data:
        raise ModelError(f"malformed scripted model file {path}: expected a non-empty list of replies")
    responses = [_response_dict(reply, i, str(path)) for i, reply in enumerate(data)]
    if mode not in (None, "native", "text"):
        raise ModelError(f"malformed scripted model file {path}: 'tools' must be native or text")
    native = mode == "native" or (mode is None and any("tool_calls" in r["choices"][0]["message"] for r, _ in responses))
    return ReplySource(responses, f"scripted model {path.name}", native)


def load_replay_source(trajectory_path: str | Path) -> ReplySource:
    from expagent.trajectory import load_trajectory

    trajectory = load_trajectory(trajectory_path)
    replies = []
    for step in trajectory["steps"]:
        reply = step["reply"]
        replies.append(
            {
                "content": reply.get("content", ""),
                "tool_calls": [
                    {"id": c["id"], "name": c["name"], "arguments": c["raw_arguments"]} for c in reply.get("tool_calls", [])
                ],
                "usage": {
                    "prompt_tokens": reply.get("prompt_tokens", 0),
                    "completion_tokens": reply.get("completion_tokens", 0),
                },
                "cost": reply.get("cost"),
            }
        )
    if not replies:
        raise ModelError(f"trajectory {trajectory_path} has no model replies to replay")
    responses = [_response_dict(r, i, str(trajectory_path)) for i, r in enumerate(replies)]
    native = trajectory.get("protocol") == "native"
    return ReplySource(responses, f"replay of {Path(trajectory_path).name}", native)


class SourceModel(Model):
    """A model whose replies come from a ``ReplySource`` (scripted file or recorded trajectory)."""

    def __init__(self, name: str, source: ReplySource):
        self.name = name
        self.source = source
        self.supports_tools = source.native_tools

    def query(self, messages, tools=None) -> ModelReply:
        response, cost = self.source.next()
        return reply_from_response(response, cost)
