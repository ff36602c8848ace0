"""``expagent replay``: run a suite's tasks in order, memory on or off, graded by their own tests."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from expagent.cli.core import HELP_COST_LIMIT, HELP_MEMORY, HELP_STEP_LIMIT


def replay_command(
    suite: str = typer.Argument(..., help="A suite directory (swe_tasks/NAME), its name, or a SWE-bench JSONL file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="litellm model string, scripted:DIR, or oracle "
                                        "(the offline demo) (default: the model setting)."),
    memory: Optional[str] = typer.Option(None, "--memory", help=HELP_MEMORY),
    workers: Optional[int] = typer.Option(None, "--workers",
                                          help="Units of work in parallel (default 1; on Ray, the cluster's CPUs)."),
    executor: str = typer.Option("local", "--executor", help="Where tasks run: local (threads) or ray (a cluster)."),
    address: Optional[str] = typer.Option(None, "--address",
                                          help="Ray cluster address (HOST:PORT or ray://...); default a private one."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Run the tasks as N chronological epochs, each all "
                                         "in parallel against the memory frozen at its start."),
    chroma_url: Optional[str] = typer.Option(None, "--chroma-url",
                                             help="The memory on a Chroma server (needed by --executor ray)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out, skipping finished tasks."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default under $EXPAGENT_HOME/runs)."),
    repos: Optional[str] = typer.Option(None, "--repos", help="Directory of local clones named owner__name."),
    instance: Optional[List[str]] = typer.Option(None, "--instance", help="Only these tasks (repeatable)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most N tasks per repository stream."),
    memory_home: Optional[Path] = typer.Option(None, "--memory-home",
                                               help="Use this expagent home's memory instead of a fresh one."),
    distill_model: Optional[str] = typer.Option(None, "--distill-model", help="Model for distillation, or none "
                                                "(default: the distill_model setting; else the run's model)."),
    step_limit: Optional[int] = typer.Option(None, "--step-limit", min=1, help=HELP_STEP_LIMIT),
    cost_limit: Optional[float] = typer.Option(None, "--cost-limit", help=HELP_COST_LIMIT),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="docker, local or auto: where each task's agent "
                                          "and grader run, in the task's environment (default: the sandbox "
                                          "setting, auto)."),
    test_network: Optional[bool] = typer.Option(
        None, "--test-network/--no-test-network",
        help="Grade with the network on, as the official harness does (default: the grade_network setting, False)."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's summary as JSON instead of one line."),
) -> None:
    """Run a suite's tasks in order (retrieve, fix, grade, remember) and report; compare runs with 'report'."""
    from expagent.replay import ReplayOptions, run_replay

    flags = {"model": model, "memory": memory, "distill_model": distill_model, "step_limit": step_limit,
             "cost_limit": cost_limit, "sandbox": sandbox, "chroma_url": chroma_url, "grade_network": test_network}
    raise typer.Exit(run_replay(ReplayOptions(suite=suite, flags=flags, out=out, resume=resume, workers=workers,
                                              repos_dir=repos, instances=instance, memory_home=memory_home,
                                              limit=limit, json_out=json_out, executor=executor, address=address,
                                              epochs=epochs)))


def register(app: typer.Typer) -> None:
    app.command("replay")(replay_command)
