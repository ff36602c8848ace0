"""``expagent memory learn-git``: warm a repository's memory with the fixes in its own history.

Likely fix commits (``history.find_fix_commits``) are turned into SWE-bench-shaped records and stored through
the memory package's importer for such records, as reference-fix episodes: the same path as
``expagent memory import-swebench``, so they are keyed by the files and symbols their patches change.
"""

from __future__ import annotations

import os
from typing import Any

ACTOR = "learn-git"


def learn_git(root: str | os.PathLike, since: str | None = None, max_count: int | None = None,
              dry_run: bool = False, store: Any = None, store_options: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """Find fix commits and (unless ``dry_run``) store them; returns what was found, added and already present.

    ``store`` is an open ``MemoryStore``; without one, the memory is opened (and closed) with ``store_options``
    (``home``, ``chroma_url``, ``embedding``; unset ones come from the settings of the repository).
    """
    from expagent.codeintel.history import find_fix_commits, open_repo, shallow_note

    repo = open_repo(root)
    records = find_fix_commits(root, since=since, max_count=max_count)
    result: dict[str, Any] = {"found": len(records), "added": 0, "already_present": 0, "dry_run": dry_run,
                              "shallow_note": shallow_note(repo), "records": records}
    if dry_run or not records:
        return result
    from expagent.memory.swebench import episode_from_swebench

    episodes = [episode_from_swebench(r, source=f"git:{repo.working_tree_dir}", actor=ACTOR) for r in records]
    own_store = store is None
    if own_store:
        store = _open_store(repo.working_tree_dir, **(store_options or {}))
    try:
        added = store.add_records(episodes, ACTOR)
    finally:
        if own_store:
            store.close()
    result["added"] = len(added)
    result["already_present"] = len(episodes) - len(added)
    return result


def _open_store(repo_dir: str, home: Any = None, chroma_url: str | None = None, embedding: str | None = None) -> Any:
    from expagent.memory.opening import open_store

    return open_store(home, repo=repo_dir, chroma_url=chroma_url, embedding=embedding)
