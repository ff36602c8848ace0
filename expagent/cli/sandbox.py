"""``expagent sandbox``: build the default image, check what works, remove leftovers.

Only typer is imported here; everything else is imported inside the commands.
"""

from __future__ import annotations

import typer

sandbox_app = typer.Typer(help="Build and check the sandboxes the agent's commands run in.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("build")
def build(
    offline: bool = typer.Option(
        False, "--offline", help="Build the base image with debootstrap instead of pulling one (no registry needed)."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the hash-tagged image exists."),
    host_ca: bool = typer.Option(
        True, "--host-ca/--no-host-ca", help="Trust this machine's CA bundle inside the image (TLS proxies)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only print the image name."),
) -> None:
    """Build the default agent image (and its base); prints the image name."""
    from rich.console import Console

    from expagent.sandbox import images
    from expagent.sandbox.docker_client import connect

    err = Console(stderr=True, highlight=False)

    def progress(line: str) -> None:
        if not quiet:
            err.print(line, style="dim", markup=False)

    client = connect()
    try:
        tag = images.build_default_image(client, offline=offline, force=force, progress=progress, include_host_ca=host_ca)
    finally:
        client.close()
    if not quiet:
        err.print(f"sandbox image ready: {tag}")
    typer.echo(tag)


@sandbox_app.command("doctor")
def doctor(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Say what works (Docker daemon, images, bubblewrap) and what to do about what does not."""
    import json

    from expagent.sandbox.doctor import run_checks

    report = run_checks()
    if json_out:
        typer.echo(json.dumps(report, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="expagent sandbox doctor")
        for column in ("check", "status", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        colours = {"ok": "green", "warn": "yellow", "fail": "red"}
        for check in report["checks"]:
            status = check["status"]
            table.add_row(check["name"], f"[{colours[status]}]{status}[/]", check["detail"], check.get("fix") or "")
        console = Console()
        console.print(table)
        console.print(f"--sandbox auto would use: [bold]{report['auto']}[/]")
    if not report["usable"]:
        raise typer.Exit(1)


@sandbox_app.command("prune")
def prune(
    all_: bool = typer.Option(False, "--all", help="Also remove containers of runs that may still be alive."),
    setup_images: bool = typer.Option(
        False, "--images", help="Also remove cached per-repo set-up images and outdated agent/base images."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Remove sandbox containers left behind (by a killed process, a crash) and optionally cached set-up images."""
    import json

    from expagent.sandbox.prune import prune_sandboxes

    removed = prune_sandboxes(include_alive=all_, include_setup_images=setup_images, dry_run=dry_run)
    if json_out:
        typer.echo(json.dumps(removed, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for kind in ("containers", "images"):
        for item in removed[kind]:
            typer.echo(f"{verb} {kind[:-1]} {item}")
    typer.echo(f"{verb} {len(removed['containers'])} container(s), {len(removed['images'])} image(s)")
