"""``expagent tasks synth``: make a bug-fix task suite from a repository that has tests."""

from __future__ import annotations

from typing import List, Optional

import typer

tasks_app = typer.Typer(name="tasks", help="Make task suites (bug-fix tasks synthesized from a repository's tests).",
                        no_args_is_help=True)


@tasks_app.command("synth")
def synth(
    repo: str = typer.Argument(".", help="A git repository with tests, or a PyPI pin such as toolz==1.2.0 (or pypi:toolz==1.2.0)."),
    n: int = typer.Option(12, "--n", min=1, help="How many tasks to make (about; chains are kept whole)."),
    out: Optional[str] = typer.Option(None, "--out", help="Suite directory to write (default: swe_tasks/<name>)."),
    chain: int = typer.Option(4, "--chain", min=1, help="Tasks per module: a chain of related tasks."),
    module: Optional[List[str]] = typer.Option(None, "--module", help="Only mutate this source file (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the mutation order (same seed, same suite)."),
    trials: int = typer.Option(40, "--trials", min=1, help="At most this many mutations tried per module."),
    name: Optional[str] = typer.Option(None, "--name", help="Suite name (default: the --out directory's name)."),
    python: str = typer.Option("3.11", "--python", help="Python version of the suite's environment."),
    pip: Optional[List[str]] = typer.Option(None, "--pip", help="A package the tests need (repeatable; default: pytest)."),
    install: Optional[List[str]] = typer.Option(None, "--install", help="A shell command run when building the env (repeatable)."),
    system_site_packages: Optional[bool] = typer.Option(
        None, "--system-site-packages/--no-system-site-packages",
        help="Let the env see this Python's packages (default: on for a local repository, off for PyPI)."),
    test_cmd: str = typer.Option("python -m pytest -rA -p no:cacheprovider", "--test-cmd", help="How tests run."),
    model: Optional[str] = typer.Option(None, "--model", help="Rewrite problem statements with this model (optional)."),
    force: bool = typer.Option(False, "--force", help="Overwrite a non-empty --out directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Plant small realistic bugs in real functions; keep those that some tests catch; write a SWE-bench suite."""
    import json
    import re
    import sys
    from pathlib import Path

    from rich.console import Console

    from expagent.tasks.synth import SynthOptions, synthesize

    console = Console(stderr=True)
    if out is None:
        base = re.split(r"[=<>]", repo.removeprefix("pypi:"))[0] if "==" in repo else Path(repo).resolve().name
        out = str(Path("swe_tasks") / re.sub(r"[^A-Za-z0-9_.-]+", "_", base or "synth"))
    options = SynthOptions(
        n=n, chain_length=chain, seed=seed, max_trials_per_module=trials, name=name, python=python,
        pip_packages=list(pip) if pip else None, install=list(install) if install else None,
        system_site_packages=system_site_packages, test_cmd=test_cmd, modules=list(module) if module else None,
        model=model,
    )
    echo = (lambda msg: None) if as_json else (lambda msg: console.print(msg, markup=False, highlight=False))
    report = synthesize(repo, Path(out), options, force=force, echo=echo)
    summary = report.summary()
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    discarded = ", ".join(f"{k} {v}" for k, v in sorted(summary["discarded"].items())) or "none"
    chains = ", ".join(f"{k} ({v})" for k, v in summary["chains"].items())
    typer.echo(f"wrote {summary['tasks']} tasks to {out} (chains: {chains})")
    typer.echo(f"tried {summary['tried']} mutations; discarded: {discarded}")
    typer.echo(f"check them with: expagent eval {out} --validate; run them in order with: expagent replay {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(tasks_app, name="tasks")
