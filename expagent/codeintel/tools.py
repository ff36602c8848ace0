"""Code-intelligence tools for the agent: plain functions that return text for the model.

Bad arguments and git failures come back as a one-line ``error: ...`` text the model can act on; these
functions never raise for anything the model could have passed.
"""

from __future__ import annotations

from pathlib import Path


def _error(exc: Exception) -> str:
    text = str(exc).strip()
    return "error: " + (text.splitlines()[0] if text else exc.__class__.__name__)


def repo_map_tool(root: str, focus: str = "", tokens: int = 1024) -> str:
    """A ranked outline of the repository (files and key definitions), ranked towards ``focus``."""
    from expagent.codeintel.repomap import build_repo_map

    try:
        tokens = int(tokens)
    except (TypeError, ValueError):
        return f"error: tokens must be an integer, got {tokens!r}"
    if tokens < 64:
        return "error: tokens must be at least 64"
    if not Path(root).is_dir():
        return f"error: not a directory: {root}"
    try:
        text = build_repo_map(root, focus_text=str(focus or ""), token_budget=tokens)
    except Exception as exc:  # the model gets the reason as text, whatever failed underneath
        return _error(exc)
    return text or "error: the budget is too small for even the map's header"


def history_tool(root: str, target: str, max_count: int = 10) -> str:
    """Recent commits touching a file path or a symbol name (``Class.method``), with diff stats."""
    from expagent.codeintel.history import file_history

    if not target or not str(target).strip():
        return "error: give a file path or a symbol name"
    try:
        max_count = int(max_count)
    except (TypeError, ValueError):
        return f"error: max_count must be an integer, got {max_count!r}"
    try:
        return file_history(root, str(target).strip(), max_count=max(1, min(max_count, 50)))
    except Exception as exc:  # returned as text for the model
        return _error(exc)


def blame_tool(root: str, path: str, start: int, end: int) -> str:
    """Which commit last changed each line of ``path`` between ``start`` and ``end`` (1-based, inclusive)."""
    from expagent.codeintel.history import blame

    try:
        start, end = int(start), int(end)
    except (TypeError, ValueError):
        return f"error: start and end must be integers, got {start!r} and {end!r}"
    if end - start > 400:
        end = start + 400  # a blame longer than this floods the context; the model can ask again
    try:
        return blame(root, str(path), start, end)
    except Exception as exc:  # returned as text for the model
        return _error(exc)
