"""The agent loop: ask the model, run its actions in the sandbox, feed back what happened.

Errors become messages for the model where it can do something about them (bad format,
failing tool call) and named exit statuses where it cannot. Whatever ends the run, the
patch is extracted from the sandbox by the harness.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable

from expagent.agent.prompting import render
from expagent.agent.protocol import FormatError, actions_from_reply
from expagent.agent.tools import ToolBox, ToolResult
from expagent.errors import ModelError, SandboxError
from expagent.models.base import Model, ModelReply
from expagent.redact import redactor
from expagent.sandbox.base import Sandbox
from expagent.trajectory import TrajectoryWriter


class ExitStatus(str, Enum):
    SUBMITTED = "submitted"
    STEP_LIMIT = "step_limit"
    COST_LIMIT = "cost_limit"
    TIME_LIMIT = "time_limit"
    FORMAT_ERRORS = "format_errors"
    MODEL_ERROR = "model_error"
    SANDBOX_ERROR = "sandbox_error"
    OUT_OF_MEMORY = "out_of_memory"
    INTERRUPTED = "interrupted"


@dataclass
class Limits:
    step_limit: int = 60
    cost_limit: float = 3.0
    time_limit: float = 1800.0
    max_format_errors: int = 3


@dataclass
class AgentResult:
    exit_status: ExitStatus
    patch: str
    steps: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # None when any reply's price was unknown
    wall_time: float
    error: str | None = None
    patch_secrets: list[str] = field(default_factory=list)  # kinds of secrets found (and redacted) in the patch

    @property
    def ok(self) -> bool:
        return self.exit_status is ExitStatus.SUBMITTED and bool(self.patch.strip())


class Agent:
    def __init__(
        self,
        model: Model,
        sandbox: Sandbox,
        toolbox: ToolBox,
        trajectory: TrajectoryWriter,
        limits: Limits,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.model, self.sandbox, self.toolbox, self.trajectory, self.limits = model, sandbox, toolbox, trajectory, limits
        self.on_event = on_event or (lambda event: None)
        self.native = model.supports_tools
        self.messages: list[dict[str, Any]] = []
        self.steps = self.prompt_tokens = self.completion_tokens = self.format_errors = 0
        self.cost: float | None = 0.0
        self.started = time.monotonic()

    # -- the loop ---------------------------------------------------------
    def run(self, messages: list[dict[str, Any]]) -> AgentResult:
        self.started = time.monotonic()
        for message in messages:
            self._add_message(message)
        status, error = None, None
        try:
            while status is None:
                status = self._limit_reached() or self.step()
        except KeyboardInterrupt:
            status = ExitStatus.INTERRUPTED
        except ModelError as exc:
            status, error = ExitStatus.MODEL_ERROR, str(exc)
        except SandboxError as exc:
            status, error = ExitStatus.SANDBOX_ERROR, str(exc)
        return self._finish(status, error)

    def step(self) -> ExitStatus | None:
        started = time.monotonic() - self.started
        reply = self.model.query(self.messages, self.toolbox.schemas() if self.native else None)
        self._account(reply)
        self._add_message(reply.assistant_message())
        record = {"index": self.steps - 1, "started": round(started, 4), "reply": _reply_record(reply), "actions": []}
        self.trajectory.add_step(record)
        try:
            actions = actions_from_reply(reply, self.native, list(self.toolbox.tools))
        except FormatError as exc:
            self._observe(None, render("format_error.j2", message=str(exc), protocol=self._protocol()))
            return self._malformed(record, started)
        status, malformed = None, True
        for action in actions:
            result = self._execute(action.tool, action.arguments)
            malformed = malformed and (action.arguments is None or action.tool not in self.toolbox.tools)
            record["actions"].append({"tool": action.tool, "arguments": action.arguments, **_result_record(result)})
            if result.meta.get("recalled"):
                self.trajectory.record_memory(recalled=result.meta["recalled"])
            self._observe(action.id, self._observation(action.tool, result))
            self.on_event({"step": self.steps, "tool": action.tool, "arguments": action.arguments,
                           "exit_code": result.exit_code, "tokens": self.prompt_tokens + self.completion_tokens,
                           "cost": self.cost})
            if result.oom_killed:
                status = ExitStatus.OUT_OF_MEMORY
            elif result.submitted:
                status = ExitStatus.SUBMITTED
            if status:
                break
        if malformed:
            return status or self._malformed(record, started)
        self.format_errors = 0
        record["duration"] = round(time.monotonic() - self.started - started, 4)
        self.trajectory.save()
        return status

    # -- helpers ----------------------------------------------------------
    def _execute(self, tool: str, arguments: dict[str, Any] | None) -> ToolResult:
        remaining = self.limits.time_limit - (time.monotonic() - self.started)
        if tool == "bash" and arguments is not None:
            # a command never outlives the run's time limit
            limit = max(1.0, min(self.toolbox.command_timeout, remaining))
            arguments = {**arguments, "timeout": min(float(arguments.get("timeout") or limit), limit)}
        return self.toolbox.execute(self.sandbox, tool, arguments)

    def _malformed(self, record: dict[str, Any], started: float) -> ExitStatus | None:
        self.format_errors += 1
        record["duration"] = round(time.monotonic() - self.started - started, 4)
        self.trajectory.save()
        if self.format_errors >= self.limits.max_format_errors:
            return ExitStatus.FORMAT_ERRORS
        return None

    def _limit_reached(self) -> ExitStatus | None:
        if self.steps >= self.limits.step_limit:
            return ExitStatus.STEP_LIMIT
        if self.cost is not None and self.cost >= self.limits.cost_limit:
            return ExitStatus.COST_LIMIT
        if time.monotonic() - self.started >= self.limits.time_limit:
            return ExitStatus.TIME_LIMIT
        return None

    def _account(self, reply: ModelReply) -> None:
        self.steps += 1
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        if reply.cost is None:
            self.cost = None  # once one price is unknown, the total is unknown (and the cost limit cannot apply)
        elif self.cost is not None:
            self.cost += reply.cost

    def _protocol(self) -> str:
        return "native" if self.native else "text"

    def _observation(self, tool: str, result: ToolResult) -> str:
        remaining = self.limits.step_limit - self.steps
        return render("observation.j2", tool=tool, exit_code=result.exit_code if tool == "bash" else None,
                      output=result.output, remaining_steps=remaining)

    def _observe(self, call_id: str | None, text: str) -> None:
        if self.native and call_id is not None:
            self._add_message({"role": "tool", "tool_call_id": call_id, "content": text})
        else:
            self._add_message({"role": "user", "content": text})

    def _add_message(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.trajectory.add_message(message, time.monotonic() - self.started)

    def _finish(self, status: ExitStatus, error: str | None) -> AgentResult:
        patch = ""
        try:
            patch = self.sandbox.diff()
        except Exception as exc:  # the run's status says what went wrong; the patch is best effort
            error = error or f"could not extract the patch: {exc}"
        # a secret the agent wrote into the repository is reported and redacted, never kept in the patch
        patch, secrets = redactor().scrub(patch)
        secrets = list(dict.fromkeys([*getattr(self.sandbox, "patch_secrets", []), *secrets]))
        result = AgentResult(status, patch, self.steps, self.prompt_tokens, self.completion_tokens, self.cost,
                             round(time.monotonic() - self.started, 3), error, secrets)
        totals = {k: v for k, v in asdict(result).items() if k not in ("patch", "exit_status", "error", "patch_secrets")}
        self.trajectory.update(exit_status=status.value, patch=patch, totals=totals, error=error,
                               **({"patch_secrets": secrets} if secrets else {}))
        self.trajectory.save(final=True)
        return result


def _reply_record(reply: ModelReply) -> dict[str, Any]:
    return {
        "content": reply.content,
        "tool_calls": [{"id": c.id, "name": c.name, "raw_arguments": c.raw_arguments} for c in reply.tool_calls],
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "cost": reply.cost,
        "latency": round(reply.latency, 4),
    }


def _result_record(result: ToolResult) -> dict[str, Any]:
    return {"output": result.output, "exit_code": result.exit_code, "error": result.error}
