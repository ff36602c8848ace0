"""One agent run from start to finish: sandbox, model, prompt, loop, trajectory and patch on disk.

``expagent fix``, ``expagent traj replay`` and ``expagent replay`` all go through ``run_agent``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from expagent.agent.loop import Agent, AgentResult, Limits
from expagent.agent.prompting import Experience, build_messages
from expagent.agent.tools import Tool, ToolBox
from expagent.config import Settings
from expagent.fsutil import atomic_write_text
from expagent.models.base import Model
from expagent.sandbox import make_sandbox
from expagent.sandbox.base import Sandbox
from expagent.trajectory import TrajectoryWriter, now_iso


@dataclass
class RunRequest:
    issue: str
    repo: Path
    settings: Settings
    run_dir: Path
    issue_source: str = "argument"
    base_commit: str | None = None
    instance_id: str | None = None
    repo_name: str | None = None
    repo_map: str | Callable[[Sandbox], str] = ""  # text, or built from the started sandbox
    experience: Experience | None = None
    extra_tools: list[Callable[[Sandbox], Tool]] = field(default_factory=list)
    image: str | None = None
    setup: list[str] | None = None
    ro_paths: list[str] | None = None  # host paths the local sandbox may read (e.g. a task's virtualenv)
    command_prefix: str = ""  # shell text before every command ("{workdir}" is filled in)


@dataclass
class RunOutcome:
    result: AgentResult
    trajectory_path: Path
    patch_path: Path
    sandbox_kind: str
    trajectory: dict[str, Any]


def new_run_dir(root: Path, issue: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", issue.lower())[:40].strip("-") or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{stamp}-{slug}-{secrets.token_hex(2)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def limits_from(settings: Settings) -> Limits:
    return Limits(settings.step_limit, settings.cost_limit, settings.time_limit, settings.max_format_errors)


def run_agent(
    request: RunRequest,
    model: Model,
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    notice: Callable[[str], None] | None = None,
    after_run: Callable[[Sandbox, AgentResult], dict[str, Any] | None] | None = None,
) -> RunOutcome:
    """Run the agent on ``request`` in a fresh sandbox. ``after_run`` may inspect the sandbox (e.g. run the
    tests) before it is removed; what it returns is stored as the trajectory's ``outcome``."""
    settings = request.settings
    toolbox = ToolBox(settings.command_timeout, settings.output_limit)
    trajectory_path = request.run_dir / "trajectory.json"
    sandbox = make_sandbox(settings.sandbox, request.repo, settings, base_commit=request.base_commit,
                           image=request.image or settings.docker_image,
                           setup=request.setup if request.setup is not None else (settings.sandbox_setup or None),
                           notice=notice, ro_paths=request.ro_paths,
                           command_prefix=request.command_prefix)
    with sandbox:
        for make_tool in request.extra_tools:
            toolbox.add(make_tool(sandbox))
        native = model.supports_tools
        writer = TrajectoryWriter(
            trajectory_path,
            {
                "run_id": request.run_dir.name,
                "issue": {"text": request.issue, "source": request.issue_source},
                "repo": {"path": str(request.repo), "base_commit": sandbox.base_commit, "name": request.repo_name},
                "instance_id": request.instance_id,
                "sandbox": sandbox.kind,
                "protocol": "native" if native else "text",
                "model": {"name": model.name},
                "config": settings.public_dict(),
                "started_at": now_iso(),
            },
        )
        experience = request.experience or Experience()
        writer.update(memory={"mode": settings.memory, "injected": experience.ids, "recalled": []})
        repo_map = request.repo_map(sandbox) if callable(request.repo_map) else request.repo_map
        messages = build_messages(request.issue, workdir=sandbox.workdir, protocol="native" if native else "text",
                                  tool_schemas=toolbox.schemas(), repo_map=repo_map, experience=experience)
        agent = Agent(model, sandbox, toolbox, writer, limits_from(settings), on_event)
        result = agent.run(messages)
        if result.patch_secrets:
            (notice or print)(f"warning: the patch held secrets ({', '.join(result.patch_secrets)}); they were redacted")
        if after_run is not None:
            outcome = after_run(sandbox, result)
            if outcome is not None:
                writer.update(outcome=outcome)
                writer.save()
    patch_path = request.run_dir / "patch.diff"
    atomic_write_text(patch_path, result.patch)
    return RunOutcome(result, trajectory_path, patch_path, sandbox.kind, writer.data)
