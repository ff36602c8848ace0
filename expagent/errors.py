"""User-facing errors.

Anything raised as an ``ExpagentError`` is reported by the CLI as a single line
(``error: <message>``) with a non-zero exit code, never as a traceback.

Exit codes (docs/agent.md): 2 for what the user gave (an argument, flag, setting or input file that cannot be
used; ``ExpagentError`` and ``UsageError``), 1 for a failure while doing the work (``RuntimeFailure``: a sandbox,
a git command, a service that does not answer), 130 when interrupted.
"""


class ExpagentError(Exception):
    """An error whose message is meant for the user, on one line."""

    exit_code = 2


class UsageError(ExpagentError):
    """A bad argument, flag, setting or input: exit code 2."""

    exit_code = 2


class RuntimeFailure(ExpagentError):
    """The input was fine but the work failed (sandbox, git, a service): exit code 1."""

    exit_code = 1


class ConfigError(ExpagentError):
    pass


class ModelError(ExpagentError):
    pass


class SandboxError(RuntimeFailure):
    pass


class SandboxUnavailable(SandboxError):
    pass


class ExecutorError(ExpagentError):
    """An executor (``--executor ray``) that is missing, unreachable, or lost a task."""
