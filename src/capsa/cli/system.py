"""``capsa system restore``: after a reboot or a crash, settle the records and bring back
the containers whose restart policy says so (``capsa.engine.containers.restore``). Run at boot by
``contrib/systemd/capsa-restore.service``."""

from __future__ import annotations

import click

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cli.main import App


def _app(ctx: click.Context) -> App:
    obj: App = ctx.find_root().obj
    return obj


def _section(title: str, lines: list[str]) -> None:
    if lines:
        click.echo(f"{title}:")
        for line in lines:
            click.echo(line)


@click.command("restore")
@click.pass_context
def restore(ctx: click.Context) -> None:
    """Reconcile state after a reboot and start the containers whose restart policy
    brings them back (always, unless-stopped)."""
    report = _app(ctx).engine.restore.run()
    _section("Marked exited", report.settled)
    _section("Removed", report.removed)
    _section("Dropped network endpoints", [cid[:12] for cid in report.dropped_endpoints])
    _section("Started", report.started)
    for failure in report.failed:
        click.echo(f"Error: {failure.name}: {failure.message}", err=True)
    if report.failed:
        ctx.exit(1)


def register(cli: click.Group) -> None:
    """Call after ``monitoring.register`` (it makes the ``system`` group)."""
    system = cli.commands.get("system")
    if not isinstance(system, click.Group):
        system = click.Group("system", help="Manage capsa.")
        cli.add_command(system)
    system.add_command(restore, "restore")
    from capsa.cli.service import service

    system.add_command(service, "service")
