"""Settings: one object built from layers, each value remembering where it came from.

Layers, lowest to highest: defaults, ``$EXPAGENT_HOME/config.toml``, the repository's
``.expagent.toml``, ``EXPAGENT_*`` environment variables, command-line flags.
API keys are never settings: they are read from the environment by the provider
library and never written anywhere by expagent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from expagent import paths
from expagent.errors import ConfigError
from expagent.redact import is_secret_name

MemoryMode = Literal["on", "off", "episodic", "semantic"]
SandboxKind = Literal["auto", "local", "docker"]
ToolMode = Literal["auto", "native", "text"]


@dataclass
class Settings:
    # model
    model: str | None = None
    api_base: str | None = None
    temperature: float = 0.0
    tool_mode: ToolMode = "auto"
    model_retries: int = 4
    # agent limits
    step_limit: int = 60
    cost_limit: float = 3.0
    time_limit: float = 1800.0
    command_timeout: float = 180.0
    max_format_errors: int = 3
    output_limit: int = 10000
    # sandbox
    sandbox: SandboxKind = "auto"
    docker_image: str | None = None
    docker_network: bool = False
    docker_memory: str = "4g"
    docker_cpus: float = 2.0
    docker_pids: int = 512
    # grading: the task's tests run with the network on, as in the official harness's containers (off by
    # default: the candidate patch is untrusted code; tests that need the network are then noted as such)
    grade_network: bool = False
    # set-up commands for the sandbox (e.g. installing the project and its test dependencies); in Docker they
    # run once with the network on and the result is cached as an image keyed by their hash
    sandbox_setup: list[str] = field(default_factory=list)
    # experience
    memory: MemoryMode = "on"
    memory_k: int = 3
    memory_token_budget: int = 1500
    chroma_url: str | None = None
    embedding_model: str = "minilm-int8"
    # distillation of finished runs into summaries and lessons: a litellm model string, "none" for no LLM
    # (summaries then come from the run's facts and no lessons are written); unset = the run's own model
    distill_model: str | None = None
    lessons_from_unknown: bool = False  # distill lessons from runs whose outcome the tests could not establish
    # code intelligence
    repo_map: bool = True
    repo_map_tokens: int = 1024
    # verification
    test_command: str | None = None
    # task environments: extra Python interpreters (':'-separated paths or dirs with bin/python3.X)
    pythons: str | None = None

    # where each value came from: field name -> "default" | file path | "env EXPAGENT_X" | "flag --x"
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain data, safe to write into a trajectory (no secrets are settings)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}


_FIELDS = {f.name: f for f in fields(Settings) if f.name != "sources"}


def _type_of(name: str) -> Any:
    hints = Settings.__annotations__[name]
    return eval(hints, {**globals(), "Literal": Literal}) if isinstance(hints, str) else hints


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Convert ``value`` (from TOML, env or a flag) to the field's type, or explain what is wrong."""
    typ = _type_of(name)
    args = [a for a in get_args(typ) if a is not type(None)]
    optional = type(None) in get_args(typ)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if optional:
            return None
        raise ConfigError(f"{origin}: '{name}' cannot be empty")
    base = typ
    if get_origin(typ) is list:
        if isinstance(value, str):  # from the environment: a JSON list, or one command
            text = value.strip()
            try:
                value = json.loads(text) if text.startswith("[") else [text]
            except json.JSONDecodeError:
                raise ConfigError(f"{origin}: '{name}' must be a JSON list of strings") from None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{origin}: '{name}' must be a list of strings (got {value!r})")
        return list(value)
    if get_origin(typ) is Literal:
        allowed = get_args(typ)
        if str(value) not in allowed:
            raise ConfigError(f"{origin}: '{name}' must be one of {', '.join(allowed)} (got {value!r})")
        return str(value)
    if optional and args:
        base = args[0]
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: '{name}' must be {getattr(base, '__name__', base)} (got {value!r})") from None


_MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?[bkmg]?$", re.I)
_URL = re.compile(r"^https?://[^\s/]+", re.I)


def _at_least(low: float) -> Any:
    def check(value: Any) -> str | None:
        return None if value >= low else f"must be at least {low:g}"
    return check


def _between(low: float, high: float) -> Any:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low:g} and {high:g}"
    return check


def _matches(pattern: re.Pattern, what: str) -> Any:
    def check(value: Any) -> str | None:
        return None if value is None or pattern.match(value) else f"must be {what}"
    return check


def _embedding_name(value: str) -> str | None:
    return None if value == "minilm-int8" or value.startswith("litellm:") else "must be minilm-int8 or litellm:<model>"


# range and format of each value, checked when it is set (so a bad value never reaches a run)
_CHECKS: dict[str, Any] = {
    "temperature": _between(0, 2),
    "model_retries": _between(0, 20),
    "step_limit": _at_least(1),
    "cost_limit": _at_least(0),
    "time_limit": _at_least(1),
    "command_timeout": _at_least(1),
    "max_format_errors": _at_least(0),
    "output_limit": _at_least(200),
    "docker_memory": _matches(_MEMORY_SIZE, "a size such as 512m or 4g"),
    "docker_cpus": _between(0.01, 1024),
    "docker_pids": _at_least(16),
    "memory_k": _between(1, 50),
    "memory_token_budget": _at_least(0),
    "repo_map_tokens": _at_least(64),
    "api_base": _matches(_URL, "an http:// or https:// URL"),
    "chroma_url": _matches(_URL, "an http:// or https:// URL"),
    "embedding_model": _embedding_name,
}


def _check(name: str, value: Any, origin: str) -> Any:
    check = _CHECKS.get(name)
    problem = check(value) if check is not None else None
    if problem:
        raise ConfigError(f"{origin}: '{name}' {problem} (got {value!r})")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if "(at end of document)" in message:  # tomllib names no line then: it is the last one
            message = message.replace("(at end of document)", f"(at line {max(len(text.splitlines()), 1)}, end)")
        raise ConfigError(f"malformed config file {path}: {message}") from None
    # allow an optional [expagent] table, so the file can be shared with other tools
    if isinstance(data.get("expagent"), dict):
        data = data["expagent"]
    return data


def _apply(settings: Settings, values: dict[str, Any], origin: str) -> None:
    for key, value in values.items():
        name = key.replace("-", "_")
        # a key that is no setting and looks like a credential is refused: keys live in the environment only
        if name not in _FIELDS and is_secret_name(name):
            raise ConfigError(f"{origin}: '{key}' looks like a credential; API keys are read from the environment only")
        if name not in _FIELDS:
            raise ConfigError(f"{origin}: unknown setting '{key}' (see 'expagent config show')")
        setattr(settings, name, _check(name, _coerce(name, value, origin), origin))
        settings.sources[name] = origin


def user_config_path() -> Path:
    return paths.home() / "config.toml"


def load_settings(repo: str | os.PathLike | None = None, flags: dict[str, Any] | None = None) -> Settings:
    """Build the effective settings for a run in ``repo`` with the given command-line ``flags``."""
    settings = Settings()
    settings.sources = {name: "default" for name in _FIELDS}
    user_file = user_config_path()
    if user_file.is_file():
        _apply(settings, _read_toml(user_file), str(user_file))
    if repo is not None:
        repo_file = Path(repo) / ".expagent.toml"
        if repo_file.is_file():
            _apply(settings, _read_toml(repo_file), str(repo_file))
    env_values = {}
    for name in _FIELDS:
        var = f"EXPAGENT_{name.upper()}"
        if var in os.environ:
            env_values[name] = (var, os.environ[var])
    for name, (var, value) in env_values.items():
        _apply(settings, {name: value}, f"env {var}")
    for name, value in (flags or {}).items():
        if value is not None:
            _apply(settings, {name: value}, f"flag --{name.replace('_', '-')}")
    return settings


def replace(settings: Settings, **changes: Any) -> Settings:
    new = dataclasses.replace(settings, **changes)
    new.sources = {**settings.sources, **{k: "code" for k in changes}}
    return new
