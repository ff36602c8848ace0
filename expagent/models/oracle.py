"""The offline demo's stand-in for an LLM: it applies the task's reference fix, then submits.

It measures the harness (sandbox, grader, memory), never an agent; runs that use it are labelled.
"""

from __future__ import annotations

from expagent.errors import ModelError
from expagent.models.base import Model

ORACLE = "oracle"


def oracle_model(task) -> Model:
    from expagent.models.scripted import ReplySource, SourceModel, _response_dict

    if task is None or not getattr(task, "patch", ""):
        which = f"of {task.instance_id}, which the suite lacks" if task is not None else "of a suite task"
        raise ModelError(f"the oracle needs the reference patch {which}; it only runs suite tasks (replay)")
    replies = [
        {"content": "Offline demo: applying the reference fix.", "tool_calls": [
            {"name": "bash", "arguments": {"command": f"git apply <<'EXPAGENT_PATCH'\n{task.patch}EXPAGENT_PATCH"}}]},
        {"content": "Submitting.", "tool_calls": [{"name": "submit", "arguments": {}}]},
    ]
    responses = [_response_dict(r, i, ORACLE) for i, r in enumerate(replies)]
    return SourceModel(ORACLE, ReplySource(responses, f"oracle for {task.instance_id}", native_tools=True))
