"""Remembering a finished run: an immutable episode, a few lessons (ADD-only), usefulness updates."""

from __future__ import annotations

import hashlib
from typing import Any, Callable

#: a new lesson this similar (cosine) to an existing one adds evidence to it instead of a new item
DUPLICATE_THRESHOLD = 0.9


def make_distiller(settings):
    """The model that distills runs, or None (summaries from facts only, no lessons)."""
    from expagent.config import replace
    from expagent.models import make_model
    from expagent.models.factory import is_offline

    name = settings.distill_model
    if name and name.strip().lower() == "none":
        return None
    if not name:
        if is_offline(settings.model):
            # a scripted agent's replies are meant for the agent; never feed them to distillation
            return None
        name = settings.model
    return make_model(replace(settings, model=name))


def _episode_id(key: str) -> str:
    return "ep-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _contrast_text(store, repo_name: str, instance_id: str | None) -> str:
    """What an earlier failed attempt at the same task did, for a failure->fix contrast."""
    if not instance_id:
        return ""
    earlier = [e for e in store.list(kind="episode", repo=repo_name)
               if getattr(e, "instance_id", None) == instance_id and e.outcome == "unresolved"]
    if not earlier:
        return ""
    episode = sorted(earlier, key=lambda e: e.created_at)[-1]
    s = episode.summary
    return (f"Where it looked: {s.fault_location or ', '.join(episode.files)}\nWhat it changed: {s.change}\n"
            f"Why it failed: {s.verification}\nIts patch:\n{episode.patch[:2000]}")


def remember_run(outcome, settings, context, *, store, verdict: dict[str, Any], distiller=None,
                 repo_name: str | None = None, instance_id: str | None = None, created_at: str | None = None,
                 episode_key: str | None = None, actor: str = "expagent",
                 notice: Callable[[str], None] | None = None) -> list[str]:
    """Store the run as an episode (+ lessons) and update the usefulness of what it was given.

    Idempotent for a given ``episode_key``: a second call (e.g. a resumed replay) writes nothing.
    Returns the ids written.
    """
    from expagent.codeintel.patchkeys import files_and_symbols_from_patch
    from expagent.experience.distill import PROMPT_VERSION, distill
    from expagent.memory.records import Episode, Lesson, now_iso

    notice = notice or (lambda _m: None)
    if store is None:
        return []
    trajectory = outcome.trajectory
    repo_name = repo_name or context.repo_name or "unknown/repo"
    episode_id = _episode_id(episode_key) if episode_key else ""
    if episode_id and store.exists(episode_id):
        notice(f"already remembered ({episode_id}); nothing written")
        return []
    patch = outcome.result.patch or ""
    files, symbols = files_and_symbols_from_patch(patch) if patch.strip() else ([], [])
    result_verdict = verdict.get("verdict", "unknown")
    want_lessons = result_verdict in ("resolved", "unresolved") or settings.lessons_from_unknown
    contrast = _contrast_text(store, repo_name, instance_id) if result_verdict == "resolved" else ""
    distilled = distill(trajectory, verdict, files, symbols, model=distiller, instance_id=instance_id,
                        want_lessons=want_lessons, contrast=contrast, notice=notice)
    totals = trajectory.get("totals") or {}
    when = created_at or now_iso()
    established = verdict.get("method") in ("tests", "grader") and result_verdict != "unknown"
    episode = Episode(
        repo=repo_name, issue=trajectory["issue"]["text"], base_commit=(trajectory.get("repo") or {}).get("base_commit", ""),
        instance_id=instance_id, summary=distilled.summary, files=files, symbols=symbols, patch=patch,
        outcome=result_verdict if result_verdict in ("resolved", "unresolved") else "unknown",
        outcome_source="tests" if established else "unknown",
        steps=totals.get("steps"), tokens=(totals.get("prompt_tokens") or 0) + (totals.get("completion_tokens") or 0),
        cost=totals.get("cost"), model=(trajectory.get("model") or {}).get("name"), created_at=when,
        started_at=trajectory.get("started_at"), finished_at=trajectory.get("updated_at"),
        trajectory_path=str(outcome.trajectory_path),
        provenance={"source": "run", "run_id": trajectory.get("run_id"), "verdict_method": verdict.get("method"),
                    "verdict_reason": verdict.get("reason", ""), "distilled_by": distilled.model,
                    "prompt_version": PROMPT_VERSION, "episode_key": episode_key},
        id=episode_id,
    )
    store.add_episode(episode, actor)
    written = [episode.id]
    if distilled.note:
        notice(distilled.note)
    for item in distilled.lessons:
        scope = repo_name if item["scope"] == "repo" else "general"
        text = f"{item['applies_when']}\n{item['advice']}"
        similar = store.find_similar_lessons(text, threshold=DUPLICATE_THRESHOLD, scope=scope)
        if similar:
            store.add_evidence(similar[0][0].id, episode.id, actor)
            notice(f"lesson adds evidence to {similar[0][0].id} (similarity {similar[0][1]:.2f})")
            continue
        lesson = Lesson(applies_when=item["applies_when"], advice=item["advice"], lesson_kind=item["kind"],
                        scope=scope, source_episodes=[episode.id], created_at=when,
                        provenance={"source": "distillation", "episode": episode.id, "model": distilled.model,
                                    "prompt_version": PROMPT_VERSION})
        store.add_lesson(lesson, actor)
        written.append(lesson.id)
    used = list(dict.fromkeys([*(trajectory.get("memory") or {}).get("injected", []),
                               *(trajectory.get("memory") or {}).get("recalled", [])]))
    used = [i for i in used if store.exists(i)]  # an item deleted meanwhile has nothing left to count
    if used:
        resolved = {"resolved": True, "unresolved": False}.get(result_verdict)
        store.record_usage(used, resolved, actor)
    return written
