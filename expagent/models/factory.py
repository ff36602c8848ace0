"""Turn a model string from the settings into a ``Model``: the one place that reads model names.

A new provider is one module with a ``Model`` subclass and one entry in ``OFFLINE`` (or the litellm fallback).
"""

from __future__ import annotations

from pathlib import Path

from expagent.errors import ModelError
from expagent.models.base import Model
from expagent.models.oracle import ORACLE

#: prefixes of models whose replies are canned (files, recordings, the oracle): never a real LLM
OFFLINE_PREFIXES = ("scripted:", "replay:", "litellm+scripted:", "litellm+replay:")


def is_offline(name: str | None) -> bool:
    """Whether ``name`` is a canned model (its replies are meant for the agent, never for distillation)."""
    name = (name or "").strip()
    return name == ORACLE or name.startswith(OFFLINE_PREFIXES)


def _per_task_script(folder: Path, task) -> str:
    for suffix in (".yaml", ".yml", ".json"):
        script = folder / f"{task.instance_id}{suffix}"
        if script.is_file():
            return f"scripted:{script}"
    raise ModelError(f"no script for {task.instance_id} in {folder} (expected {task.instance_id}.yaml)")


def make_model(settings, task=None) -> Model:
    """The model named by ``settings.model``. With a suite ``task``: ``scripted:DIR`` means one script per task
    (DIR/<instance_id>.{yaml,yml,json}) and ``oracle`` the labelled offline demo (the task's reference fix)."""
    name = (settings.model or "").strip()
    if not name:
        raise ModelError(
            "no model configured: pass --model, set EXPAGENT_MODEL, or use scripted:<file> to run without one"
        )
    if name == ORACLE:
        from expagent.models.oracle import oracle_model

        return oracle_model(task)
    if name.startswith("scripted:"):
        from expagent.models.scripted import SourceModel, load_scripted_source

        path = name.split(":", 1)[1]
        if task is not None and Path(path).is_dir():
            name = _per_task_script(Path(path), task)
            path = name.split(":", 1)[1]
        return SourceModel(name, load_scripted_source(path))
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
