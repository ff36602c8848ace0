"""What a run is given before it starts: retrieved experience, the repo map, and extra tools."""

from __future__ import annotations

import subprocess
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
    from expagent.memory.store import MemoryStore

    return MemoryStore.open(home=home, chroma_url=settings.chroma_url, embedding=settings.embedding_model)


def repo_name_of(repo: Path) -> str:
    """``owner/name`` from the origin remote when there is one, else the directory's name."""
    proc = subprocess.run(["git", "-C", str(repo), "remote", "get-url", "origin"], capture_output=True, text=True)
    url = proc.stdout.strip()
    if proc.returncode == 0 and url:
        tail = url.rstrip("/").removesuffix(".git").replace(":", "/").split("/")
        if len(tail) >= 2 and tail[-1]:
            return f"{tail[-2]}/{tail[-1]}"
    return repo.resolve().name


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


def prepare_context(issue: str, repo: Path, settings, *, store=None, repo_name: str | None = None,
                    instance_id: str | None = None, before: str | None = None, build_map: bool = True,
                    notice: Callable[[str], None] | None = None) -> RunContext:
    """Retrieve experience for ``issue`` (possibly nothing), build the repo map, and list the extra tools."""
    from expagent.codeintel.agent_tools import run_repo_map, tool_factories

    repo_name = repo_name or repo_name_of(repo)
    context = RunContext(repo_name=repo_name)
    if build_map and settings.repo_map:
        context.repo_map = run_repo_map(repo, issue, settings.repo_map_tokens, notice)
    context.tools = list(tool_factories(repo))
    if store is not None and settings.memory != "off":
        keys = _issue_keys(issue, repo) if build_map else None
        context.hits = retrieve_for(store, issue, settings, repo_name=repo_name, instance_id=instance_id,
                                    before=before, keys=keys, checkout=repo if build_map else None)
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


def _issue_keys(issue: str, repo: Path) -> dict | None:
    """Files and symbols the issue likely touches, resolved against the repository (a retrieval key)."""
    try:
        from expagent.codeintel.issuekeys import likely_keys_from_issue

        return likely_keys_from_issue(issue, repo)
    except Exception:  # keys only sharpen retrieval; without them it still works on the text
        return None
