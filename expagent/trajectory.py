"""Trajectories: the versioned JSON record of one agent run, rewritten atomically after every step.

Shape (version 1)::

    {
      "format": "expagent-trajectory", "version": 1,
      "run_id": str, "created_at": ISO time, "updated_at": ISO time,
      "issue": {"text": str, "source": str},
      "repo": {"path": str, "base_commit": str},
      "sandbox": str, "protocol": "native" | "text",
      "model": {"name": str},
      "config": {...settings, no secrets...},
      "memory": {"mode": str, "injected": [ids], "recalled": [ids]},
      "messages": [{"role", "content", ("tool_calls"|"tool_call_id"), "t": seconds since start}],
      "steps": [{"index", "started", "duration",
                 "reply": {"content", "tool_calls": [{"id", "name", "raw_arguments"}],
                           "prompt_tokens", "completion_tokens", "cost", "latency"},
                 "actions": [{"tool", "arguments", "output", "exit_code", "duration", "error"}]}],
      "exit_status": str | null, "patch": str, "totals": {...}, "outcome": {...} | null
    }
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from expagent.errors import ExpagentError
from expagent.fsutil import atomic_write_text
from expagent.redact import redact_data

FORMAT = "expagent-trajectory"
VERSION = 1


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class TrajectoryWriter:
    """Accumulates a run and saves it after every change, so a crash loses at most one step."""

    def __init__(self, path: str | Path, header: dict[str, Any]):
        self.path = Path(path)
        self.data: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": now_iso(),
            "updated_at": now_iso(),
            "memory": {"mode": "off", "injected": [], "recalled": []},
            "messages": [],
            "steps": [],
            "exit_status": None,
            "patch": "",
            "totals": {},
            "outcome": None,
            **header,
        }

    def add_message(self, message: dict[str, Any], t: float) -> None:
        self.data["messages"].append({**message, "t": round(t, 4)})

    def add_step(self, step: dict[str, Any]) -> None:
        self.data["steps"].append(step)

    def record_memory(self, injected: list[str] | None = None, recalled: list[str] | None = None) -> None:
        memory = self.data["memory"]
        for key, ids in (("injected", injected), ("recalled", recalled)):
            for item in ids or []:
                if item not in memory[key]:
                    memory[key].append(item)

    def update(self, **fields: Any) -> None:
        self.data.update(fields)

    def save(self, final: bool = False) -> None:
        self.data["updated_at"] = now_iso()
        # compact JSON: the C encoder is ~10x faster than the indenting one, and this runs every step
        text = json.dumps(redact_data(self.data), ensure_ascii=False, default=str)
        atomic_write_text(self.path, text + "\n", durable=final)


def load_trajectory(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExpagentError(f"no trajectory at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpagentError(f"cannot read trajectory {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ExpagentError(f"{path} is not a trajectory (invalid JSON at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExpagentError(f"{path} is not an expagent trajectory")
    if data.get("version") != VERSION:
        raise ExpagentError(f"{path} has trajectory version {data.get('version')}; this expagent reads version {VERSION}")
    return data


def resolve_trajectory_path(path: str | Path) -> Path:
    """Accept a trajectory file or a run directory holding ``trajectory.json``."""
    path = Path(path)
    if path.is_dir():
        return path / "trajectory.json"
    return path
