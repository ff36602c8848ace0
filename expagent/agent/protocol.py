"""How a model reply becomes actions: native tool calls, or the text protocol.

Text protocol: exactly one fenced block per reply. Its info string names the tool; for
``bash`` the body is the command, for other tools the body is a YAML mapping of arguments:

    ```edit
    path: src/calc.py
    old: "return a - b"
    new: "return a + b"
    ```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from expagent.models.base import ModelReply

_BLOCK = re.compile(r"```([A-Za-z_][\w-]*)[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)


class FormatError(Exception):
    """The reply could not be turned into actions; the message tells the model how to fix it."""


@dataclass
class Action:
    id: str | None  # the native tool call id (None in the text protocol)
    tool: str
    arguments: dict[str, Any] | None


def parse_text_reply(content: str, tool_names: list[str]) -> Action:
    blocks = [(lang, body) for lang, body in _BLOCK.findall(content or "") if lang in tool_names]
    if len(blocks) != 1:
        found = "no" if not blocks else str(len(blocks))
        raise FormatError(
            f"Your reply had {found} tool blocks; it must contain exactly one fenced block whose language is one of: "
            f"{', '.join(tool_names)}."
        )
    tool, body = blocks[0]
    if tool == "bash":
        return Action(None, "bash", {"command": body.rstrip("\n")})
    if not body.strip():
        return Action(None, tool, {})
    import yaml

    try:
        arguments = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise FormatError(f"The arguments of the {tool} block are not valid YAML: {' '.join(str(exc).split())}")
    if not isinstance(arguments, dict):
        raise FormatError(f"The body of the {tool} block must be a YAML mapping of argument names to values.")
    return Action(None, tool, arguments)


def actions_from_reply(reply: ModelReply, native: bool, tool_names: list[str]) -> list[Action]:
    if native and reply.tool_calls:
        return [Action(call.id, call.name, call.arguments) for call in reply.tool_calls]
    if native and not _BLOCK.search(reply.content or ""):
        raise FormatError("Call one of the tools to act (or submit when the fix is done); your reply called none.")
    return [parse_text_reply(reply.content, tool_names)]
