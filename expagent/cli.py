"""The ``expagent`` command line. Only typer is imported here: every command imports its
machinery lazily, so that ``expagent --help`` stays fast."""

from __future__ import annotations

import sys

import typer

from expagent.errors import ExpagentError

app = typer.Typer(
    name="expagent",
    help="A coding agent that remembers: fix issues, replay task suites, and inspect what it has learned.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # plain click help: rendering help with rich costs ~0.3 s of imports on every --help
    rich_markup_mode=None,
)


def _register() -> None:
    # Each feature module only imports typer at its top; registering costs milliseconds.
    from expagent import cli_core
    from expagent.sandbox import cli as sandbox_cli
    from expagent.memory import cli as memory_cli
    from expagent.codeintel import cli as codeintel_cli
    from expagent.tasks import cli as tasks_cli
    from expagent.tasks import synth_cli
    from expagent.experience import cli as experience_cli

    # memory comes before codeintel and experience: they add commands to its group
    for module in (cli_core, sandbox_cli, memory_cli, codeintel_cli, tasks_cli, synth_cli, experience_cli):
        module.register(app)


def _terminate(signum, frame) -> None:
    # SIGTERM (a CI runner, `kill`, a closing terminal) cleans up like Ctrl-C: sandboxes are removed
    raise KeyboardInterrupt


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    _register()
    try:
        app()
    except ExpagentError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        typer.echo(f"error: {message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
