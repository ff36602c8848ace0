"""Reading JSONL input strictly: every bad line is reported as ``FILE:LINE: reason``.

By default one bad line rejects the whole file (nothing partial is imported); with ``skip_bad`` bad lines are
reported and skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, TypeVar

from expagent.errors import ExpagentError

T = TypeVar("T")


class BadInput(ExpagentError):
    pass


def read_jsonl(path: Path | str, parse: Callable[[dict[str, Any], int], T], skip_bad: bool = False
               ) -> tuple[list[T], list[str]]:
    """Parse every non-blank line of ``path`` with ``parse(obj, line_no)``; returns (items, problems).

    ``parse`` raises ExpagentError (or ValueError/KeyError/TypeError) for a bad record. Without ``skip_bad`` the
    first problem raises BadInput naming the file and line.
    """
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    items: list[T] = []
    problems: list[str] = []
    with handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("expected a JSON object")
                items.append(parse(obj, line_no))
            except (ExpagentError, ValueError, KeyError, TypeError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
                if isinstance(exc, KeyError):
                    reason = f"missing field {exc}"
                problem = f"{path}:{line_no}: {reason}"
                if not skip_bad:
                    raise BadInput(f"{problem} (nothing imported; use --skip-bad to import the good lines)") from None
                problems.append(problem)
    return items, problems
