"""User-facing errors.

Anything raised as an ``ExpagentError`` is reported by the CLI as a single line
(``error: <message>``) with a non-zero exit code, never as a traceback.
"""


class ExpagentError(Exception):
    """An error whose message is meant for the user, on one line."""

    exit_code = 2


class ConfigError(ExpagentError):
    pass


class ModelError(ExpagentError):
    pass


class SandboxError(ExpagentError):
    pass


class SandboxUnavailable(SandboxError):
    pass


class ExecutorError(ExpagentError):
    """An executor (``--executor ray``) that is missing, unreachable, or lost a task."""
