"""Distillation: a finished run becomes an episode summary and a few general lessons.

The input is built from the trajectory with every piece of injected memory removed: the prompt
messages (which carry lessons and past repairs) are not used at all, and outputs of the
``recall`` tool are blanked. The gold patch of a task is never an input.

With no distillation model (``distill_model = "none"``, or a scripted/replayed main model and no
distill model set) the summary is built from the run's facts and no lessons are written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from expagent.memory.records import RepairSummary
from expagent.models.json_reply import JSONReplyError, ask_json, json_object
from expagent.redact import redact

PROMPT_VERSION = "distill-v1"
MAX_LESSONS = 3
_MAX_OUTPUT = 600
_MAX_ACTIONS = 40
_SHA = re.compile(r"\b[0-9a-f]{10,40}\b")
_ISSUE_NUMBER = re.compile(r"#\d{2,}")


@dataclass
class Distillation:
    summary: RepairSummary
    lessons: list[dict[str, str]] = field(default_factory=list)
    model: str | None = None
    note: str = ""  # why there are no lessons, when there are none


def actions_for_distillation(trajectory: dict[str, Any]) -> list[dict[str, str]]:
    """The run's actions and outputs, clipped, with memory recalls blanked out."""
    actions = []
    for step in trajectory.get("steps", []):
        for action in step.get("actions", []):
            output = action.get("output", "")
            if action.get("tool") == "recall":
                output = "[memory recall omitted]"
            if len(output) > _MAX_OUTPUT:
                output = output[: _MAX_OUTPUT // 2] + "\n…\n" + output[-_MAX_OUTPUT // 2 :]
            args = action.get("arguments")
            arg_text = json.dumps(args, ensure_ascii=False)[:400] if args else ""
            actions.append({"tool": action.get("tool", "?"), "arguments": arg_text, "output": output})
    if len(actions) > _MAX_ACTIONS:  # keep the start (exploration) and the end (fix and check)
        actions = actions[:10] + [{"tool": "…", "arguments": "", "output": f"{len(actions) - _MAX_ACTIONS} actions omitted"}] + actions[-(_MAX_ACTIONS - 10):]
    return actions


def distill_prompt(trajectory: dict[str, Any], verdict: dict[str, Any], files: list[str],
                   contrast: str = "") -> str:
    from expagent.agent.prompting import render

    patch = trajectory.get("patch", "") or ""
    return render("distill.j2", issue=trajectory["issue"]["text"].strip()[:4000],
                  verdict=verdict.get("verdict", "unknown"), verdict_detail=verdict.get("reason", ""),
                  files=files, actions=actions_for_distillation(trajectory), patch=patch[:6000],
                  contrast=contrast, max_lessons=MAX_LESSONS)


def heuristic_summary(trajectory: dict[str, Any], verdict: dict[str, Any], files: list[str],
                      symbols: list[str]) -> RepairSummary:
    """A summary from facts alone: where the patch changed code and how it was checked."""
    patch = trajectory.get("patch", "") or ""
    added = sum(1 for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in patch.splitlines() if line.startswith("-") and not line.startswith("---"))
    where = ", ".join(symbols[:5]) or ", ".join(files[:5])
    checked = verdict.get("method", "none")
    reason = verdict.get("reason", "")
    return RepairSummary(
        fault_location=where,
        root_cause="",
        change=f"changed {len(files)} file(s): +{added} -{removed} lines" if patch else "no change",
        verification=f"{checked}: {verdict.get('verdict', 'unknown')}" + (f" ({reason})" if reason else ""),
    )


def task_specific(text: str, *, instance_id: str | None, base_commit: str, files: list[str], scope: str) -> str | None:
    """Why a lesson text is tied to its task (and so useless elsewhere), or None when it is general enough."""
    if instance_id and instance_id.lower() in text.lower():
        return "names the task"
    if base_commit and base_commit[:10] in text:
        return "names the commit"
    if _SHA.search(text):
        return "contains a commit hash"
    if _ISSUE_NUMBER.search(text):
        return "names an issue number"
    if scope == "general" and any(f and f in text for f in files):
        return "a general lesson names a file of this repository"
    return None


def parse_distillation(text: str, *, instance_id: str | None, base_commit: str, files: list[str],
                       verdict: str) -> tuple[RepairSummary, list[dict[str, str]], list[str]]:
    """(summary, lessons, rejected reasons); raises ValueError when the reply is not the expected JSON."""
    data = json_object(text or "")
    if data is None:
        raise ValueError("the reply holds no JSON object")
    return _parse_object(data, instance_id=instance_id, base_commit=base_commit, files=files)


def _parse_object(data: dict[str, Any], *, instance_id: str | None, base_commit: str,
                  files: list[str]) -> tuple[RepairSummary, list[dict[str, str]], list[str]]:
    summary = data.get("summary")
    if not isinstance(summary, dict):
        raise ValueError("'summary' must be an object")
    summary = RepairSummary(**{k: str(summary.get(k) or "")[:500] for k in
                               ("fault_location", "root_cause", "change", "verification")})
    lessons_raw = data.get("lessons", [])
    if not isinstance(lessons_raw, list):
        raise ValueError("'lessons' must be a list")
    lessons, rejected = [], []
    for item in lessons_raw[:MAX_LESSONS]:
        if not isinstance(item, dict) or not str(item.get("advice") or "").strip():
            raise ValueError("each lesson needs 'advice'")
        kind = item.get("kind", "success")
        if kind not in ("success", "failure", "contrast"):
            raise ValueError(f"unknown lesson kind {kind!r}")
        scope = "general" if item.get("scope") == "general" else "repo"
        when, advice = str(item.get("applies_when") or "").strip()[:400], str(item["advice"]).strip()[:600]
        why = task_specific(f"{when}\n{advice}", instance_id=instance_id, base_commit=base_commit, files=files,
                            scope=scope)
        if why:
            rejected.append(f"lesson dropped: it {why}")
            continue
        lessons.append({"kind": kind, "scope": scope, "applies_when": when, "advice": advice})
    return summary, lessons, rejected


def distill(trajectory: dict[str, Any], verdict: dict[str, Any], files: list[str], symbols: list[str], *,
            model, instance_id: str | None, want_lessons: bool, contrast: str = "",
            notice: Callable[[str], None] | None = None) -> Distillation:
    """Summarise one run (and write lessons when ``want_lessons``) with ``model``; retry once on bad output."""
    notice = notice or (lambda _m: None)
    fallback = heuristic_summary(trajectory, verdict, files, symbols)
    if model is None:
        return Distillation(fallback, [], None, "no distillation model: summary from the run's facts, no lessons")
    prompt = redact(distill_prompt(trajectory, verdict, files, contrast))
    messages = [{"role": "user", "content": prompt}]
    base_commit = (trajectory.get("repo") or {}).get("base_commit", "")
    try:
        summary, lessons, rejected = ask_json(
            model, messages, lambda data: _parse_object(data, instance_id=instance_id, base_commit=base_commit,
                                                        files=files),
            correction="Reply with the JSON object only, exactly in the requested shape.")
    except JSONReplyError as exc:
        notice(f"distillation output malformed twice ({exc.problem}): episode stored without lessons")
        return Distillation(fallback, [], model.name, f"malformed distillation output: {exc.problem}")
    for reason in rejected:
        notice(reason)
    return Distillation(summary, lessons if want_lessons else [], model.name)
