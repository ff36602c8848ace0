"""Code intelligence for a run: the map injected before it, and the agent's tools during it.

``run_repo_map`` is what ``prepare_context`` puts in the prompt (setting ``repo_map``/``repo_map_tokens``);
``tool_factories`` gives ``RunRequest.extra_tools`` entries (``Callable[[Sandbox], Tool]``) wrapping the plain
functions of ``expagent.codeintel.tools``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def run_repo_map(repo: str | Path, issue: str, tokens: int,
                 notice: Callable[[str], None] | None = None, *, index: Any = None) -> str:
    """The repo map for the start of a run, ranked towards the issue; "" (with a notice) if it cannot be built.

    ``index``: the ``SymbolIndex`` of ``repo`` when the caller has built it (e.g. without the on-disk cache, for
    a throw-away sandbox checkout whose cache entry would never be read again)."""
    from expagent.codeintel.index import SymbolIndex
    from expagent.codeintel.repomap import build_repo_map

    try:
        index = index or SymbolIndex.build(repo)
        text = build_repo_map(index.root, focus_text=issue, token_budget=tokens, index=index)
    except Exception as exc:  # a map is a help, never a reason to fail a run
        if notice:
            notice(f"repo map skipped: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
        return ""
    if notice:
        for warning in index.stats.warnings():
            notice(f"repo map: {warning}")
    return text


def tool_factories(checkout: "str | Path | Callable[[], Path]") -> list[Callable[[Any], Any]]:
    """``repo_map``, ``history`` and ``blame`` as agent tools, one factory per tool (called with the sandbox).

    ``checkout`` is what the agent sees: a directory, or a callable giving its current state (the session passes
    the sandbox's ``CheckoutView``, so the tools see the agent's edits and never the caller's working tree).
    """
    from expagent.agent.tools import Tool, ToolResult
    from expagent.codeintel import tools

    current = checkout if callable(checkout) else (lambda: Path(checkout))

    def result(text: str) -> Any:
        return ToolResult(text, 1 if text.startswith("error:") else 0, error=text.startswith("error:"))

    def repo_map(sandbox: Any) -> Any:
        return Tool(
            "repo_map",
            "Ranked outline of the repository (files and key definitions). Give `focus` (identifiers, file "
            "names, error text) to rank towards what you are looking for.",
            {"type": "object", "properties": {
                "focus": {"type": "string", "description": "what to rank towards (optional)"},
                "tokens": {"type": "integer", "description": "size budget in tokens (default 1024)"}},
             "required": []},
            lambda _sb, args: result(tools.repo_map_tool(str(current()), str(args.get("focus") or ""),
                                                         args.get("tokens") or 1024)),
        )

    def history(sandbox: Any) -> Any:
        return Tool(
            "history",
            "Recent commits that touched a file or a symbol (Class.method): sha, date, subject, lines changed.",
            {"type": "object", "properties": {
                "target": {"type": "string", "description": "file path or symbol name"},
                "max_count": {"type": "integer", "description": "how many commits (default 10)"}},
             "required": ["target"]},
            lambda _sb, args: result(tools.history_tool(str(current()), str(args.get("target") or ""),
                                                        args.get("max_count") or 10)),
        )

    def blame(sandbox: Any) -> Any:
        return Tool(
            "blame",
            "Which commit last changed each line of a file in a line range (1-based, inclusive).",
            {"type": "object", "properties": {
                "path": {"type": "string", "description": "file path"},
                "start": {"type": "integer", "description": "first line"},
                "end": {"type": "integer", "description": "last line"}},
             "required": ["path", "start", "end"]},
            lambda _sb, args: result(tools.blame_tool(str(current()), str(args.get("path") or ""), args.get("start"),
                                                      args.get("end"))),
        )

    return [repo_map, history, blame]
