"""The task environment the *agent* works in during ``replay`` on the local backend: the grader's, installed.

SWE-bench installs the repository at ``base_commit`` before anything runs (``pre_install`` and ``install``, e.g.
``pip install -e .``), which generates files the checkout lacks (pytest's setuptools_scm ``_version.py``) and brings
dependencies only the base commit has. The grader does that once per (environment, commit) in a cached overlay
(:mod:`expagent.tasks.overlays`); without it the agent's own ``python -m pytest`` fails where the grade passes
(``No module named '_pytest._version'``). :class:`AgentEnv` gives the agent the same: the overlay is built (or
reused) before the sandbox opens, its set-up command copies the generated files into the fresh checkout and
keeps them out of the patch (``.git/info/exclude``, as the Docker backend does after its set-up), and its shell
prefix puts the overlay's interpreter root (its own packages, then the environment's) in front. The Docker
backend's environment carries the same install as its set-up commands.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class AgentEnv:
    """A local :class:`expagent.tasks.envs.Env` plus the install at the task's base commit (``overlay``, or None
    when the recipe installs nothing)."""

    env: Any  # tasks.envs.Env
    overlay: Any = None  # tasks.overlays.Overlay

    @classmethod
    def for_task(cls, env: Any, source: Path, base_commit: str, echo: Callable[[str], None] | None = None
                 ) -> "AgentEnv":
        from expagent.tasks.overlays import ensure_overlay, needs_overlay

        if not base_commit or not needs_overlay(env.recipe):
            return cls(env)
        return cls(env, ensure_overlay(env, source, base_commit, echo))

    # the TaskEnv protocol (sandbox/config.py), the rest from the environment itself
    @property
    def path(self) -> Path:
        return self.env.path  # the overlay lives under it, so the sandbox's read-only view covers both

    @property
    def key(self) -> str:
        return self.env.key

    @property
    def python_version(self) -> str:
        return self.env.python_version

    @property
    def build_seconds(self) -> float:
        return self.env.build_seconds + (self.overlay.build_seconds if self.overlay and not self.overlay.cached else 0)

    @property
    def cached(self) -> bool:
        return self.env.cached and (self.overlay is None or self.overlay.cached)

    def __getattr__(self, name: str) -> Any:  # recipe, venv, host paths ...: the environment's own
        if name in ("env", "overlay"):
            raise AttributeError(name)
        return getattr(self.env, name)

    def setup_commands(self) -> list[str]:
        """Run once in the fresh checkout: copy in what the install generated, and keep it out of the patch."""
        if self.overlay is None or not Path(self.overlay.generated).is_file():
            return []
        archive = shlex.quote(str(self.overlay.generated))
        return [f"tar -xf {archive} && tar -tf {archive} | sed 's#^#/#' >> .git/info/exclude"]

    def shell_prefix(self, checkout: str) -> str:
        prefix = self.env.shell_prefix(checkout)
        if self.overlay is None:
            return prefix
        # the overlay's interpreter root: its python sees the base commit's own dependencies, then the env's
        return prefix + f"export PATH={shlex.quote(str(Path(self.overlay.root) / 'bin'))}:\"$PATH\"; "
