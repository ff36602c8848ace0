"""The model interface and the one place where a provider's response becomes a ``ModelReply``."""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | None  # None when the model sent arguments that are not a JSON object
    raw_arguments: str = ""


@dataclass
class ModelReply:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # None: the price of this model is unknown
    latency: float = 0.0

    def assistant_message(self) -> dict[str, Any]:
        """The reply as an OpenAI-style assistant message, to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw_arguments},
                }
                for call in self.tool_calls
            ]
        return message


class Model(abc.ABC):
    name: str
    #: True when the model takes ``tools=`` and answers with native tool calls
    supports_tools: bool = False

    @abc.abstractmethod
    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        """Send the conversation; return the next reply. Raises ``ModelError`` when it cannot."""


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def reply_from_response(response: Any, cost: float | None = None) -> ModelReply:
    """Parse an OpenAI-shaped chat completion (a litellm ``ModelResponse`` or a plain dict).

    Every model implementation goes through here, so scripted and replayed replies are parsed
    by exactly the code that parses real ones.
    """
    choices = _get(response, "choices") or []
    if not choices:
        from expagent.errors import ModelError

        raise ModelError("the model returned no choices")
    message = _get(choices[0], "message") or {}
    calls = []
    for index, call in enumerate(_get(message, "tool_calls") or []):
        function = _get(call, "function") or {}
        raw = _get(function, "arguments") or ""
        if not isinstance(raw, str):
            raw = json.dumps(raw)
        try:
            parsed = json.loads(raw) if raw.strip() else {}
            arguments = parsed if isinstance(parsed, dict) else None
        except json.JSONDecodeError:
            arguments = None
        calls.append(
            ToolCall(
                id=_get(call, "id") or f"call_{index}",
                name=_get(function, "name") or "",
                arguments=arguments,
                raw_arguments=raw,
            )
        )
    usage = _get(response, "usage") or {}
    return ModelReply(
        content=_get(message, "content") or "",
        tool_calls=calls,
        prompt_tokens=int(_get(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(_get(usage, "completion_tokens", 0) or 0),
        cost=cost,
    )
