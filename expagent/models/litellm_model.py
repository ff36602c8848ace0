"""The litellm-backed model: any provider litellm supports, with retries and cost accounting."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

from expagent.errors import ModelError
from expagent.models.base import Model, ModelReply, reply_from_response


def import_litellm():
    """Import litellm without letting it reach for the network (its price map is bundled)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def _error_types(litellm, *names: str) -> tuple[type[BaseException], ...]:
    return tuple(getattr(litellm, n) for n in names if hasattr(litellm, n))


# a failure that can succeed when asked again; a refused connection, bad credentials or an unknown model cannot
_RETRYABLE = ("RateLimitError", "Timeout", "InternalServerError", "ServiceUnavailableError", "APIConnectionError")
_PERMANENT_CONNECTION = ("connection refused", "name or service not known", "nodename nor servname",
                         "no route to host", "missing credentials", "api_key client option must be set")


def is_retryable(litellm, exc: BaseException) -> bool:
    if isinstance(exc, _error_types(litellm, "AuthenticationError", "NotFoundError", "BadRequestError",
                                    "PermissionDeniedError")):
        return False
    if not isinstance(exc, _error_types(litellm, *_RETRYABLE)):
        return False
    if isinstance(exc, _error_types(litellm, "APIConnectionError")) and not isinstance(
            exc, _error_types(litellm, "Timeout")):
        text = str(exc).lower()
        return not any(marker in text for marker in _PERMANENT_CONNECTION)
    return True


def _explain(litellm, name: str, exc: BaseException) -> str:
    """One line that says what failed and what to set."""
    text = _one_line(exc)
    if isinstance(exc, _error_types(litellm, "AuthenticationError")) or "missing credentials" in text.lower():
        return f"the provider refused the credentials for {name}: check its API key in the environment ({text})"
    if isinstance(exc, _error_types(litellm, "NotFoundError")):
        return f"model {name} was not found by the provider: check --model ({text})"
    if "connection refused" in text.lower():
        return f"the model endpoint refused the connection: start the server or correct --api-base ({text})"
    return f"model call failed: {text}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


class LitellmModel(Model):
    def __init__(
        self,
        name: str,
        *,
        api_base: str | None = None,
        temperature: float = 0.0,
        retries: int = 4,
        tool_mode: str = "auto",
        timeout: float = 600.0,
        retry_wait: float = 1.0,
        display_name: str | None = None,
        notice: Callable[[str], None] | None = None,
        preflight: bool = True,
    ):
        self.route = name  # what litellm is asked for
        self.name = display_name or name  # what trajectories and reports show
        self.api_base = api_base
        self.temperature = temperature
        self.retries = retries
        self.timeout = timeout
        self.retry_wait = retry_wait
        self.notice = notice or (lambda message: print(message, file=sys.stderr))
        if preflight:  # seconds, before the slow import: a missing key or a dead endpoint fails now
            from expagent.models.endpoint import preflight as check_endpoint

            check_endpoint(name, api_base)
        self._litellm = import_litellm()
        self._check_provider()
        if tool_mode == "native":
            self.supports_tools = True
        elif tool_mode == "text":
            self.supports_tools = False
        else:
            try:
                self.supports_tools = bool(self._litellm.supports_function_calling(model=self.route))
            except Exception:  # unknown to litellm's map: the text protocol works everywhere
                self.supports_tools = False

    def _check_provider(self) -> None:
        litellm = self._litellm
        try:
            litellm.get_llm_provider(self.route, api_base=self.api_base)
        except Exception:
            raise ModelError(
                f"unknown model {self.name!r}: use a litellm model string such as 'openai/gpt-4o' or 'ollama/qwen2.5-coder'"
            ) from None
        if self.api_base:
            return  # an OpenAI-compatible server may need no key at all
        try:
            check = litellm.validate_environment(model=self.route)
        except Exception:
            return
        missing = [k for k in check.get("missing_keys", []) if k.endswith(("_KEY", "_TOKEN"))]
        if missing:
            raise ModelError(f"missing API key for {self.name}: set {' or '.join(missing)} in the environment")

    def _cost(self, response: Any) -> float | None:
        try:
            cost = self._litellm.completion_cost(completion_response=response)
        except Exception:  # an unknown price is recorded as unknown, never an error
            return None
        return float(cost) if cost is not None else None

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

        kwargs: dict[str, Any] = {
            "model": self.route,
            "messages": messages,
            "temperature": self.temperature,
            "timeout": self.timeout,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
            from expagent.models.endpoint import PROVIDER_KEYS, provider_of

            provider = provider_of(self.route)
            if provider in PROVIDER_KEYS and not any(os.environ.get(k) for k in PROVIDER_KEYS[provider]):
                # a self-hosted OpenAI-compatible server often needs no key, but the client insists on one
                kwargs["api_key"] = "no-key"
        if tools and self.supports_tools:
            kwargs["tools"] = tools
        # expagent decides what is retried: neither litellm nor the provider's client retries on its own
        kwargs["num_retries"] = 0
        kwargs["max_retries"] = 0
        litellm = self._litellm
        attempts = self.retries + 1

        def announce(state) -> None:
            exc = state.outcome.exception()
            self.notice(f"model call failed ({type(exc).__name__}: {_one_line(exc)[:120]}); retrying in "
                        f"{state.next_action.sleep:.1f} s (attempt {state.attempt_number + 1} of {attempts})")

        started = time.monotonic()
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: is_retryable(litellm, exc)),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self.retry_wait, max=60) + wait_random(0, self.retry_wait),
            before_sleep=announce,
            reraise=True,
        )
        try:
            response = retrying(litellm.completion, **kwargs)
        except ModelError:
            raise
        except Exception as exc:
            if is_retryable(litellm, exc) and attempts > 1:
                raise ModelError(f"model call failed after {attempts} attempts: {_one_line(exc)}") from None
            raise ModelError(_explain(litellm, self.name, exc)) from None
        reply = reply_from_response(response, self._cost(response))
        reply.latency = time.monotonic() - started
        return reply
