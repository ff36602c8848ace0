"""``expagent replay``: run a suite's tasks in order — retrieve, run the agent, grade, remember.

Tasks of one repository form a stream, in chronological order (``created_at``, then file order);
streams of different repositories may run in parallel (``--workers``), on threads or on a Ray cluster
(``--executor ray``, ``expagent.executors``), or the tasks run as chronological epochs (``--epochs``). Memory only ever sees
earlier tasks: each run gets its own memory under the run directory (unless ``--memory-home``
names a shared one), and retrieval is also bounded by the task's ``created_at`` and excludes
the task itself. An interrupted replay resumes from ``results.jsonl`` (``--resume``): finished
tasks are not redone and their memory writes are not repeated.

Run directory:
    run.json            what was run (suite, model, memory mode, settings)
    results.jsonl       one row per finished task (``expagent.tasks.results.ResultRow``)
    preds.json          SWE-bench predictions: [{"instance_id", "model_name_or_path", "model_patch"}]
    all_preds.jsonl     the same, one per line (the harness's input; ``expagent eval --predictions``)
    tasks/<id>/         trajectory.json, patch.diff, grade/ (test output and grade.json)
    memory/             the run's own memory (when no --memory-home)
    report/             written by ``expagent report`` at the end
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rich.markup import escape

from expagent.errors import ExpagentError
from expagent.fsutil import atomic_write_json
from expagent.models.oracle import ORACLE

if TYPE_CHECKING:
    from expagent.tasks.results import ResultRow


@dataclass
class ReplayOptions:
    suite: str
    flags: dict[str, Any]
    out: Path | None = None
    resume: bool = False
    workers: int | None = None  # units in flight (default: 1 locally, the cluster's CPUs on Ray)
    repos_dir: str | None = None
    instances: list[str] | None = None
    memory_home: Path | None = None
    limit: int | None = None
    json_out: bool = True  # stdout: the summary as JSON; False: one line (resolved x/y, the report)
    executor: str = "local"  # where tasks run: "local" threads or a "ray" cluster (expagent.executors)
    address: str | None = None  # the Ray cluster (default: a private one on this machine)
    epochs: int | None = None  # run the tasks as N chronological epochs (expagent.executors.schedule)


def task_streams(tasks: list) -> "OrderedDict[str, list]":
    """Group tasks by repository, each stream in chronological order (stable for equal times)."""
    streams: OrderedDict[str, list] = OrderedDict()
    for task in tasks:
        streams.setdefault(task.repo, []).append(task)
    for repo, stream in streams.items():
        streams[repo] = sorted(stream, key=lambda t: t.created_at or "")
    return streams


class Replay:
    def __init__(self, options: ReplayOptions, console):
        from expagent import paths
        from expagent.config import load_settings, replace
        from expagent.experience import make_distiller
        from expagent.sandbox.config import resolve_sandbox
        from expagent.tasks.suite import load_suite

        self.options = options
        self.console = console
        self.suite = load_suite(options.suite)
        self.settings = load_settings(None, options.flags)
        self._check_executor()
        self.say = OnceNotices(lambda message: console.print(escape(message)))
        # one backend for the agent and the grader (each task runs in its own environment on it)
        self.sandbox = resolve_sandbox(self.settings.sandbox, self.settings, self.say)
        if not self.settings.model:
            # no model anywhere: the whole loop still runs, offline and clearly labelled as such
            self.settings = replace(self.settings, model=ORACLE)
            console.print("[bold yellow]OFFLINE DEMO[/]: no model configured (--model or EXPAGENT_MODEL), so the "
                          "'oracle' applies each task's reference fix. The sandbox, grader and memory are real; "
                          "the results say nothing about an agent.")
        tasks = self.suite.tasks
        if options.instances:
            tasks = [self.suite.task(i) for i in options.instances]
        self.streams = task_streams(tasks)
        if options.limit:
            for repo in self.streams:
                self.streams[repo] = self.streams[repo][: options.limit]
        self.out = self._run_dir(paths.runs_dir())
        # an expagent home whose memory/ holds this run's memory (MemoryStore adds "memory/")
        self.memory_home = options.memory_home or self.out
        self.lock = threading.Lock()
        self.done = self._finished_ids()
        # one distiller for the whole replay (a scripted one hands out its replies in task order)
        self.distiller = make_distiller(self.settings) if self.settings.memory != "off" else None

    def _check_executor(self) -> None:
        from expagent.executors import make_executor

        opts = self.options
        # before anything is written: a missing Ray is one line, not a half-made run directory
        self.executor = make_executor(opts.executor, address=opts.address, workers=opts.workers)
        if opts.epochs is not None and opts.epochs < 1:
            raise ExpagentError(f"--epochs must be at least 1 (got {opts.epochs})")
        if opts.workers is not None and opts.workers < 1:
            raise ExpagentError(f"--workers must be at least 1 (got {opts.workers})")
        if opts.executor != "ray" or self.settings.memory == "off":
            return
        if not self.settings.chroma_url:
            raise ExpagentError("--executor ray with memory on needs one memory for the whole cluster: "
                                "--chroma-url http://HOST:PORT of a `chroma run` server (or --memory off)")
        if opts.memory_home:
            raise ExpagentError("--memory-home is a directory on this machine; with --executor ray the memory is "
                                "the --chroma-url server")
        from expagent.models.factory import is_offline

        if not opts.epochs and self.settings.distill_model and is_offline(self.settings.distill_model):
            raise ExpagentError(f"a scripted distiller ({self.settings.distill_model}) hands out its replies in "
                                f"one process's order; with --executor ray use --epochs (the driver distills) "
                                f"or a real --distill-model")

    def _run_dir(self, root: Path) -> Path:
        if self.options.resume:
            if not self.options.out or not (self.options.out / "run.json").is_file():
                raise ExpagentError("--resume needs --out pointing at the run directory of an earlier replay")
            recorded = json.loads((self.options.out / "run.json").read_text())
            if recorded.get("memory_mode") != self.settings.memory:
                raise ExpagentError(f"{self.options.out} was run with --memory {recorded.get('memory_mode')}; "
                                    f"resume it with the same mode")
            if (recorded.get("settings") or {}).get("chroma_url") != self.settings.chroma_url:
                was = (recorded.get("settings") or {}).get("chroma_url") or "its own memory (no --chroma-url)"
                raise ExpagentError(f"{self.options.out} was run with memory at {was}; resume it with the same "
                                    f"--chroma-url (any executor)")
            return self.options.out
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = self.options.out or root / f"replay-{self.suite.name}-{self.settings.memory}-{stamp}"
        if (out / "results.jsonl").exists():
            raise ExpagentError(f"{out} already holds a replay; use --resume to continue it or another --out")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "run.json", {
            "suite": str(self.suite.root), "suite_name": self.suite.name, "model": self.settings.model,
            "memory_mode": self.settings.memory, "started_at": stamp, "sandbox": self.sandbox.kind,
            "offline_demo": self.settings.model == ORACLE, "settings": self.settings.public_dict(),
            "executor": self.options.executor, "epochs": self.options.epochs,
            "tasks": [t.instance_id for stream in self.streams.values() for t in stream],
        })
        return out

    def _finished_ids(self) -> set[str]:
        from expagent.tasks.results import read_results

        path = self.out / "results.jsonl"
        return {row.instance_id for row in read_results(path)} if path.exists() else set()

    # -- running ----------------------------------------------------------
    def spec(self, task, remember: bool = True):
        import dataclasses

        from expagent.executors.base import TaskSpec

        # the config's notice is this console's; the task's notices travel back in its output instead
        return TaskSpec(instance_id=task.instance_id, settings=self.settings, run_name=self.out.name,
                        run_dir=str(self.out), repos_dir=self.options.repos_dir, remember=remember,
                        sandbox=dataclasses.replace(self.sandbox, notice=None))

    def run(self) -> Path:
        """Dispatch the unfinished tasks to the executor, as streams or epochs (``expagent.executors.schedule``);
        Ctrl-C cancels the tasks running and keeps what finished (``Interrupted``)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from expagent.executors.base import Runtime
        from expagent.executors.schedule import drive, split_epochs
        from expagent.experience import open_memory

        total = sum(len(s) for s in self.streams.values())
        executor = self.executor
        store = open_memory(self.settings, home=self.memory_home)
        try:
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=self.console, transient=False) as progress:
                bar = progress.add_task(f"replay {self.suite.name} (memory {self.settings.memory}, "
                                        f"{executor.name})", total=total)
                progress.update(bar, completed=len(self.done))
                say = progress.console.print
                self.runtime = Runtime(root=self.out, store=store, distiller=self.distiller, lock=self.lock)
                executor.start(self.suite, self.runtime, run_task)
                try:
                    if not self.options.epochs:
                        def finished(output) -> None:
                            self.record(output, say)
                            progress.advance(bar)

                        drive(executor, [[self.spec(t) for t in stream if t.instance_id not in self.done]
                                         for stream in self.streams.values()], finished)
                    else:
                        tasks = [t for stream in self.streams.values() for t in stream]
                        for epoch in split_epochs(tasks, self.options.epochs):
                            outputs = {}

                            def arrived(output) -> None:
                                outputs[output.instance_id] = output
                                progress.advance(bar)

                            try:
                                drive(executor, [[self.spec(t, remember=False)] for t in epoch
                                                 if t.instance_id not in self.done], arrived)
                            finally:
                                # the epoch's memory, in chronological order, for what finished
                                for task in epoch:
                                    if task.instance_id in outputs:
                                        self.record(outputs[task.instance_id], say)
                except KeyboardInterrupt:
                    raise Interrupted() from None
                finally:
                    executor.close()
        finally:
            if store is not None:
                store.close()
        return self.out

    def record(self, output, say: Callable[[str], None]) -> None:
        """On the driver: a finished task's directory, its deferred memory, its results row (the one place rows
        are written) and the predictions; then its line on the console."""
        from expagent.executors.base import unpack_dir
        from expagent.tasks.results import append_result

        if output.archive is not None:
            unpack_dir(output.archive, self.out / "tasks" / output.instance_id)
        notice = self._task_notice(say)
        for message in output.messages:
            notice(message)
        written = list(output.written)
        if output.deferred is not None:
            written = remember_deferred(output, self.suite.task(output.instance_id), self.settings, self.runtime,
                                        self.out, notice)
        with self.lock:  # one writer at a time: results and predictions stay consistent
            append_result(self.out, output.row)
            self._write_preds()
            self.done.add(output.instance_id)
        row = output.row
        mark = "[green]resolved[/]" if row.resolved else "[red]not resolved[/]"
        memo = f", injected {len(row.injected_ids)}" if row.injected_ids else ""
        where = f" on node {output.node[:8]}" if output.node else ""
        say(f"{escape(row.instance_id)}: {mark} ({row.exit_status}, {row.steps} steps{memo}"
            f"{', remembered ' + str(len(written)) if written else ''}){where}")

    def _task_notice(self, say: Callable[[str], None]) -> Callable[[str], None]:
        def notice(message: str) -> None:
            self.say(message) if self.say.is_once(message) else say(escape(message))

        return notice

    def _write_preds(self) -> None:
        from expagent.tasks.predictions import write_run_predictions

        write_run_predictions(self.out, self.settings.model)



def _episode_key(run_name: str, instance_id: str) -> str:
    return f"{run_name}:{instance_id}"


def run_task(spec, suite, runtime):
    """One task, wherever it runs (the executors' unit of work; its arguments are picklable): agent, grade and,
    unless ``spec.remember`` is off, memory. Writes ``tasks/<id>/`` under ``runtime.root``; returns the row for
    the driver to write (``Replay.record``). Raises ``Interrupted`` when the agent was interrupted."""
    import dataclasses

    from expagent.executors.base import Deferred, TaskOutput
    from expagent.models import make_model
    from expagent.sandbox.config import task_sandbox
    from expagent.session import GraderJudge, SessionSpec, run_session
    from expagent.tasks.envs import envs_root, locked
    from expagent.tasks.repos import resolve_repo
    from expagent.tasks.results import ResultRow
    from expagent.trajectory import now_iso

    task = suite.task(spec.instance_id)
    settings = spec.settings
    messages: list[str] = []
    say = messages.append
    started_at, started = now_iso(), time.monotonic()
    task_dir = runtime.root / "tasks" / task.instance_id
    if task_dir.exists():  # a task interrupted midway starts again from scratch
        import shutil

        shutil.rmtree(task_dir)
    task_dir.mkdir(parents=True)
    config = dataclasses.replace(runtime.sandbox or spec.sandbox, notice=say)
    # tasks of one repository may run at once (epochs): one of them materializes the repository and environment
    with locked(envs_root() / f".prepare-{task.repo.replace('/', '__')}.lock"):
        source = resolve_repo(task.suite, task.repo, spec.repos_dir)
        sandbox, env = task_sandbox(config, task, source, say)
    session = SessionSpec(
        issue=task.problem_statement, repo=source, run_dir=task_dir, settings=settings,
        issue_source=f"{suite.name}:{task.instance_id}", base_commit=task.base_commit,
        instance_id=task.instance_id, repo_name=task.repo, created_at=task.created_at or None, task_env=env,
        episode_key=_episode_key(spec.run_name, task.instance_id), actor="expagent replay")
    judge = GraderJudge(task, sandbox=sandbox, settings=settings, repos_dir=spec.repos_dir,
                        log_dir=task_dir / "grade", echo=say)
    # remembered below, with the paths the driver keeps (whichever machine ran it), or later by the driver
    outcome = run_session(session, make_model(settings, task), sandbox=sandbox, store=runtime.store, judge=judge,
                          notice=say, remember=False)
    result = outcome.result
    if judge.graded is None:
        raise Interrupted()
    graded = judge.graded
    row = ResultRow(
        instance_id=task.instance_id, repo=task.repo, resolved=graded.resolved,
        exit_status=result.exit_status.value, steps=result.steps, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, cost=result.cost,
        wall_time=round(time.monotonic() - started, 3), memory_mode=settings.memory,
        injected_ids=outcome.context.experience.ids, trajectory=str(outcome.trajectory_path.relative_to(runtime.root)),
        patch=str(outcome.patch_path.relative_to(runtime.root)), grade_reason=graded.reason,
        started_at=started_at)
    output = TaskOutput(instance_id=task.instance_id, row=row, messages=messages)
    if spec.remember:
        recorded = dataclasses.replace(outcome, trajectory_path=Path(spec.run_dir) / row.trajectory,
                                       patch_path=Path(spec.run_dir) / row.patch)
        output.written = remember_outcome(recorded, task, settings, runtime, spec.run_name, say)
    else:
        output.deferred = Deferred(result=result, verdict=outcome.verdict)
    return output


def remember_outcome(outcome, task, settings, runtime, run_name: str, say: Callable[[str], None]) -> list[str]:
    """A finished task's memory (episode, lessons, usefulness), keyed by run and task so that a retry or a
    resume writes nothing twice."""
    from expagent.experience.context import RunContext
    from expagent.experience.remember import remember_run

    if runtime.store is None or outcome.verdict is None:
        return []
    with runtime.lock:  # one writer at a time in this process
        return remember_run(
            outcome, settings, outcome.context or RunContext(repo_name=task.repo), store=runtime.store,
            verdict=outcome.verdict.to_dict(), distiller=runtime.distiller, repo_name=task.repo,
            instance_id=task.instance_id, created_at=task.created_at or None,
            episode_key=_episode_key(run_name, task.instance_id), actor="expagent replay", notice=say)


def remember_deferred(output, task, settings, runtime, out: Path, say: Callable[[str], None]) -> list[str]:
    """The driver's memory write for a task of an epoch (after the epoch, in chronological order)."""
    from expagent.session import RunOutcome

    row = output.row
    trajectory_path = out / row.trajectory
    outcome = RunOutcome(output.deferred.result, trajectory_path, out / row.patch, settings.sandbox,
                         json.loads(trajectory_path.read_text(encoding="utf-8")), output.deferred.verdict)
    return remember_outcome(outcome, task, settings, runtime, out.name, say)


class Interrupted(ExpagentError):
    """Ctrl-C during a replay: finished tasks are kept in ``results.jsonl``; ``--resume`` continues."""


class OnceNotices:
    """A notice sink that says the notices true of the whole replay (``ONCE``) once, not once per task."""

    ONCE = ("no distillation model",)

    def __init__(self, sink: Callable[[str], None]):
        self.sink = sink
        self.said: set[str] = set()

    def is_once(self, message: str) -> bool:
        return message.startswith(self.ONCE)

    def __call__(self, message: str) -> None:
        if self.is_once(message):
            if message in self.said:
                return
            self.said.add(message)
        self.sink(message)


def run_replay(options: ReplayOptions) -> int:
    from rich.console import Console

    from expagent.tasks.report import load_run, write_report
    from expagent.tasks.results import read_results

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    replay = Replay(options, console)
    total = sum(len(s) for s in replay.streams.values())
    console.print(escape(f"replay of {replay.suite.name}: {total} tasks in {len(replay.streams)} stream(s), "
                         f"memory {replay.settings.memory}, {replay.sandbox.kind} sandbox ({replay.sandbox.why}), "
                         f"run dir {replay.out}"))
    try:
        out = replay.run()
    except Interrupted:
        finished = len(replay._finished_ids())
        console.print(escape(f"interrupted: {finished}/{total} tasks finished and kept in {replay.out}; resume "
                             f"with: expagent replay {options.suite} --resume --out {replay.out}"))
        return 130
    rows = read_results(out / "results.jsonl")
    report = write_report([load_run(out)], out / "report")
    summary = report["runs"][0]
    resolved = sum(1 for row in rows if row.resolved)
    final = f"resolved {resolved}/{len(rows)} ({replay.sandbox.kind} sandbox); report: {out / 'report' / 'report.html'}"
    # stdout is the result (one line, or the summary as JSON); stderr the log, ending with the same line
    if options.json_out:
        print(json.dumps({"run": str(out), "summary": summary}, indent=2, default=str))
    else:
        print(final)
    console.print(escape(final))
    return 0
