"""Prompt assembly: the messages of a run are built from templates in one explicit order.

    system:  role and method  ->  protocol (text mode only)  ->  [lessons from memory]
    user:    issue  ->  [repository map]  ->  [past repairs from memory]  ->  start instruction

The bracketed parts are the marked places where context goes; when they are empty the
prompt is byte-identical to the prompt of a run without memory or map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from expagent import paths


@dataclass
class Experience:
    """What memory contributes to one run: lessons (system part) and demonstrations (task part).

    Each item is a dict with ``id``, ``source`` (where it came from) and ``text``.
    """

    lessons: list[dict[str, str]] = field(default_factory=list)
    demonstrations: list[dict[str, str]] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [item["id"] for item in (*self.lessons, *self.demonstrations)]

    def __bool__(self) -> bool:
        return bool(self.lessons or self.demonstrations)


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.prompts_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


def _tool_lines(tool_schemas: list[dict[str, Any]]) -> list[dict[str, str]]:
    lines = []
    for schema in tool_schemas:
        function = schema["function"]
        props = function["parameters"].get("properties", {})
        required = set(function["parameters"].get("required", []))
        arguments = ", ".join(f"{name}{'' if name in required else ' (optional)'}" for name in props) or "none"
        lines.append({"name": function["name"], "description": function["description"], "arguments": arguments})
    return lines


def build_messages(
    issue: str,
    *,
    workdir: str,
    protocol: str,
    tool_schemas: list[dict[str, Any]],
    repo_map: str = "",
    experience: Experience | None = None,
) -> list[dict[str, str]]:
    experience = experience or Experience()
    system = render(
        "system.j2",
        workdir=workdir,
        protocol=protocol,
        tools=_tool_lines(tool_schemas),
        lessons=experience.lessons,
    )
    task = render(
        "task.j2",
        workdir=workdir,
        issue=issue.strip(),
        repo_map=repo_map.strip(),
        demonstrations=experience.demonstrations,
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": task}]
