"""SWE-bench predictions files: read, check against a suite, grade all, report as the official harness does.

Predictions come as ``preds.json`` (a list of objects, or an object keyed by instance id) or
``all_preds.jsonl`` (one object per line); each names ``instance_id``, ``model_name_or_path`` and
``model_patch`` (a unified diff; empty or null for no change).

``evaluate_predictions`` grades each prediction with ``expagent.tasks.grader.grade`` and writes,
under the output directory, ``<instance_id>/report.json`` in the harness's shape::

    {"<instance_id>": {"patch_is_None": false, "patch_exists": true, "patch_successfully_applied": true,
                       "resolved": true,
                       "tests_status": {"FAIL_TO_PASS": {"success": [...], "failure": [...]},
                                        "PASS_TO_PASS": {...}, "FAIL_TO_FAIL": {...}, "PASS_TO_FAIL": {...}}}}

(next to the kept test output), and ``report.json``: the summary (``total_instances``,
``submitted_instances``, ``completed_instances``, ``resolved_instances``, ...; id lists), plus the
reason per unresolved instance. As in the harness, an empty or null patch is not run (it cannot
resolve an instance); a patch that does not apply is unresolved with the reason recorded; a
harness failure on one instance (say its environment does not build) is an error instance and
the others still run.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from expagent.errors import ExpagentError
from expagent.fsutil import atomic_write_json, atomic_write_text

PREDICTION_KEYS = ("instance_id", "model_name_or_path", "model_patch")


class PredictionsError(ExpagentError):
    """A predictions file that cannot be read or does not fit the suite."""


@dataclass(frozen=True)
class Prediction:
    instance_id: str
    model_patch: str | None  # None: the file says null
    model_name_or_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "model_name_or_path": self.model_name_or_path,
                "model_patch": self.model_patch}


def _prediction(item: Any, where: str, key_id: str | None = None) -> Prediction:
    if not isinstance(item, dict):
        raise PredictionsError(f"{where}: a prediction must be a JSON object")
    instance_id = item.get("instance_id", key_id)
    if key_id is not None and instance_id != key_id:
        raise PredictionsError(f"{where}: keyed {key_id!r} but its instance_id is {instance_id!r}")
    if not isinstance(instance_id, str) or not instance_id:
        raise PredictionsError(f"{where}: instance_id must be a non-empty string")
    patch = item.get("model_patch")
    if patch is not None and not isinstance(patch, str):
        raise PredictionsError(f"{where} ({instance_id}): model_patch must be a string or null, "
                               f"not {type(patch).__name__}")
    model = item.get("model_name_or_path") or ""
    if not isinstance(model, str):
        raise PredictionsError(f"{where} ({instance_id}): model_name_or_path must be a string")
    return Prediction(instance_id=instance_id, model_patch=patch, model_name_or_path=model)


def read_predictions(path: str | Path) -> list[Prediction]:
    """Predictions from a ``.json`` file (list or object keyed by id) or a JSONL file, in file order."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PredictionsError(f"no such predictions file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionsError(f"cannot read predictions file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    stripped = text.lstrip()
    if not stripped:
        raise PredictionsError(f"{path}: empty predictions file")
    predictions: list[Prediction] = []
    if stripped[0] in "[{" and path.suffix != ".jsonl":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if stripped[0] == "{" and "\n{" in stripped:  # one object per line under a .json name
                return _checked(_jsonl(text, path), path)
            raise PredictionsError(f"{path}: malformed JSON ({exc.msg}, line {exc.lineno})") from None
        if isinstance(data, list):
            predictions = [_prediction(item, f"{path} item {i + 1}") for i, item in enumerate(data)]
        elif isinstance(data, dict) and "instance_id" in data and "model_patch" in data:
            predictions = [_prediction(data, str(path))]  # a single prediction
        elif isinstance(data, dict):
            predictions = [_prediction(item, f"{path} [{key!r}]", key_id=key) for key, item in data.items()]
        else:
            raise PredictionsError(f"{path}: expected a list or an object of predictions")
    else:
        predictions = _jsonl(text, path)
    return _checked(predictions, path)


def _jsonl(text: str, path: Path) -> list[Prediction]:
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
        out.append(_prediction(item, f"{path}:{lineno}"))
    return out


def _checked(predictions: list[Prediction], path: Path) -> list[Prediction]:
    seen: set[str] = set()
    for prediction in predictions:
        if prediction.instance_id in seen:
            raise PredictionsError(f"{path}: duplicate instance_id {prediction.instance_id!r}")
        seen.add(prediction.instance_id)
    if not predictions:
        raise PredictionsError(f"{path}: no predictions")
    return predictions


def check_against_suite(predictions: list[Prediction], suite, path: str | Path = "predictions") -> None:
    """Every prediction names an instance of ``suite``; else one error listing the unknown ids."""
    known = {task.instance_id for task in suite.tasks}
    unknown = [p.instance_id for p in predictions if p.instance_id not in known]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise PredictionsError(f"{path}: {len(unknown)} prediction(s) for instances not in suite {suite.name!r}: {shown}")


def write_all_preds(path: str | Path, predictions: Iterable[Prediction]) -> None:
    """Write ``all_preds.jsonl`` (the harness's input format), atomically."""
    text = "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in predictions)
    atomic_write_text(path, text)


def write_run_predictions(run_dir: str | Path, model: str) -> list[Prediction]:
    """A replay run's predictions from its ``results.jsonl`` and patch files, written as ``preds.json`` (a list)
    and ``all_preds.jsonl`` in ``run_dir``."""
    from expagent.tasks.results import read_results

    run_dir = Path(run_dir)
    predictions = []
    for row in read_results(run_dir / "results.jsonl"):
        patch_path = run_dir / row.patch if row.patch else None
        patch = patch_path.read_text(encoding="utf-8") if patch_path and patch_path.is_file() else ""
        predictions.append(Prediction(instance_id=row.instance_id, model_patch=patch, model_name_or_path=model or ""))
    atomic_write_json(run_dir / "preds.json", [p.to_dict() for p in predictions])
    write_all_preds(run_dir / "all_preds.jsonl", predictions)
    return predictions


# ---------------------------------------------------------------------------------------------------------------------
# grading


@dataclass
class InstanceReport:
    """One instance's outcome, in the official harness's ``report.json`` terms (plus the reason and the log)."""

    instance_id: str
    patch_is_None: bool  # noqa: N815 - the harness's key
    patch_exists: bool
    patch_successfully_applied: bool
    resolved: bool
    tests_status: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    reason: str = ""
    error: bool = False
    log_path: str | None = None
    seconds: float = 0.0

    def harness_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"patch_is_None": self.patch_is_None, "patch_exists": self.patch_exists,
                               "patch_successfully_applied": self.patch_successfully_applied,
                               "resolved": self.resolved}
        if self.tests_status:
            out["tests_status"] = self.tests_status
        return out


def tests_status(fail_to_pass: dict[str, str], pass_to_pass: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """The harness's ``tests_status``: per set, which tests succeeded and which failed (a skipped test in neither)."""
    from expagent.tasks.logparse import FAILING, MISSING, PASSING

    def split(statuses: dict[str, str]) -> dict[str, list[str]]:
        return {"success": [n for n, s in statuses.items() if s in PASSING],
                "failure": [n for n, s in statuses.items() if s in FAILING or s == MISSING]}

    empty = {"success": [], "failure": []}
    return {"FAIL_TO_PASS": split(fail_to_pass), "PASS_TO_PASS": split(pass_to_pass),
            "FAIL_TO_FAIL": dict(empty), "PASS_TO_FAIL": dict(empty)}


Grade = Callable[..., Any]


def grade_prediction(task, prediction: Prediction, out: Path, grade: Grade, **grade_options) -> InstanceReport:
    started = time.monotonic()
    patch = prediction.model_patch
    if patch is None or not patch.strip():
        return InstanceReport(instance_id=task.instance_id, patch_is_None=patch is None, patch_exists=False,
                              patch_successfully_applied=False, resolved=False,
                              reason="empty patch: not run (as in the harness)")
    try:
        result = grade(task, patch, log_dir=out / task.instance_id, **grade_options)
    except ExpagentError as exc:
        return InstanceReport(instance_id=task.instance_id, patch_is_None=False, patch_exists=True,
                              patch_successfully_applied=False, resolved=False, reason=f"error: {exc}", error=True,
                              seconds=round(time.monotonic() - started, 3))
    status = tests_status(result.fail_to_pass, result.pass_to_pass) if result.patch_applied else {}
    return InstanceReport(instance_id=task.instance_id, patch_is_None=False, patch_exists=True,
                          patch_successfully_applied=result.patch_applied, resolved=result.resolved,
                          tests_status=status, reason=result.reason, log_path=result.log_path,
                          seconds=round(time.monotonic() - started, 3))


@dataclass
class EvaluationSummary:
    suite: str
    total_instances: int
    reports: list[InstanceReport]
    out: Path

    @property
    def error_ids(self) -> list[str]:
        return [r.instance_id for r in self.reports if r.error]

    def to_dict(self) -> dict[str, Any]:
        reports = self.reports
        ran = [r for r in reports if r.patch_exists and not r.error]
        return {
            "suite": self.suite,
            "total_instances": self.total_instances,
            "submitted_instances": len(reports),
            "completed_instances": len(ran),
            "resolved_instances": sum(r.resolved for r in reports),
            "unresolved_instances": sum(not r.resolved for r in ran),
            "empty_patch_instances": sum(not r.patch_exists for r in reports),
            "error_instances": len(self.error_ids),
            "completed_ids": sorted(r.instance_id for r in ran),
            "resolved_ids": sorted(r.instance_id for r in reports if r.resolved),
            "unresolved_ids": sorted(r.instance_id for r in ran if not r.resolved),
            "empty_patch_ids": sorted(r.instance_id for r in reports if not r.patch_exists),
            "error_ids": sorted(self.error_ids),
            "reasons": {r.instance_id: r.reason for r in reports if not r.resolved and r.reason},
        }


def evaluate_predictions(
    suite,
    predictions: list[Prediction],
    out: str | Path,
    *,
    workers: int = 1,
    grade: Grade | None = None,
    on_report: Callable[[InstanceReport], None] | None = None,
    **grade_options,
) -> EvaluationSummary:
    """Grade every prediction (``workers`` at a time) and write the per-instance and summary reports under ``out``.

    ``grade_options`` go to ``grade`` (``sandbox_kind``, ``repos_dir``, ``settings``, ``timeout``).
    """
    if grade is None:
        from expagent.tasks.grader import grade
    if workers < 1:
        raise PredictionsError(f"--workers must be at least 1 (got {workers})")
    check_against_suite(predictions, suite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def one(prediction: Prediction) -> InstanceReport:
        task = suite.task(prediction.instance_id)
        report = grade_prediction(task, prediction, out, grade, **grade_options)
        atomic_write_json(out / task.instance_id / "report.json", {task.instance_id: report.harness_dict()})
        if on_report:
            on_report(report)
        return report

    if workers == 1:
        reports = [one(p) for p in predictions]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reports = list(pool.map(one, predictions))
    summary = EvaluationSummary(suite=suite.name, total_instances=len(suite.tasks), reports=reports, out=out)
    atomic_write_json(out / "report.json", summary.to_dict())
    return summary
