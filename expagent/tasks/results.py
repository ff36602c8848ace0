"""The ``results.jsonl`` row: one line per task of a replay run; ``expagent report`` reads it.

Fields (all present in every row; unknown values are ``null``):

========================  =================================================================
instance_id, repo         which task
resolved                  bool, or ``null`` when the task was not graded
exit_status               how the agent run ended ("submitted", "step_limit", "error", ...)
steps                     agent steps taken
prompt_tokens             tokens sent to the model, summed over the run
completion_tokens         tokens received
cost                      US dollars, or ``null`` when the price is unknown
wall_time                 seconds for the whole task (agent + grading)
memory_mode               "on" | "off" | "episodic" | "semantic"
injected_ids              ids of the memories given to the agent for this task
trajectory                path of the trajectory file (relative to the run dir when inside it)
patch                     path of the submitted patch file
grade_reason              why the grade is what it is ("", "patch does not apply: ...", ...)
started_at                ISO-8601 UTC time the task started
========================  =================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from expagent.errors import ExpagentError
from expagent.redact import redact_data

RESULTS_FILE = "results.jsonl"


@dataclass
class ResultRow:
    instance_id: str
    repo: str = ""
    resolved: bool | None = None
    exit_status: str = ""
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    wall_time: float = 0.0
    memory_mode: str = ""
    injected_ids: list[str] = field(default_factory=list)
    trajectory: str | None = None
    patch: str | None = None
    grade_reason: str = ""
    started_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResultRow":
        """Build a row from a dict; unknown keys are ignored so that newer files still load."""
        known = {f.name for f in fields(cls)}
        if "instance_id" not in data:
            raise ValueError("a results row needs instance_id")
        values = {k: v for k, v in data.items() if k in known}
        if values.get("injected_ids") is None:
            values["injected_ids"] = []
        return cls(**values)

    @property
    def tokens(self) -> int:
        return int(self.prompt_tokens or 0) + int(self.completion_tokens or 0)


def read_results(path: str | Path) -> list[ResultRow]:
    """Rows of ``results.jsonl`` (``path`` is the file or the run dir holding it), in file order.

    When a task appears twice (a resumed run) the last row wins, at the first row's position.
    """
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise ExpagentError(f"no {RESULTS_FILE} in {path} (is it a replay run directory?)")
    rows: dict[str, ResultRow] = {}
    for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = ResultRow.from_dict(json.loads(line))
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise ExpagentError(f"{file}:{lineno}: malformed results row ({exc})") from None
        rows[row.instance_id] = row
    return list(rows.values())


def append_result(run_dir: str | Path, row: ResultRow) -> None:
    """Append one row to ``run_dir/results.jsonl`` (one write, flushed: a crash loses at most this row)."""
    file = Path(run_dir) / RESULTS_FILE
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(redact_data(row.to_dict()), ensure_ascii=False) + "\n")
        fh.flush()
