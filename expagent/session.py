"""One run's lifecycle, written once: open the sandbox, build the context from the sandbox's checkout, run the
loop, judge the outcome, remember it. ``fix``, ``replay`` and ``traj replay`` are thin adapters over
``run_session``; they differ only in the spec, the sandbox config, the store and the judge they pass.

Data flow::

    SessionSpec ─┐
    Model ───────┤                 ┌─ CheckoutView (what the agent sees, on this machine)
    SandboxConfig┼─ run_session ──►│   └─ prepare_context: repo map, issue keys, recall, code tools
    MemoryStore ─┤                 ├─ Agent loop (trajectory.json rewritten every step)
    Judge ───────┘                 ├─ Judge -> Verdict (tests before/after, or the task's grader)
                                   └─ remember_run: episode + lessons + usefulness -> RunOutcome
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from expagent.agent.loop import AgentResult
from expagent.fsutil import atomic_write_text

Notice = Callable[[str], None]


# -- verdicts -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """The verified outcome of a run: ``verdict`` is resolved / unresolved / unknown, ``method`` how it was
    established (tests, grader, none), ``details`` the per-test evidence (fixed / broken tests, or the task's
    FAIL_TO_PASS / PASS_TO_PASS statuses)."""

    verdict: str
    method: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved(self) -> bool:
        return self.verdict == "resolved"

    def to_dict(self) -> dict[str, Any]:
        """The trajectory's ``outcome`` (and what ``remember_run`` and distillation read)."""
        return {"verdict": self.verdict, "method": self.method, "reason": self.reason, **self.details}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Verdict | None":
        if not data:
            return None
        rest = {k: v for k, v in data.items() if k not in ("verdict", "method", "reason")}
        return cls(str(data.get("verdict", "unknown")), str(data.get("method", "none")), str(data.get("reason", "")),
                   rest)


def unverified(reason: str) -> Verdict:
    return Verdict("unknown", "none", reason)


class Judge(Protocol):
    """Decides a run's verdict. ``in_sandbox`` judges look at the agent's sandbox before it is removed; the
    others (the grader) get ``sandbox=None`` after it is gone and open their own fresh one."""

    in_sandbox: bool

    def judge(self, sandbox, checkout: Path | None, result: AgentResult) -> Verdict: ...


class RepoTestsJudge:
    """``fix``: the repository's own tests, in the sandbox, on the base commit plus the agent's tests and then with
    the whole patch (``experience.verify``)."""

    in_sandbox = True

    def __init__(self, settings):
        from expagent.experience.verify import make_verifier

        self.verifier = make_verifier(settings)

    def judge(self, sandbox, checkout: Path | None, result: AgentResult) -> Verdict:
        return Verdict.from_dict(self.verifier.after_run(sandbox, result, checkout))


class GraderJudge:
    """Suites: the task's own FAIL_TO_PASS / PASS_TO_PASS tests in a fresh sandbox (``tasks.grader``), on the same
    sandbox backend as the agent. ``graded`` keeps the grader's full result."""

    in_sandbox = False

    def __init__(self, task, *, sandbox, settings, repos_dir=None, log_dir: Path | None = None,
                 echo: Notice | None = None):
        self.task, self.sandbox, self.settings = task, sandbox, settings
        self.repos_dir, self.log_dir, self.echo = repos_dir, log_dir, echo
        self.graded = None

    def judge(self, sandbox, checkout: Path | None, result: AgentResult) -> Verdict:
        from expagent.experience.verify import verdict_from_grade
        from expagent.tasks.grader import grade

        self.graded = grade(self.task, result.patch, sandbox_kind=self.sandbox, repos_dir=self.repos_dir,
                            settings=self.settings, log_dir=self.log_dir, echo=self.echo)
        return Verdict.from_dict(verdict_from_grade(self.graded))


# -- the trajectory, typed ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrajectoryView:
    """A read-only, typed view of a trajectory for the packages that read one (the JSON keeps its versioned
    format, ``expagent.trajectory``)."""

    run_id: str
    issue: str
    issue_source: str
    repo_path: str
    base_commit: str
    repo_name: str | None
    instance_id: str | None
    sandbox: str
    protocol: str
    model: str
    memory_mode: str
    injected: tuple[str, ...]
    recalled: tuple[str, ...]
    exit_status: str | None
    patch: str
    steps: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    outcome: Verdict | None
    started_at: str | None
    updated_at: str | None
    actions: tuple[str, ...]  # tool names, in order

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, data: dict[str, Any]) -> "TrajectoryView":
        repo, memory, totals = data.get("repo") or {}, data.get("memory") or {}, data.get("totals") or {}
        return cls(
            run_id=str(data.get("run_id", "")), issue=(data.get("issue") or {}).get("text", ""),
            issue_source=(data.get("issue") or {}).get("source", ""), repo_path=str(repo.get("path", "")),
            base_commit=str(repo.get("base_commit", "")), repo_name=repo.get("name"),
            instance_id=data.get("instance_id"), sandbox=str(data.get("sandbox", "")),
            protocol=str(data.get("protocol", "")), model=str((data.get("model") or {}).get("name", "")),
            memory_mode=str(memory.get("mode", "off")), injected=tuple(memory.get("injected") or ()),
            recalled=tuple(memory.get("recalled") or ()), exit_status=data.get("exit_status"),
            patch=data.get("patch") or "", steps=int(totals.get("steps") or len(data.get("steps") or [])),
            prompt_tokens=int(totals.get("prompt_tokens") or 0),
            completion_tokens=int(totals.get("completion_tokens") or 0), cost=totals.get("cost"),
            outcome=Verdict.from_dict(data.get("outcome")), started_at=data.get("started_at"),
            updated_at=data.get("updated_at"),
            actions=tuple(a.get("tool", "") for s in data.get("steps") or [] for a in s.get("actions") or []),
        )

    @classmethod
    def load(cls, path: str | Path) -> "TrajectoryView":
        from expagent.trajectory import load_trajectory

        return cls.of(load_trajectory(path))


# -- one run ------------------------------------------------------------------------------------------------------
@dataclass
class SessionSpec:
    """What to run: an issue on a repository (its committed state at ``base_commit``; default HEAD)."""

    issue: str
    repo: Path
    run_dir: Path
    settings: Any  # expagent.config.Settings
    issue_source: str = "argument"
    base_commit: str | None = None
    instance_id: str | None = None
    repo_name: str | None = None
    created_at: str | None = None  # retrieval sees only memory from before this time (suites)
    task_env: Any = None  # a sandbox.config.TaskEnv, as ``sandbox.task_env`` built it
    repo_map: str | None = None  # a fixed map (a recorded run's); None: built from the sandbox's checkout
    episode_key: str | None = None  # memory's idempotence key (default: the run directory's name)
    actor: str = "expagent"


@dataclass
class RunOutcome:
    result: AgentResult
    trajectory_path: Path
    patch_path: Path
    sandbox_kind: str
    trajectory: dict[str, Any]  # the saved JSON (``view`` is its typed form)
    verdict: Verdict | None = None
    written: list[str] = field(default_factory=list)  # memory ids written
    context: Any = None  # experience.context.RunContext

    @property
    def view(self) -> TrajectoryView:
        return TrajectoryView.of(self.trajectory)


def run_session(
    spec: SessionSpec,
    model,
    *,
    sandbox,
    store=None,
    judge: Judge | None = None,
    distiller=None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    notice: Notice | None = None,
    memory_lock: threading.Lock | None = None,
    remember: bool = True,
) -> RunOutcome:
    """Run ``spec`` with ``model`` in a sandbox of config ``sandbox`` (``expagent.sandbox.config``); judge it with
    ``judge`` (None: unverified) and remember it in ``store`` (None: memory off). ``memory_lock`` serialises the
    memory writes of parallel sessions."""
    from expagent.agent.loop import Agent
    from expagent.agent.prompting import build_messages
    from expagent.agent.tools import ToolBox
    from expagent.experience.context import prepare_context, repo_name_of
    from expagent.runner import limits_from
    from expagent.sandbox.view import CheckoutView
    from expagent.trajectory import TrajectoryWriter, now_iso

    settings = spec.settings
    notice = notice or (lambda _m: None)
    repo_name = spec.repo_name or repo_name_of(spec.repo)
    trajectory_path = spec.run_dir / "trajectory.json"
    toolbox = ToolBox(settings.command_timeout, settings.output_limit)
    verdict: Verdict | None = None
    with sandbox.open(spec.repo, spec.base_commit, spec.task_env) as sb, CheckoutView(sb) as view:
        context = prepare_context(spec.issue, view, settings, store=store, repo_name=repo_name,
                                  instance_id=spec.instance_id, before=spec.created_at, repo_map=spec.repo_map,
                                  notice=notice)
        for make_tool in context.tools:
            toolbox.add(make_tool(sb))
        native = model.supports_tools
        writer = TrajectoryWriter(trajectory_path, {
            "run_id": spec.run_dir.name,
            "issue": {"text": spec.issue, "source": spec.issue_source},
            "repo": {"path": str(spec.repo), "base_commit": sb.base_commit, "name": repo_name},
            "instance_id": spec.instance_id,
            "sandbox": sb.kind,
            "protocol": "native" if native else "text",
            "model": {"name": model.name},
            "config": settings.public_dict(),
            "started_at": now_iso(),
        })
        writer.update(memory={"mode": settings.memory, "injected": context.experience.ids, "recalled": []})
        messages = build_messages(spec.issue, workdir=sb.workdir, protocol="native" if native else "text",
                                  tool_schemas=toolbox.schemas(), repo_map=context.repo_map,
                                  experience=context.experience)
        result = Agent(model, sb, toolbox, writer, limits_from(settings), on_event).run(messages)
        if result.patch_secrets:
            notice(f"warning: the patch held secrets ({', '.join(result.patch_secrets)}); they were redacted")
        interrupted = result.exit_status.value == "interrupted"  # neither judged nor remembered
        if judge is not None and judge.in_sandbox and not interrupted:
            verdict = judge.judge(sb, view.path(), result)
        kind = sb.kind
    if judge is not None and not judge.in_sandbox and not interrupted:
        verdict = judge.judge(None, None, result)
    if judge is None and not interrupted:
        verdict = unverified("verification skipped")
    if verdict is not None:
        writer.update(outcome=verdict.to_dict())
    writer.save(final=True)
    patch_path = spec.run_dir / "patch.diff"
    atomic_write_text(patch_path, result.patch)
    outcome = RunOutcome(result, trajectory_path, patch_path, kind, writer.data, verdict, [], context)
    if remember and store is not None and verdict is not None:  # remember=False: the caller remembers it
        from expagent.experience.remember import remember_run

        with memory_lock or nullcontext():
            outcome.written = remember_run(
                outcome, settings, context, store=store, verdict=verdict.to_dict(), distiller=distiller,
                repo_name=repo_name, instance_id=spec.instance_id, created_at=spec.created_at,
                episode_key=spec.episode_key or f"run:{spec.run_dir.name}", actor=spec.actor, notice=notice)
    return outcome
