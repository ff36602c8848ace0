"""Turn a model string from the settings into a ``Model``."""

from __future__ import annotations

from expagent.errors import ModelError
from expagent.models.base import Model


def make_model(settings) -> Model:
    name = (settings.model or "").strip()
    if not name:
        raise ModelError(
            "no model configured: pass --model, set EXPAGENT_MODEL, or use scripted:<file> to run without one"
        )
    if name.startswith("scripted:"):
        from expagent.models.scripted import SourceModel, load_scripted_source

        return SourceModel(name, load_scripted_source(name.split(":", 1)[1]))
    if name.startswith("replay:"):
        from expagent.models.scripted import SourceModel, load_replay_source

        return SourceModel(name, load_replay_source(name.split(":", 1)[1]))
    if name.startswith(("litellm+scripted:", "litellm+replay:")):
        # the same offline replies, served through litellm's real completion() path by a custom provider
        from expagent.models.litellm_model import LitellmModel
        from expagent.models.litellm_provider import register_source
        from expagent.models.scripted import load_replay_source, load_scripted_source

        kind, path = name.split(":", 1)
        source = load_scripted_source(path) if kind == "litellm+scripted" else load_replay_source(path)
        return LitellmModel(
            register_source(source), tool_mode="native" if source.native_tools else "text", display_name=name
        )
    from expagent.models.litellm_model import LitellmModel

    return LitellmModel(
        name,
        api_base=settings.api_base,
        temperature=settings.temperature,
        retries=settings.model_retries,
        tool_mode=settings.tool_mode,
    )
