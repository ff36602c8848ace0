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
    # Each command module imports only typer at its top and registers its own commands; costs milliseconds.
    from expagent.cli import codeintel, core, memory, replay, sandbox, synth, tasks

    for module in (core, sandbox, memory, codeintel, tasks, synth, replay):
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
