"""The litellm-backed model: any provider litellm supports, with retries and cost accounting."""

from __future__ import annotations

import os
import time
from typing import Any

from expagent.errors import ModelError
from expagent.models.base import Model, ModelReply, reply_from_response


def import_litellm():
    """Import litellm without letting it reach for the network (its price map is bundled)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def _transient_errors(litellm) -> tuple[type[BaseException], ...]:
    names = ("RateLimitError", "APIConnectionError", "Timeout", "InternalServerError", "ServiceUnavailableError")
    return tuple(getattr(litellm, n) for n in names if hasattr(litellm, n))


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
    ):
        self.route = name  # what litellm is asked for
        self.name = display_name or name  # what trajectories and reports show
        self.api_base = api_base
        self.temperature = temperature
        self.retries = retries
        self.timeout = timeout
        self.retry_wait = retry_wait
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
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

        kwargs: dict[str, Any] = {
            "model": self.route,
            "messages": messages,
            "temperature": self.temperature,
            "timeout": self.timeout,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if tools and self.supports_tools:
            kwargs["tools"] = tools
        started = time.monotonic()
        retrying = Retrying(
            retry=retry_if_exception_type(_transient_errors(self._litellm)),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.retry_wait, max=60) + wait_random(0, self.retry_wait),
            reraise=True,
        )
        try:
            response = retrying(self._litellm.completion, **kwargs)
        except _transient_errors(self._litellm) as exc:
            raise ModelError(f"model call failed after {self.retries + 1} attempts: {_one_line(exc)}") from None
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"model call failed: {_one_line(exc)}") from None
        reply = reply_from_response(response, self._cost(response))
        reply.latency = time.monotonic() - started
        return reply
