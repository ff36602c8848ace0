"""Memory maintenance, only ever on request: consolidation of near-duplicate lessons, pruning, undo.

Consolidation merges a cluster of near-duplicate active lessons (same scope) into one new lesson
written by the LLM. Nothing is overwritten: the members are retired (``merged into <new id>``) and
keep their ids, text and evidence; the new lesson lists them in ``provenance.merged_from`` and
inherits their evidence. Episodes are never touched.

Each merge is one memory op (``MemoryStore.transaction``): the new lesson and every member's retirement are
journaled together, applied, and committed together, so a reader never sees the merged lesson next to active
members, and a merge interrupted by a kill is rolled forward by the next writer. A dry run writes nothing.
"""

from __future__ import annotations

from typing import Any, Callable

from expagent.errors import ExpagentError

CLUSTER_THRESHOLD = 0.85
PROMPT_VERSION = "consolidate-v1"


def _lesson_text(lesson) -> str:
    return f"{lesson.applies_when}\n{lesson.advice}"


def lesson_clusters(store, repo: str | None = None, threshold: float = CLUSTER_THRESHOLD) -> list[list]:
    """Groups of two or more active lessons of one scope whose texts are near-duplicates."""
    lessons = [l for l in store.list(kind="lesson", status="active") if repo is None or l.scope == repo]
    seen: set[str] = set()
    clusters = []
    for lesson in sorted(lessons, key=lambda l: l.created_at):
        if lesson.id in seen:
            continue
        similar = store.find_similar_lessons(_lesson_text(lesson), threshold=threshold, scope=lesson.scope)
        members = [lesson] + [other for other, _ in similar if other.id != lesson.id and other.id not in seen]
        if len(members) >= 2:
            clusters.append(members)
            seen.update(m.id for m in members)
    return clusters


def _merged_text(model, members: list) -> dict[str, str]:
    from expagent.agent.prompting import render
    from expagent.models.json_reply import JSONReplyError, ask_json

    def merged(data: dict[str, Any]) -> dict[str, str]:
        if not str(data.get("advice") or "").strip():
            raise ValueError("no 'advice'")
        return {"applies_when": str(data.get("applies_when") or "").strip(), "advice": str(data["advice"]).strip()}

    try:
        return ask_json(model, [{"role": "user", "content": render("consolidate.j2", lessons=members)}], merged,
                        correction='Reply with the JSON object only: {"applies_when": ..., "advice": ...}')
    except JSONReplyError:
        raise ExpagentError("the model did not return a usable merged lesson twice; nothing was changed") from None


def _apply_merge(store, new, members: list[str], actor: str) -> None:
    """One merge as one op: add the new lesson, retire every member still active."""
    with store.transaction(actor):
        store.add_lesson(new, actor)
        for member_id in members:
            if store.get(member_id).status == "active":
                store.retire(member_id, actor, f"merged into {new.id}")


def consolidate(store, model, *, repo: str | None = None, dry_run: bool = False,
                threshold: float = CLUSTER_THRESHOLD, actor: str = "expagent memory consolidate",
                notice: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Merge near-duplicate lesson clusters; returns one entry per cluster (what was, or would be, merged)."""
    from expagent.memory.records import Lesson

    notice = notice or (lambda _m: None)
    results = []
    for members in lesson_clusters(store, repo, threshold):
        entry = {"members": [m.id for m in members], "scope": members[0].scope}
        if dry_run:
            results.append(entry)
            continue
        if model is None:
            raise ExpagentError("consolidation needs an LLM: set --model/EXPAGENT_MODEL or distill_model")
        text = _merged_text(model, members)
        kinds = {m.lesson_kind for m in members}
        evidence = list(dict.fromkeys(e for m in members for e in m.source_episodes))
        new = Lesson(applies_when=text["applies_when"], advice=text["advice"],
                     lesson_kind=kinds.pop() if len(kinds) == 1 else "contrast", scope=members[0].scope,
                     source_episodes=evidence, version=max(m.version for m in members) + 1,
                     supersedes=members[0].id,
                     provenance={"source": "consolidation", "merged_from": entry["members"],
                                 "model": getattr(model, "name", None), "prompt_version": PROMPT_VERSION})
        _apply_merge(store, new, entry["members"], actor)
        entry["merged_into"] = new.id
        results.append(entry)
        notice(f"merged {', '.join(entry['members'])} into {new.id}")
    return results


def undo_merge(store, record_id: str, actor: str = "expagent memory restore") -> list[str]:
    """Undo the consolidation that ``record_id`` took part in (as the merged lesson or as a member).

    Restores every member and retires the merged lesson. Returns the ids restored; [] when
    ``record_id`` has nothing to do with a consolidation.
    """
    record = store.get(record_id)
    if getattr(record, "kind", "") != "lesson":
        return []
    merged = record
    reason = record.retired_reason or ""
    if not record.provenance.get("merged_from") and reason.startswith("merged into "):
        merged = store.get(reason.removeprefix("merged into ").strip())
    members = merged.provenance.get("merged_from") or []
    if not members:
        return []
    restored = []
    with store.transaction(actor):
        for member_id in members:
            if store.exists(member_id) and store.get(member_id).status == "retired":
                store.restore(member_id, actor)
                restored.append(member_id)
        if merged.status == "active":
            store.retire(merged.id, actor, "consolidation undone")
    return restored


def prune_candidates(store, *, min_uses: int = 3, max_usefulness: float = 0.34) -> list[dict[str, Any]]:
    """Active lessons injected at least ``min_uses`` times whose (smoothed) usefulness is at most the bound."""
    out = []
    for lesson in store.list(kind="lesson", status="active"):
        uses = lesson.injected_resolved + lesson.injected_unresolved
        if uses >= min_uses and lesson.usefulness <= max_usefulness:
            out.append({"id": lesson.id, "uses": uses, "helped": lesson.injected_resolved,
                        "usefulness": round(lesson.usefulness, 3), "advice": lesson.advice})
    return out


def prune(store, *, min_uses: int = 3, max_usefulness: float = 0.34, dry_run: bool = False,
          actor: str = "expagent memory prune") -> list[dict[str, Any]]:
    """Retire (never delete) lessons that were used often and rarely helped."""
    candidates = prune_candidates(store, min_uses=min_uses, max_usefulness=max_usefulness)
    if not dry_run and candidates:
        with store.transaction(actor):
            for item in candidates:
                store.retire(item["id"], actor, f"pruned: injected {item['uses']} times, helped {item['helped']}")
    return candidates
