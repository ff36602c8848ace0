"""Checks that make a misconfigured model fail in seconds, before litellm (slow to import) or a sandbox starts.

Two questions, answered without the network beyond one TCP connect: is the provider's key in the environment,
and does the configured endpoint answer at all. Anything this module cannot judge is left to litellm.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from expagent.errors import ModelError

# provider prefix -> the environment variables any one of which holds its key
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "cohere": ("COHERE_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "fireworks_ai": ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"),
}
# providers that run on the user's machine by default, and where
LOCAL_DEFAULTS = {"ollama": "http://localhost:11434", "ollama_chat": "http://localhost:11434",
                  "lm_studio": "http://localhost:1234/v1"}
# bare model names litellm routes to a provider without a prefix
BARE_PREFIXES = {"gpt-": "openai", "o1": "openai", "o3": "openai", "o4": "openai", "claude-": "anthropic"}

CONNECT_TIMEOUT = 3.0


def provider_of(model: str) -> str | None:
    if "/" in model:
        return model.split("/", 1)[0]
    for prefix, provider in BARE_PREFIXES.items():
        if model.startswith(prefix):
            return provider
    return None


def check_key(model: str, api_base: str | None) -> None:
    """A missing key for a hosted provider is an error now, not after a network round trip."""
    provider = provider_of(model)
    if api_base or provider not in PROVIDER_KEYS:
        return  # an OpenAI-compatible server may need no key; an unknown provider is litellm's to judge
    names = PROVIDER_KEYS[provider]
    if not any(os.environ.get(name) for name in names):
        raise ModelError(f"missing API key for {model}: set {' or '.join(names)} in the environment")


def endpoint_for(model: str, api_base: str | None) -> str | None:
    return api_base or LOCAL_DEFAULTS.get(provider_of(model) or "")


def check_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """One TCP connect to the endpoint's host and port; refused, unresolvable or silent is an error naming it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"the model endpoint {url!r} is not an http:// or https:// URL (--api-base / api_base)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hint = "start the model server, or correct --api-base (setting api_base)"
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return
    except ConnectionRefusedError:
        raise ModelError(f"nothing answers at {url} (connection refused): {hint}") from None
    except socket.gaierror:
        raise ModelError(f"cannot resolve the host of {url}: {hint}") from None
    except (TimeoutError, socket.timeout):
        raise ModelError(f"{url} did not answer within {timeout:g} s: {hint}") from None
    except OSError as exc:
        raise ModelError(f"cannot connect to {url} ({exc.strerror or exc}): {hint}") from None


def known_bare_names() -> set[str]:
    """Model names litellm routes without a provider prefix: the keys of its bundled price map, read as a file
    (importing litellm costs seconds)."""
    import importlib.util
    import json

    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.origin:
        return set()
    path = Path(spec.origin).parent / "model_prices_and_context_window_backup.json"
    try:
        return set(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return set()


def check_known(model: str, api_base: str | None) -> None:
    """A bare name (no ``provider/``) that litellm's map does not hold cannot be routed: say so now."""
    if "/" in model or api_base or provider_of(model):
        return
    names = known_bare_names()
    if names and model not in names:
        raise ModelError(f"unknown model {model!r}: use a litellm model string such as 'openai/gpt-4o' or "
                         "'ollama/qwen2.5-coder'")


def preflight(model: str, api_base: str | None) -> None:
    check_known(model, api_base)
    check_key(model, api_base)
    endpoint = endpoint_for(model, api_base)
    if endpoint:
        check_reachable(endpoint)
