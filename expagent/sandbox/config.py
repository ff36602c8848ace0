"""Sandbox backends chosen one way: a small typed config per backend, one resolver for ``auto``.

Every caller (``fix``, ``replay``, ``traj replay``, the grader) asks ``resolve_sandbox`` for a config and then
only calls the config: ``config.task_env(task, source)`` gives the task's environment in the form this backend
runs it (a host virtualenv for ``local``, an environment image for ``docker``), and
``config.open(repo, commit, task_env)`` gives a (not yet started) ``Sandbox`` holding ``repo`` at ``commit`` with
that environment in front of every command. Nobody asks which kind of sandbox it has.

A new backend is one new module with a config class like the two below (``kind``, ``from_settings``,
``unavailable``, ``task_env``, ``open``) and one line in ``BACKENDS``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TYPE_CHECKING, Callable, ClassVar, Protocol, Union, runtime_checkable

from expagent.errors import SandboxUnavailable
from expagent.sandbox.base import Sandbox

if TYPE_CHECKING:
    from expagent.config import Settings

Notice = Callable[[str], None]


@runtime_checkable
class TaskEnv(Protocol):
    """A task's built environment, whichever backend built it (``tasks.envs.Env``, ``tasks.docker_envs.DockerEnv``).

    ``shell_prefix(checkout)`` is the shell text that puts the environment in front for commands run in
    ``checkout``; the sandbox runs it before every command.
    """

    key: str
    python_version: str
    build_seconds: float
    cached: bool

    def shell_prefix(self, checkout: str) -> str: ...

    def setup_commands(self) -> list[str]:
        """Run once in the fresh checkout before the agent starts: the install at the task's base commit, as
        SWE-bench's instance images hold it (``[]`` when there is nothing to do)."""
        ...


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class LocalSandboxConfig:
    """A private clone on this machine, commands under bubblewrap (``sandbox.local``)."""

    kind: ClassVar[str] = "local"
    network: bool = False
    setup: tuple[str, ...] = ()
    pythons: str | None = None  # interpreter search list for task environments (``EXPAGENT_PYTHONS`` style)
    why: str = "local sandbox requested"
    auto: bool = False  # chosen by ``auto`` (a per-task fallback is then allowed)
    notice: Notice = field(default=_stderr, compare=False, repr=False)
    settings: Any = field(default=None, compare=False, repr=False)  # limits (memory, pids, cpus) come from here

    @classmethod
    def from_settings(cls, settings, notice: Notice | None = None, **extra) -> "LocalSandboxConfig":
        return cls(setup=tuple(settings.sandbox_setup or ()), pythons=settings.pythons, notice=notice or _stderr,
                   settings=settings, **extra)

    @staticmethod
    def unavailable(settings) -> str | None:
        return None  # a clone and a subprocess always work (bubblewrap is optional; the sandbox warns)

    def task_env(self, task, source: Path, echo: Notice | None = None) -> TaskEnv:
        from expagent.tasks.agent_env import AgentEnv
        from expagent.tasks.envs import ensure_env

        echo = echo or (lambda _m: None)
        env = ensure_env(task, source=source, echo=echo, python=self.pythons)
        return AgentEnv.for_task(env, source, task.base_commit, echo)

    def open(self, repo: str | Path, commit: str | None = None, task_env: TaskEnv | None = None, *,
             setup: list[str] | None = None) -> Sandbox:
        from expagent.sandbox.local import LocalSandbox

        ro_paths = []
        if task_env is not None:
            path = getattr(task_env, "path", None)
            if path is None:
                raise SandboxUnavailable(f"the local sandbox cannot run {type(task_env).__name__} environments "
                                         "(they live in a Docker image)")
            # the environment and its interpreter are host directories: read-only, also under /tmp (private in bwrap)
            ro_paths += [str(p) for p in getattr(task_env, "host_paths", [path])]
        return LocalSandbox(repo, base_commit=commit, setup=_setup(self.setup, setup, task_env),
                            network=self.network, warn=self.notice, ro_paths=ro_paths, settings=self.settings,
                            command_prefix=task_env.shell_prefix("{workdir}") if task_env is not None else "")


@dataclass(frozen=True)
class DockerSandboxConfig:
    """A fresh container per run (``sandbox.docker``): network off unless asked, memory / CPU / pids limited."""

    kind: ClassVar[str] = "docker"
    settings: "Settings | None" = None  # image, limits, network
    setup: tuple[str, ...] = ()
    why: str = "Docker sandbox requested"
    auto: bool = False
    notice: Notice = field(default=_stderr, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings, notice: Notice | None = None, **extra) -> "DockerSandboxConfig":
        try:
            import expagent.sandbox.docker  # noqa: F401  (the docker SDK is an optional dependency)
        except ImportError:
            raise SandboxUnavailable("the Docker backend is not available in this installation") from None
        return cls(settings=settings, setup=tuple(settings.sandbox_setup or ()), notice=notice or _stderr, **extra)

    @staticmethod
    def unavailable(settings) -> str | None:
        """Why ``auto`` should not pick Docker here (None: it can). Never starts a build."""
        try:
            from expagent.sandbox.docker import docker_available
        except ImportError:
            return "the Docker backend is not installed"
        if not docker_available():
            return "no Docker daemon answered (see 'expagent sandbox doctor')"
        if not _docker_image_present(settings):
            return "Docker answers but the sandbox image is not built ('expagent sandbox build')"
        return None

    def task_env(self, task, source: Path, echo: Notice | None = None) -> TaskEnv:
        from expagent.tasks.docker_envs import ensure_docker_env

        return ensure_docker_env(task, source, self.settings, echo)

    def open(self, repo: str | Path, commit: str | None = None, task_env: TaskEnv | None = None, *,
             setup: list[str] | None = None) -> Sandbox:
        from expagent.config import Settings
        from expagent.sandbox.docker import DockerSandbox

        settings = self.settings or Settings()
        image = settings.docker_image
        if task_env is not None:
            image = getattr(task_env, "image", None)
            if image is None:
                raise SandboxUnavailable(f"the Docker sandbox cannot run {type(task_env).__name__} environments "
                                         "(they are host directories); use --sandbox local")
        return DockerSandbox(repo, settings, base_commit=commit, image=image,
                             setup=_setup(self.setup, setup, task_env),
                             command_prefix=task_env.shell_prefix("{workdir}") if task_env is not None else "",
                             notice=self.notice)


def _setup(configured: tuple[str, ...], given: list[str] | None, task_env: TaskEnv | None) -> list[str]:
    """The set-up commands of a sandbox: the task environment's own first (the install at the base commit), then
    the configured ones (or those given for this sandbox)."""
    own = task_env.setup_commands() if task_env is not None and hasattr(task_env, "setup_commands") else []
    return [*own, *(configured if given is None else given)]


SandboxConfig = Union[LocalSandboxConfig, DockerSandboxConfig]

#: backend name -> config class; ``auto`` tries them in this order and takes the first one available
BACKENDS: dict[str, type] = {"docker": DockerSandboxConfig, "local": LocalSandboxConfig}


def _docker_image_present(settings) -> bool:
    """Whether the image a docker sandbox would use is already built (auto never starts a build)."""
    from expagent.sandbox import images
    from expagent.sandbox.docker_client import make_client

    candidates = [settings.docker_image] if settings is not None and settings.docker_image else \
        images.default_image_candidates()
    try:
        client = make_client(10)
        try:
            return any(images.image_exists(client, tag) for tag in candidates)
        finally:
            client.close()
    except Exception:  # the daemon went away between the ping and now: same as no image
        return False


def resolve_sandbox(kind: str | None, settings=None, notice: Notice | None = None) -> SandboxConfig:
    """The config for backend ``kind`` (``auto``: the first available of ``BACKENDS``, saying why)."""
    from expagent.config import Settings

    settings = settings or Settings()
    notice = notice or _stderr
    kind = kind or settings.sandbox
    if kind in BACKENDS:
        return BACKENDS[kind].from_settings(settings, notice)
    if kind != "auto":
        raise SandboxUnavailable(f"unknown sandbox backend {kind!r} (choose {', '.join(BACKENDS)} or auto)")
    skipped = []
    for name, backend in BACKENDS.items():
        reason = backend.unavailable(settings)
        if reason is None:
            why = f"auto: {'; '.join(skipped)}" if skipped else f"auto: the first available of {', '.join(BACKENDS)}"
            if skipped:
                notice(f"notice: {'; '.join(skipped)}; using the {name} sandbox")
            return backend.from_settings(settings, notice, why=why, auto=True)
        skipped.append(reason)
    raise SandboxUnavailable(f"no sandbox backend is available: {'; '.join(skipped)}")


def task_sandbox(config: SandboxConfig, task, source: Path, echo: Notice | None = None,
                 purpose: str = "running") -> tuple[SandboxConfig, TaskEnv]:
    """``(config, task environment)`` for ``task``; a backend ``auto`` chose that cannot serve this task (e.g. an
    image with another Python) falls back to the local one, with a notice."""
    echo = echo or (lambda _m: None)
    try:
        return config, config.task_env(task, source, echo)
    except SandboxUnavailable as exc:
        if not config.auto or config.kind == "local":
            raise
        echo(f"notice: {exc}; {purpose} with the local sandbox")
        local = LocalSandboxConfig.from_settings(config.settings, config.notice, why=f"auto: {exc}", auto=True)
        return local, local.task_env(task, source, echo)
