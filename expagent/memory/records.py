"""The two kinds of memory record: episodes (what happened) and lessons (what to do next time).

Both are plain dataclasses that round-trip exactly through ``to_dict`` / ``from_dict`` (and so through JSON).
Every record carries a stable ``id``, a ``schema_version`` and a ``provenance`` dict saying where it came from
(``source``: "run" | "swebench-import" | "import" | "manual" | ..., ``actor``, and whatever else locates it:
a file and line, a run id, a trajectory path).

* An :class:`Episode` is evidence and is **immutable** once written: the store never updates it.
  Its id is a hash of what identifies the repair (repo, base commit, instance id, patch, issue), so importing
  the same history twice yields the same ids instead of duplicates.
* A :class:`Lesson` is advice distilled from episodes. Lessons are never rewritten in place: a new version is
  added (``supersedes`` the old id) and the old one is retired, so every piece of advice keeps its history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Literal

from expagent.errors import ExpagentError
from expagent.timeutil import parse_iso

SCHEMA_VERSION = 1
#: episodes keep the patch as evidence, but a runaway diff must not bloat the store
MAX_PATCH_CHARS = 20_000
#: the issue text is kept whole up to this size (issues with pasted logs can be huge)
MAX_ISSUE_CHARS = 20_000

Outcome = Literal["resolved", "unresolved", "unknown"]
OutcomeSource = Literal["tests", "reference_fix", "unknown"]
LessonKind = Literal["success", "failure", "contrast"]
Status = Literal["active", "retired"]

_OUTCOMES = ("resolved", "unresolved", "unknown")
_OUTCOME_SOURCES = ("tests", "reference_fix", "unknown")
_LESSON_KINDS = ("success", "failure", "contrast")
_STATUSES = ("active", "retired")


class RecordError(ExpagentError):
    """A record that does not satisfy the schema."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_time(value: str | float | int | datetime | None, what: str = "time") -> float | None:
    """A timestamp (seconds since the epoch, UTC) from an ISO string, a datetime or a number; None stays None.

    Naive ISO strings are taken as UTC so that replays on different machines agree.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"{what}: expected an ISO date/time, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)).timestamp()
    try:
        return parse_iso(str(value)).timestamp()
    except ValueError:
        raise RecordError(f"{what}: not an ISO date/time: {value!r}") from None


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def bound_patch(patch: str) -> tuple[str, bool]:
    """The patch cut to ``MAX_PATCH_CHARS`` (at a line boundary) and whether it was cut."""
    if len(patch) <= MAX_PATCH_CHARS:
        return patch, False
    cut = patch.rfind("\n", 0, MAX_PATCH_CHARS)
    return patch[: cut + 1 if cut > 0 else MAX_PATCH_CHARS], True


@dataclass
class RepairSummary:
    """A compact account of a repair: where the fault was, why, what changed, how it was verified."""

    fault_location: str = ""
    root_cause: str = ""
    change: str = ""
    verification: str = ""


@dataclass
class Anchor:
    """What a record is about, as it was where it was learned: a file and the symbols in it (qualified names),
    at ``commit``. Retrieval checks anchors against the new task's checkout (``expagent.memory.staleness``)."""

    path: str
    symbols: list[str] = field(default_factory=list)
    commit: str = ""


def _anchors(values: Any) -> list[Anchor]:
    return [a if isinstance(a, Anchor) else Anchor(**a) for a in values or []]


@dataclass
class Episode:
    """One repair attempt (or a reference fix imported from history), kept verbatim as evidence."""

    repo: str
    issue: str
    base_commit: str = ""
    instance_id: str | None = None
    summary: RepairSummary = field(default_factory=RepairSummary)
    files: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    patch: str = ""
    patch_truncated: bool = False
    outcome: Outcome = "unknown"
    outcome_source: OutcomeSource = "unknown"
    steps: int | None = None
    tokens: int | None = None
    cost: float | None = None
    model: str | None = None
    created_at: str = field(default_factory=now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    trajectory_path: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    anchors: list[Anchor] = field(default_factory=list)
    id: str = ""
    schema_version: int = SCHEMA_VERSION
    kind: Literal["episode"] = "episode"

    def __post_init__(self) -> None:
        if isinstance(self.summary, dict):
            self.summary = RepairSummary(**self.summary)
        self.anchors = _anchors(self.anchors)
        if not self.patch_truncated:
            self.patch, self.patch_truncated = bound_patch(self.patch or "")
        if len(self.issue or "") > MAX_ISSUE_CHARS:
            self.issue = self.issue[:MAX_ISSUE_CHARS]
        if not self.id:
            self.id = "ep-" + _digest(self.repo, self.base_commit, self.instance_id, self.patch, self.issue)
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Lesson:
    """Advice for a situation, with the episodes it was learned from and how useful it turned out."""

    applies_when: str
    advice: str
    lesson_kind: LessonKind = "success"
    scope: str = "general"  # a repo name ("owner/name") or "general"
    source_episodes: list[str] = field(default_factory=list)
    times_retrieved: int = 0
    injected_resolved: int = 0
    injected_unresolved: int = 0
    status: Status = "active"
    version: int = 1
    supersedes: str | None = None
    superseded_by: str | None = None
    retired_reason: str | None = None
    created_at: str = field(default_factory=now_iso)
    provenance: dict[str, Any] = field(default_factory=dict)
    anchors: list[Anchor] = field(default_factory=list)
    id: str = ""
    schema_version: int = SCHEMA_VERSION
    kind: Literal["lesson"] = "lesson"

    def __post_init__(self) -> None:
        self.anchors = _anchors(self.anchors)
        if not self.id:
            self.id = "ls-" + _digest(self.applies_when, self.advice, self.scope, self.lesson_kind, self.version,
                                      self.created_at, self.supersedes)
        validate(self)

    @property
    def repo(self) -> str:
        """The repo a repo-scoped lesson belongs to; "" for a general lesson."""
        return "" if self.scope == "general" else self.scope

    @property
    def usefulness(self) -> float:
        return usefulness(self.injected_resolved, self.injected_unresolved)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Record = Episode | Lesson


def usefulness(resolved: int, unresolved: int) -> float:
    """How often injecting an item went with a resolved run, smoothed towards 0.5 (Laplace) so that one lucky
    or unlucky run does not decide an item's fate."""
    return (resolved + 1) / (resolved + unresolved + 2)


def validate(record: Record) -> None:
    where = f"{record.kind} {record.id or '?'}"
    if record.schema_version != SCHEMA_VERSION:
        raise RecordError(f"{where}: schema_version {record.schema_version} is not supported (expected {SCHEMA_VERSION})")
    parse_time(record.created_at, f"{where}: created_at")
    if not isinstance(record.provenance, dict):
        raise RecordError(f"{where}: provenance must be an object")
    if isinstance(record, Episode):
        if not record.repo or not isinstance(record.repo, str):
            raise RecordError(f"{where}: repo is required")
        if not isinstance(record.issue, str):
            raise RecordError(f"{where}: issue must be text")
        if record.outcome not in _OUTCOMES:
            raise RecordError(f"{where}: outcome must be one of {', '.join(_OUTCOMES)}")
        if record.outcome_source not in _OUTCOME_SOURCES:
            raise RecordError(f"{where}: outcome_source must be one of {', '.join(_OUTCOME_SOURCES)}")
        for name in ("files", "symbols"):
            value = getattr(record, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RecordError(f"{where}: {name} must be a list of strings")
    else:
        if not (record.advice or "").strip():
            raise RecordError(f"{where}: advice is required")
        if record.lesson_kind not in _LESSON_KINDS:
            raise RecordError(f"{where}: lesson_kind must be one of {', '.join(_LESSON_KINDS)}")
        if record.status not in _STATUSES:
            raise RecordError(f"{where}: status must be one of {', '.join(_STATUSES)}")
        if not isinstance(record.source_episodes, list):
            raise RecordError(f"{where}: source_episodes must be a list of ids")
        if not record.scope:
            raise RecordError(f"{where}: scope is required (a repo or 'general')")


def record_from_dict(data: dict[str, Any]) -> Record:
    """Rebuild a record from ``to_dict`` output; unknown or missing required fields are a RecordError."""
    if not isinstance(data, dict):
        raise RecordError("a record must be a JSON object")
    kind = data.get("kind")
    cls = {"episode": Episode, "lesson": Lesson}.get(kind)
    if cls is None:
        raise RecordError(f"unknown record kind {kind!r} (expected 'episode' or 'lesson')")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecordError(f"{kind} {data.get('id', '?')}: unknown field(s) {', '.join(unknown)}")
    values = dict(data)
    if cls is Episode and isinstance(values.get("summary"), dict):
        values["summary"] = RepairSummary(**values["summary"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise RecordError(f"{kind} {data.get('id', '?')}: {exc}") from None


def record_text(record: Record) -> str:
    """The text that is embedded and indexed for a record: what a future issue would resemble."""
    if isinstance(record, Episode):
        s = record.summary
        parts = [record.issue, s.fault_location, s.root_cause, s.change]
        return "\n".join(p for p in parts if p)
    return f"{record.applies_when}\n{record.advice}"
