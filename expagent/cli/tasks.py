"""CLI for task suites: ``expagent eval`` (grade a patch, validate a suite) and ``expagent report``.

``replay`` is added to the root app by the lead, and ``expagent tasks ...`` (suite synthesis) by
its own module; this module only registers ``eval`` and ``report``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def _load_patch(task, spec: str) -> str:
    from expagent.errors import ExpagentError

    if spec == "gold":
        if not task.patch:
            raise ExpagentError(f"task {task.instance_id} has no gold patch")
        return task.patch
    if spec == "empty":
        return ""
    if spec == "-":
        import sys

        return sys.stdin.read()
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ExpagentError(f"--patch must be gold, empty, - or a patch file (no such file: {spec})")
    if path.suffix in (".json", ".jsonl"):
        # SWE-bench predictions: preds.json (a list, or an object keyed by id) or all_preds.jsonl
        from expagent.tasks.predictions import read_predictions

        for prediction in read_predictions(path):
            if prediction.instance_id == task.instance_id:
                return prediction.model_patch or ""
        raise ExpagentError(f"{path} has no prediction for {task.instance_id}")
    return path.read_text(encoding="utf-8", errors="replace")


def _status_style(status: str) -> str:
    return {"PASSED": "green", "XFAIL": "green", "XPASS": "green", "SKIPPED": "yellow"}.get(status, "red")


def _print_grade(console, result) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{result.instance_id}", show_lines=False)
    table.add_column("set")
    table.add_column("test", overflow="fold")
    table.add_column("status")
    for label, tests in (("FAIL_TO_PASS", result.fail_to_pass), ("PASS_TO_PASS", result.pass_to_pass)):
        for name, status in tests.items():
            table.add_row(label, escape(name), f"[{_status_style(status)}]{status}[/]")
    if table.row_count:
        console.print(table)
    verdict = "[green]resolved[/]" if result.resolved else "[red]not resolved[/]"
    d = result.durations
    console.print(f"{verdict}{': ' + escape(result.reason) if result.reason else ''}")
    for note in result.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    console.print(f"tests {d.get('tests', 0):.1f}s, harness {result.harness_seconds:.1f}s; log: {result.log_path}")


def _validate(suite, ids, sandbox, repos, timeout, as_json, console, settings) -> int:
    import json

    from rich.markup import escape
    from rich.table import Table

    from expagent.errors import ExpagentError
    from expagent.tasks.grader import NETWORK_NOTE, grade

    tasks = [suite.task(i) for i in ids] if ids else suite.tasks
    rows = []
    for task in tasks:
        row = {"instance_id": task.instance_id, "gold": None, "empty": None, "ok": False, "why": ""}
        try:
            if not task.patch:
                raise ExpagentError("no gold patch in the record")
            gold = grade(task, task.patch, sandbox_kind=sandbox, repos_dir=repos, timeout=timeout, settings=settings,
                         echo=None if as_json else console.print)
            empty = grade(task, "", sandbox_kind=sandbox, repos_dir=repos, timeout=timeout, settings=settings)
            row.update(gold=gold.resolved, empty=empty.resolved, gold_reason=gold.reason, empty_reason=empty.reason,
                       tests_seconds=gold.durations.get("tests"), harness_seconds=round(gold.harness_seconds, 3))
            problems = []
            if not gold.resolved:
                problems.append(f"gold patch does not resolve ({gold.reason})")
                problems.extend(n for n in gold.notes if n == NETWORK_NOTE)
            if empty.resolved:
                problems.append("empty patch resolves (FAIL_TO_PASS tests pass without a fix)")
            row["ok"] = not problems
            row["why"] = "; ".join(problems)
        except ExpagentError as exc:
            row["why"] = f"error: {exc}"
        rows.append(row)
        if not as_json:
            mark = "[green]ok[/]" if row["ok"] else f"[red]FAIL[/] {escape(row['why'])}"
            console.print(f"{task.instance_id}: {mark}")
    failed = [r for r in rows if not r["ok"]]
    if as_json:
        typer.echo(json.dumps({"suite": suite.name, "tasks": rows, "valid": not failed}, indent=2))
    else:
        table = Table(title=f"validation of {suite.name}")
        for column in ("instance", "gold", "empty", "verdict"):
            table.add_column(column, overflow="fold")

        def fmt(value):
            return "-" if value is None else ("resolved" if value else "not resolved")

        for r in rows:
            table.add_row(escape(r["instance_id"]), fmt(r["gold"]), fmt(r["empty"]),
                          "[green]ok[/]" if r["ok"] else f"[red]{escape(r['why'])}[/]")
        console.print(table)
        console.print(f"{len(rows) - len(failed)}/{len(rows)} tasks valid")
        for r in failed:
            console.print(f"[red]invalid[/] {escape(r['instance_id'])}: {escape(r['why'])}")
    return 1 if failed else 0


def _eval_predictions(suite, file: Path, ids, out, workers, sandbox, repos, timeout, as_json, console, settings) -> int:
    import json

    from rich.markup import escape
    from rich.table import Table

    from expagent.tasks.predictions import check_against_suite, evaluate_predictions, read_predictions

    predictions = read_predictions(file)
    check_against_suite(predictions, suite, file)
    if ids:
        wanted = set(ids)
        for instance_id in wanted:
            suite.task(instance_id)
        predictions = [p for p in predictions if p.instance_id in wanted]
    out = out or file.parent / f"{file.stem}-eval"

    def progress(report) -> None:
        if not as_json:
            mark = "[green]resolved[/]" if report.resolved else ("[red]error[/]" if report.error else "not resolved")
            why = f": {escape(report.reason)}" if report.reason and not report.resolved else ""
            console.print(f"{escape(report.instance_id)}: {mark}{why}")

    summary = evaluate_predictions(suite, predictions, out, workers=workers, on_report=progress, sandbox_kind=sandbox,
                                   repos_dir=repos, timeout=timeout, settings=settings)
    data = summary.to_dict()
    if as_json:
        typer.echo(json.dumps({**data, "report": str(out / "report.json")}, indent=2))
    else:
        table = Table(title=f"predictions {file.name} on {suite.name}")
        for column in ("submitted", "completed", "resolved", "unresolved", "empty patch", "error"):
            table.add_column(column)
        table.add_row(*(str(data[k]) for k in ("submitted_instances", "completed_instances", "resolved_instances",
                                                "unresolved_instances", "empty_patch_instances", "error_instances")))
        console.print(table)
        console.print(f"report: {out / 'report.json'} (per instance: {out}/<instance_id>/report.json)")
    return 1 if summary.error_ids else 0


def eval_command(
    tasks: str = typer.Argument(
        ..., help="Suite directory, suite.toml, SWE-bench JSONL/JSON/parquet file, or a dataset name (owner/name)."),
    instance: Optional[List[str]] = typer.Option(None, "--instance", "-i", help="Instance id (repeatable)."),
    patch: str = typer.Option("gold", "--patch", help="gold, empty, - (stdin), a .diff file, or predictions .json."),
    repos: Optional[Path] = typer.Option(None, "--repos", help="Directory of clones named owner__name (offline)."),
    sandbox: Optional[str] = typer.Option(
        None, "--sandbox", help="local, docker or auto (default: the 'sandbox' setting, auto: Docker when it can serve)."
    ),
    validate: bool = typer.Option(False, "--validate", help="Grade gold and empty patches for every task."),
    predictions: Optional[Path] = typer.Option(
        None, "--predictions", help="Grade a SWE-bench predictions file (preds.json or all_preds.jsonl)."),
    workers: int = typer.Option(1, "--workers", help="With --predictions: instances graded at a time."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="With --predictions: where the reports go (default: FILE's directory/<stem>-eval)."),
    split: Optional[str] = typer.Option(None, "--split", help="The split of a dataset (default: test)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Per-test-run timeout in seconds."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="Where to keep the test output."),
    test_network: Optional[bool] = typer.Option(
        None, "--test-network/--no-test-network",
        help="Run the tests with the network on, as the official harness does; off, the patch under test (untrusted "
             "code) has no network (default: the grade_network setting, False)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Grade a patch with a task's own tests, a whole predictions file, or validate a suite.

    Exit 1: not resolved / invalid suite / with --predictions, some instances could not be graded.
    """
    import json

    from rich.console import Console

    from expagent.config import load_settings
    from expagent.errors import ExpagentError
    from expagent.tasks.grader import grade
    from expagent.tasks.suite import load_suite

    console = Console(stderr=as_json)
    settings = load_settings(flags={"grade_network": test_network})
    sandbox = sandbox or settings.sandbox
    suite = load_suite(tasks, split=split)
    if predictions is not None:
        if validate:
            raise ExpagentError("--predictions and --validate cannot be combined")
        raise typer.Exit(_eval_predictions(suite, predictions, instance, out, workers, sandbox, repos, timeout,
                                           as_json, console, settings))
    if validate:
        raise typer.Exit(_validate(suite, instance, sandbox, repos, timeout, as_json, console, settings))
    if not instance:
        if len(suite.tasks) != 1:
            raise ExpagentError(f"--instance is required ({len(suite.tasks)} tasks in {suite.name}); or use --validate")
        instance = [suite.tasks[0].instance_id]
    results = []
    for instance_id in instance:
        task = suite.task(instance_id)
        result = grade(task, _load_patch(task, patch), sandbox_kind=sandbox, repos_dir=repos, timeout=timeout,
                       settings=settings,
                       log_dir=(log_dir / instance_id) if log_dir and len(instance) > 1 else log_dir,
                       echo=console.print)
        results.append(result)
        if not as_json:
            _print_grade(console, result)
    if as_json:
        payload = results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]
        typer.echo(json.dumps(payload, indent=2))
    raise typer.Exit(0 if all(r.resolved for r in results) else 1)


def report_command(
    run: Path = typer.Argument(..., help="Run directory holding results.jsonl."),
    run_b: Optional[Path] = typer.Argument(None, help="A second run to compare with, task by task."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write report.{json,png,html}."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Resolve rate, steps, tokens, cost and time per task and in total; with two runs, a paired comparison."""
    from rich.console import Console

    from expagent.tasks.report import dumps, load_run, print_report, write_report

    runs = [load_run(run)] + ([load_run(run_b)] if run_b else [])
    if out is None:
        out = run / ("report" if not run_b else f"compare-{runs[1].name}")
    report = write_report(runs, out)
    if as_json:
        typer.echo(dumps(report))
        return
    print_report(Console(), report)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("report")(report_command)
    # (the synth engineer's ``tasks`` sub-app and the lead's ``replay`` are registered elsewhere)
