"""Serve a ``ReplySource`` through litellm's custom-provider mechanism.

This runs litellm's real ``completion`` call path (argument handling, response objects,
tool-call conversion) with no network: used by ``litellm+scripted:<file>`` and in tests.
"""

from __future__ import annotations

from expagent.models.litellm_model import import_litellm
from expagent.models.scripted import ReplySource

PROVIDER = "expagent-scripted"


def register_source(source: ReplySource) -> str:
    """Register ``source`` as litellm provider ``expagent-scripted``; return the model string to use."""
    litellm = import_litellm()
    from litellm import CustomLLM

    class ScriptedProvider(CustomLLM):
        def completion(self, model, messages, *args, **kwargs):
            try:
                response, _cost = source.next()
            except Exception as exc:
                # a permanent error for litellm: not retried like a connection failure
                raise litellm.BadRequestError(message=str(exc), model=model, llm_provider=PROVIDER) from None
            return litellm.ModelResponse(**response)

    others = [p for p in (litellm.custom_provider_map or []) if p.get("provider") != PROVIDER]
    litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": ScriptedProvider()}]
    return f"{PROVIDER}/scripted"
