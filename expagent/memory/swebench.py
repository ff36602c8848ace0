"""Seed memory from history without an LLM: SWE-bench-format records become reference-fix episodes.

Each JSONL line needs ``repo``, ``instance_id``, ``base_commit``, ``problem_statement`` and ``patch``
(``created_at`` is optional: the episode's time, so replays with ``--before`` see only earlier fixes; without it
the import time is used). Files and symbols come from the patch (``expagent.codeintel.patchkeys``). The summary's
fault location is the files and symbols the fix changed; the other summary fields stay empty because nothing
here can know them without reading the code.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from expagent.memory.jsonl import read_jsonl
from expagent.memory.records import Episode, RecordError, RepairSummary, now_iso, parse_time
from expagent.memory.staleness import anchors_from_patch

_REQUIRED = ("repo", "instance_id", "base_commit", "problem_statement", "patch")


def files_and_symbols(patch: str) -> tuple[list[str], list[str]]:
    from expagent.codeintel.patchkeys import files_and_symbols_from_patch

    return files_and_symbols_from_patch(patch)


def episode_from_swebench(row: dict[str, Any], source: str = "", line_no: int | None = None,
                          actor: str = "import-swebench") -> Episode:
    for name in _REQUIRED:
        if not isinstance(row.get(name), str) or (name != "base_commit" and not row[name].strip()):
            raise RecordError(f"field '{name}' is required and must be text")
    created = row.get("created_at")
    if created:
        ts = parse_time(created, "created_at")
        created_iso = datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
    else:
        created_iso = now_iso()
    files, symbols = files_and_symbols(row["patch"])
    location = ", ".join(files)
    if symbols:
        location += " (" + ", ".join(symbols[:8]) + ")"
    provenance: dict[str, Any] = {"source": "swebench-import", "actor": actor}
    if source:
        provenance["file"] = source
    if line_no is not None:
        provenance["line"] = line_no
    return Episode(
        repo=row["repo"],
        issue=row["problem_statement"],
        base_commit=row["base_commit"],
        instance_id=row["instance_id"],
        summary=RepairSummary(fault_location=location, verification="reference fix from the project's history"),
        files=files,
        symbols=symbols,
        patch=row["patch"],
        outcome="resolved",
        outcome_source="reference_fix",
        created_at=created_iso,
        provenance=provenance,
        anchors=anchors_from_patch(row["patch"], row["base_commit"]),
    )


def read_swebench(path: Path | str, skip_bad: bool = False) -> tuple[list[Episode], list[str]]:
    """Episodes from a SWE-bench JSONL file (see :func:`jsonl.read_jsonl` for bad-line handling)."""
    source = str(Path(path).resolve())
    return read_jsonl(path, lambda row, n: episode_from_swebench(row, source, n), skip_bad=skip_bad)


def import_swebench(store: Any, path: Path | str, actor: str = "import-swebench", skip_bad: bool = False
                    ) -> tuple[list[str], int, list[str]]:
    """Import a SWE-bench JSONL file: returns (ids added, number already present, problems skipped)."""
    episodes, problems = read_swebench(path, skip_bad=skip_bad)
    # the same instance twice in one file: keep the first (ids are content hashes, so exact repeats coincide)
    unique = list({e.id: e for e in reversed(episodes)}.values())[::-1]
    added = store.add_records(unique, actor)
    return added, len(unique) - len(added), problems
