"""The ``expagent`` command line. Only typer is imported here: every command imports its
machinery lazily, so that ``expagent --help`` stays fast.

Conventions (docs/agent.md, "Command-line conventions"): ``--version``; typer's shell completion
(``--install-completion``); ``-v/--verbose`` and ``-q/--quiet`` set the level of the ``expagent`` loggers;
exit codes 0 success, 1 a runtime failure (or a run that did not fix the issue), 2 a usage error (a bad
argument, flag, setting or input file), 130 interrupted.
"""

from __future__ import annotations

import sys

import typer

from expagent.errors import ExpagentError

app = typer.Typer(
    name="expagent",
    help="A coding agent that remembers: fix issues, replay task suites, and inspect what it has learned.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    # plain click help: rendering help with rich costs ~0.3 s of imports on every --help
    rich_markup_mode=None,
)


EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"expagent {version('expagent')}")
        except PackageNotFoundError:  # a checkout on sys.path without an installed distribution
            from expagent import __version__

            typer.echo(f"expagent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug lines of expagent's modules to stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log only errors (no warnings) to stderr."),
) -> None:
    from expagent.cli.logs import configure_logging

    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet exclude each other")
    configure_logging(verbose=verbose, quiet=quiet)


_registered = False


def _register() -> None:
    # Each command module imports only typer at its top and registers its own commands; costs milliseconds.
    global _registered
    if _registered:
        return
    from expagent.cli import codeintel, core, memory, replay, runs, sandbox, synth, tasks

    for module in (core, sandbox, memory, codeintel, tasks, synth, replay, runs):
        module.register(app)
    _registered = True


def _terminate(signum, frame) -> None:
    # SIGTERM (a CI runner, `kill`, a closing terminal) cleans up like Ctrl-C: sandboxes are removed
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """The console script. ``argv`` (default ``sys.argv[1:]``) lets tests run a command in-process; it always
    ends with ``SystemExit`` carrying the exit code."""
    import contextvars
    import signal

    previous = signal.signal(signal.SIGTERM, _terminate)
    _register()
    try:
        # its own context: a home chosen with --home (paths.select_home) ends with the command
        contextvars.copy_context().run(app, args=argv, prog_name="expagent")
    except ExpagentError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        typer.echo(f"error: {message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if "expagent.cli.logs" in sys.modules:  # (not imported by --help)
            sys.modules["expagent.cli.logs"].reset_logging()


if __name__ == "__main__":
    main()
