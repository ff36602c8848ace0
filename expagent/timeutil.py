"""ISO 8601 times, read one way: a trailing ``Z`` is UTC, and so is a time that names no offset."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_iso(text: str) -> datetime:
    """``text`` (an ISO 8601 date or datetime) as an aware datetime; ValueError when it is not one."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
