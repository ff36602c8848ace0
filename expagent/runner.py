"""Small helpers around one run: its directory and its limits. The run itself is ``expagent.session``."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from pathlib import Path

from expagent.agent.loop import Limits
from expagent.config import Settings


def new_run_dir(root: Path, issue: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", issue.lower())[:40].strip("-") or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{stamp}-{slug}-{secrets.token_hex(2)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def limits_from(settings: Settings) -> Limits:
    return Limits(settings.step_limit, settings.cost_limit, settings.time_limit, settings.max_format_errors)
