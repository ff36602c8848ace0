"""The experience loop around a run: context before it (memory, repo map), verification and
remembering after it. Kept in one place so ``fix`` and ``replay`` share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from expagent.agent.prompting import Experience


@dataclass
class RunContext:
    repo_map: str = ""
    experience: Experience = field(default_factory=Experience)
    tools: list[Callable] = field(default_factory=list)


def prepare_context(issue: str, repo: Path, settings, notice: Callable[[str], None] | None = None) -> RunContext:
    return RunContext()


def make_verifier(settings, repo: Path):
    return None


def remember_run(outcome, settings, context: RunContext, notice: Callable[[str], None] | None = None) -> None:
    return None
