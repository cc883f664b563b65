"""Volume commands: ``volume create/ls/inspect/rm/prune`` with docker's flags and output."""

from __future__ import annotations

import click

from capsa.cli import render
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.app import App
    from capsa.engine.protocol import Volumes


def _app(ctx: click.Context) -> App:
    obj: App = ctx.find_root().obj
    return obj


def _service(ctx: click.Context) -> Volumes:
    return _app(ctx).engine.volumes


@click.command("create")
@click.argument("name", required=False)
@click.option("--name", "name_opt", hidden=True, help="volume name (deprecated form)")
@click.option("-d", "--driver", default="local", show_default=True, help="volume driver")
@click.option("--label", "labels", multiple=True, help="set metadata (key=value)")
@click.option("-o", "--opt", "opts", multiple=True, help="driver options (key=value)")
@click.pass_context
def create(
    ctx: click.Context,
    name: str | None,
    name_opt: str | None,
    driver: str,
    labels: tuple[str, ...],
    opts: tuple[str, ...],
) -> None:
    """Create a volume."""
    from capsa.engine.volumes.types import VolumeCreateOptions
    from capsa.syntax.keyvalue import key_values

    if name and name_opt and name != name_opt:
        raise InvalidArgument(f"conflicting options: either specify --name or provide {name}")
    options = VolumeCreateOptions(
        name=name or name_opt,
        driver=driver,
        labels=key_values(labels, "label"),
        driver_opts=key_values(opts, "option", require_eq=True),
    )
    click.echo(_service(ctx).create(options).name)


@click.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="only display volume names")
@click.option("-f", "--filter", "filters", multiple=True, help="filter output (name=value)")
@click.option("--format", "fmt", help="'table', 'json' or a Go template")
@click.pass_context
def ls(ctx: click.Context, **kw: Any) -> None:
    """List volumes."""
    # the body is shared with the cold fast path (capsa.cli.fastpath): flags above and
    # in fastpath.VOLUME_LS_OPTIONS are the same (tests/unit/test_fastpath.py)
    from capsa.cli.list_volumes import ls as body

    body(_app(ctx), **kw)


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="a Go template")
@click.pass_context
def inspect(ctx: click.Context, names: tuple[str, ...], fmt: str | None) -> None:
    """Show details of volumes."""
    from capsa.api.wire_volumes import volume_inspect
    from capsa.cli.per_item import print_inspected

    print_inspected(ctx, _service(ctx).inspect_each(list(names)), volume_inspect, fmt)


@click.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="ignore volumes that do not exist")
@click.pass_context
def rm(ctx: click.Context, names: tuple[str, ...], force: bool) -> None:
    """Remove volumes."""
    from capsa.cli.per_item import print_each

    print_each(ctx, _service(ctx).remove_each(list(names), force))


@click.command("prune")
@click.option("-a", "--all", "all_volumes", is_flag=True, help="all unused, not only anonymous")
@click.option("-f", "--force", is_flag=True, help="do not ask for confirmation")
@click.option("--filter", "filters", multiple=True, help="label=<key>[=<value>], label!=...")
@click.pass_context
def prune(ctx: click.Context, all_volumes: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused volumes."""
    from capsa.syntax.filters import parse_filters

    parsed = parse_filters(filters)
    if not force:
        what = "all local volumes" if all_volumes else "anonymous local volumes"
        if not click.confirm(
            f"WARNING! This will remove {what} not used by at least one container.\n"
            "Are you sure you want to continue?",
            default=False,
        ):
            return
    report = _service(ctx).prune(parsed, all_volumes=all_volumes)
    if report.deleted:
        click.echo("Deleted Volumes:")
        for name in report.deleted:
            click.echo(name)
        click.echo()
    click.echo(f"Total reclaimed space: {render.human_size(report.space_reclaimed)}")


def register(cli: click.Group) -> None:
    group = click.Group("volume", help="Manage volumes.")
    for cmd, names in (
        (create, ("create",)),
        (ls, ("ls", "list")),
        (inspect, ("inspect",)),
        (rm, ("rm", "remove")),
        (prune, ("prune",)),
    ):
        for name in names:
            group.add_command(cmd, name)
    cli.add_command(group)
