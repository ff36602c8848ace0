"""Asking a model for a JSON object: the object is found in the reply (a fenced block or the outermost braces),
checked by the caller's parser, and asked for once more, with the reason, when it is missing or unusable."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class JSONReplyError(ValueError):
    """The model's reply held no usable JSON object, twice; ``problem`` says what was wrong the last time."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in a model's reply: a fenced ```json block, else the text from the first ``{`` to the last
    ``}``; None when neither parses to an object."""
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", text or "", re.S)
    candidates = [fenced.group(1)] if fenced else []
    start, end = (text or "").find("{"), (text or "").rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def ask_json(model: Any, messages: list[dict[str, Any]], parse: Callable[[dict[str, Any]], T], *,
             correction: str, attempts: int = 2) -> T:
    """``parse(object)`` of the model's reply to ``messages``. ``parse`` raises ``ValueError`` for an object it
    cannot use; then the reply and "That was not usable (<why>). <correction>" are added to the conversation and
    the model is asked again, up to ``attempts`` replies in all. Raises :class:`JSONReplyError` after the last."""
    messages = list(messages)
    problem = "no reply"
    for attempt in range(attempts):
        reply = model.query(messages)
        content = reply.content or ""
        try:
            data = json_object(content)
            if data is None:
                raise ValueError("the reply holds no JSON object")
            return parse(data)
        except ValueError as exc:
            problem = str(exc)
            log.debug("unusable JSON reply (attempt %d): %s", attempt + 1, problem)
            messages += [{"role": "assistant", "content": content},
                         {"role": "user", "content": f"That was not usable ({problem}). {correction}"}]
    raise JSONReplyError(problem)
