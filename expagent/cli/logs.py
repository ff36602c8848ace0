"""Logging for the command line: ``-v`` shows expagent's debug lines, ``-q`` only its errors.

Modules log through ``logging.getLogger(__name__)`` (so under the ``expagent`` logger); the CLI owns the
one handler, on stderr, so that stdout stays the command's output (a patch, JSON).
"""

from __future__ import annotations

import logging
import sys

_HANDLER_NAME = "expagent-cli"


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (tests and typer's runner swap it) instead of the one at set-up."""

    def __init__(self) -> None:
        super().__init__()
        self.set_name(_HANDLER_NAME)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Level of the ``expagent`` loggers: DEBUG with ``verbose``, ERROR with ``quiet``, else WARNING."""
    logger = logging.getLogger("expagent")
    logger.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def reset_logging() -> None:
    """Undo :func:`configure_logging` when a command ends (a command run in-process leaves nothing behind)."""
    logger = logging.getLogger("expagent")
    for handler in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
