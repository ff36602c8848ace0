"""What a run is given before it starts: retrieved experience, the repo map, and extra tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from expagent.agent.prompting import Experience

#: how many past repairs (episodes) go into the task part at most
MAX_DEMONSTRATIONS = 2
MEMORY_KINDS = {"on": ("episode", "lesson"), "episodic": ("episode",), "semantic": ("lesson",), "off": ()}


@dataclass
class RunContext:
    repo_map: str = ""
    experience: Experience = field(default_factory=Experience)
    tools: list[Callable] = field(default_factory=list)
    hits: list[Any] = field(default_factory=list)  # the retrieval hits behind ``experience``
    repo_name: str | None = None


def open_memory(settings, home: Path | None = None):
    """The memory store for a run, or None when memory is off."""
    if settings.memory == "off":
        return None
    from expagent.memory.opening import open_store

    return open_store(home, settings=settings)


def repo_name_of(repo: Path) -> str:
    """``owner/name`` from the origin remote when there is one, else the directory's name."""
    from expagent.gitutil import origin_name

    return origin_name(repo) or repo.resolve().name


def lesson_item(hit) -> dict[str, str]:
    lesson = hit.record
    runs = len(lesson.source_episodes)
    source = (f"{lesson.lesson_kind} lesson v{lesson.version}, scope {lesson.scope}, "
              f"from {runs} verified run{'s' if runs != 1 else ''}")
    stale = f"{hit.stale}\n" if getattr(hit, "stale", "") else ""
    return {"id": lesson.id, "source": source, "text": f"{stale}When {lesson.applies_when.rstrip('.')}: {lesson.advice}"}


def demonstration_item(hit) -> dict[str, str]:
    from expagent.memory.retrieval import format_hit

    episode = hit.record
    source = f"{episode.repo} {episode.instance_id or ''}".strip() + f", outcome {episode.outcome} ({episode.outcome_source})"
    return {"id": episode.id, "source": source, "text": format_hit(hit)}


def experience_from_hits(hits: list) -> Experience:
    lessons = [lesson_item(h) for h in hits if h.kind == "lesson"]
    demos = [demonstration_item(h) for h in hits if h.kind == "episode"][:MAX_DEMONSTRATIONS]
    return Experience(lessons=lessons, demonstrations=demos)


def retrieve_for(store, query: str, settings, *, repo_name: str | None, instance_id: str | None,
                 before: str | None, keys: dict | None = None, k: int | None = None, checkout: Path | None = None
                 ) -> list:
    from expagent.memory.retrieval import retrieve

    kinds = MEMORY_KINDS[settings.memory]
    if store is None or not kinds:
        return []
    return retrieve(store, query, repo=repo_name, before=before, exclude_instance=instance_id,
                    k=k or settings.memory_k, kinds=kinds, keys=keys, token_budget=settings.memory_token_budget,
                    checkout=checkout)


def recall_tool_factory(store, settings, *, repo_name: str | None, instance_id: str | None, before: str | None):
    """The ``recall`` tool: the agent asks memory mid-run, e.g. with a traceback, when the issue text was not enough."""
    from expagent.agent.tools import Tool, ToolResult

    def run(_sandbox, args: dict[str, Any]) -> ToolResult:
        query = str(args.get("query") or "").strip()
        if not query:
            return ToolResult("error: give a query (an error message, a traceback, a symbol)", 1, error=True)
        hits = retrieve_for(store, query, settings, repo_name=repo_name, instance_id=instance_id, before=before, k=2)
        if not hits:
            return ToolResult("memory has nothing relevant to that query", meta={"recalled": []})
        from expagent.memory.retrieval import format_hit

        text = "\n\n".join(format_hit(h, max_patch_chars=800) for h in hits)
        header = "From memory (earlier verified runs; judge whether each applies):\n"
        return ToolResult(header + text, meta={"recalled": [h.id for h in hits]})

    def factory(_sandbox):
        return Tool("recall", "Ask memory of earlier verified repairs and lessons about a query such as an error "
                    "message, a traceback or a symbol name.",
                    {"type": "object", "properties": {"query": {"type": "string", "description": "what to look up"}},
                     "required": ["query"]}, run)

    return factory


def prepare_context(issue: str, checkout: "Path | Callable[[], Path]", settings, *, store=None,
                    repo_name: str | None = None, instance_id: str | None = None, before: str | None = None,
                    build_map: bool = True, repo_map: str | None = None,
                    notice: Callable[[str], None] | None = None) -> RunContext:
    """Retrieve experience for ``issue`` (possibly nothing), build the repo map and issue keys, list the tools.

    ``checkout`` is what the agent sees: a directory, or a callable giving its current state (a sandbox's
    ``view.CheckoutView``), never the caller's working tree. ``repo_map`` given is used as is (a recorded run's);
    ``build_map=False`` builds neither the map nor the issue keys.
    """
    from expagent.codeintel.agent_tools import run_repo_map, tool_factories

    current = checkout if callable(checkout) else (lambda: Path(checkout))
    repo_name = repo_name or repo_name_of(current())
    context = RunContext(repo_name=repo_name)
    remember = store is not None and settings.memory != "off"
    wants_map = repo_map is None and build_map and settings.repo_map
    # one index for the map and the issue keys; no on-disk cache: a sandbox's checkout is thrown away after
    index = _index(current()) if build_map and (wants_map or remember) else None
    if repo_map is not None:
        context.repo_map = repo_map
    elif wants_map:
        context.repo_map = run_repo_map(current(), issue, settings.repo_map_tokens, notice, index=index)
    context.tools = list(tool_factories(current))
    if remember:
        keys = _issue_keys(issue, index) if index is not None else None
        context.hits = retrieve_for(store, issue, settings, repo_name=repo_name, instance_id=instance_id,
                                    before=before, keys=keys, checkout=current() if build_map else None)
        context.experience = experience_from_hits(context.hits)
        context.tools.append(recall_tool_factory(store, settings, repo_name=repo_name, instance_id=instance_id,
                                                 before=before))
        if notice:
            if context.hits:
                notice(f"memory: injecting {len(context.experience.lessons)} lesson(s) and "
                       f"{len(context.experience.demonstrations)} past repair(s)")
            else:
                notice("memory: nothing relevant; the prompt carries no experience")
    return context


def _index(checkout: Path):
    try:
        from expagent.codeintel.index import SymbolIndex

        return SymbolIndex.build(checkout, use_cache=False)
    except Exception:  # the map and the keys are helps; run_repo_map says why it has none
        return None


def _issue_keys(issue: str, index) -> dict | None:
    """Files and symbols the issue likely touches, resolved against the checkout's index (a retrieval key)."""
    try:
        from expagent.codeintel.issuekeys import likely_keys_from_issue

        return likely_keys_from_issue(issue, index)
    except Exception:  # keys only sharpen retrieval; without them it still works on the text
        return None
