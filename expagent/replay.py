"""``expagent replay``: run a suite's tasks in order — retrieve, run the agent, grade, remember.

Tasks of one repository form a stream, in chronological order (``created_at``, then file order);
streams of different repositories may run in parallel (``--workers``). Memory only ever sees
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
from concurrent.futures import ThreadPoolExecutor
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
    workers: int = 1
    repos_dir: str | None = None
    instances: list[str] | None = None
    memory_home: Path | None = None
    limit: int | None = None
    json_out: bool = True  # stdout: the summary as JSON; False: one line (resolved x/y, the report)


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

    def _run_dir(self, root: Path) -> Path:
        if self.options.resume:
            if not self.options.out or not (self.options.out / "run.json").is_file():
                raise ExpagentError("--resume needs --out pointing at the run directory of an earlier replay")
            recorded = json.loads((self.options.out / "run.json").read_text())
            if recorded.get("memory_mode") != self.settings.memory:
                raise ExpagentError(f"{self.options.out} was run with --memory {recorded.get('memory_mode')}; "
                                    f"resume it with the same mode")
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
            "tasks": [t.instance_id for stream in self.streams.values() for t in stream],
        })
        return out

    def _finished_ids(self) -> set[str]:
        from expagent.tasks.results import read_results

        path = self.out / "results.jsonl"
        return {row.instance_id for row in read_results(path)} if path.exists() else set()

    # -- running ----------------------------------------------------------
    def run(self) -> Path:
        """Run every unfinished task, stream by stream; Ctrl-C stops after the task(s) running (``Interrupted``)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from expagent.experience import open_memory

        total = sum(len(s) for s in self.streams.values())
        store = open_memory(self.settings, home=self.memory_home)
        stop = threading.Event()
        try:
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=self.console, transient=False) as progress:
                bar = progress.add_task(f"replay {self.suite.name} (memory {self.settings.memory})", total=total)
                progress.update(bar, completed=len(self.done))

                def run_stream(stream: list) -> None:
                    for task in stream:
                        if stop.is_set():
                            return
                        if task.instance_id in self.done:
                            continue
                        self.record(self.run_task(task, store, progress.console.print))
                        progress.advance(bar)

                workers = max(1, min(self.options.workers, len(self.streams)))
                try:
                    if workers == 1:
                        for stream in self.streams.values():
                            run_stream(stream)
                    else:
                        with ThreadPoolExecutor(workers) as pool:
                            futures = [pool.submit(run_stream, s) for s in self.streams.values()]
                            try:
                                for future in futures:
                                    future.result()
                            except BaseException:
                                stop.set()  # the other streams stop after their current task
                                raise
                except KeyboardInterrupt:
                    stop.set()
                    raise Interrupted() from None
        finally:
            if store is not None:
                store.close()
        return self.out

    def run_task(self, task, store, say: Callable[[str], None]) -> "ResultRow":
        """Run one task (agent, grade, memory) and return its results row; ``record`` appends it. Raises
        ``Interrupted`` when the agent was interrupted (the task is then redone on resume)."""
        from expagent.models import make_model
        from expagent.sandbox.config import task_sandbox
        from expagent.session import GraderJudge, SessionSpec, run_session
        from expagent.tasks.repos import resolve_repo
        from expagent.tasks.results import ResultRow
        from expagent.trajectory import now_iso

        started_at, started = now_iso(), time.monotonic()
        task_dir = self.out / "tasks" / task.instance_id
        if task_dir.exists():  # a task interrupted midway starts again from scratch
            import shutil

            shutil.rmtree(task_dir)
        task_dir.mkdir(parents=True)
        settings = self.settings
        source = resolve_repo(task.suite, task.repo, self.options.repos_dir)
        sandbox, env = task_sandbox(self.sandbox, task, source, self.say)
        spec = SessionSpec(
            issue=task.problem_statement, repo=source, run_dir=task_dir, settings=settings,
            issue_source=f"{self.suite.name}:{task.instance_id}", base_commit=task.base_commit,
            instance_id=task.instance_id, repo_name=task.repo, created_at=task.created_at or None, task_env=env,
            episode_key=f"{self.out.name}:{task.instance_id}", actor="expagent replay")
        judge = GraderJudge(task, sandbox=sandbox, settings=settings, repos_dir=self.options.repos_dir,
                            log_dir=task_dir / "grade", echo=self.say)
        outcome = run_session(spec, make_model(settings, task), sandbox=sandbox, store=store, judge=judge,
                              distiller=self.distiller, notice=self._task_notice(say), memory_lock=self.lock)
        result = outcome.result
        if judge.graded is None:
            raise Interrupted()
        graded = judge.graded
        injected = outcome.context.experience.ids
        mark = "[green]resolved[/]" if graded.resolved else "[red]not resolved[/]"
        memo = f", injected {len(injected)}" if injected else ""
        say(f"{escape(task.instance_id)}: {mark} ({result.exit_status.value}, {result.steps} steps{memo}"
            f"{', remembered ' + str(len(outcome.written)) if outcome.written else ''})")
        return ResultRow(
            instance_id=task.instance_id, repo=task.repo, resolved=graded.resolved,
            exit_status=result.exit_status.value, steps=result.steps, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens, cost=result.cost,
            wall_time=round(time.monotonic() - started, 3), memory_mode=settings.memory,
            injected_ids=injected, trajectory=str(outcome.trajectory_path.relative_to(self.out)),
            patch=str(outcome.patch_path.relative_to(self.out)), grade_reason=graded.reason,
            started_at=started_at)

    def record(self, row: "ResultRow") -> None:
        """Append a finished task's row (the one place results are written) and refresh the predictions."""
        from expagent.tasks.results import append_result

        with self.lock:  # one writer at a time: results and predictions stay consistent
            append_result(self.out, row)
            self._write_preds()
            self.done.add(row.instance_id)

    def _task_notice(self, say: Callable[[str], None]) -> Callable[[str], None]:
        def notice(message: str) -> None:
            self.say(message) if self.say.is_once(message) else say(escape(message))

        return notice

    def _write_preds(self) -> None:
        from expagent.tasks.predictions import write_run_predictions

        write_run_predictions(self.out, self.settings.model)


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
