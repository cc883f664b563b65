"""Network commands: ``network create/ls/inspect/rm/prune/connect/disconnect`` as docker's."""

from __future__ import annotations

import click

from capsa.cli import render
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.app import App
    from capsa.engine.network.types import Network
    from capsa.engine.protocol import Networks


def _app(ctx: click.Context) -> App:
    obj: App = ctx.find_root().obj
    return obj


def _service(ctx: click.Context) -> Networks:
    return _app(ctx).engine.networks


def _by_family(values: tuple[str, ...], what: str) -> tuple[str, str]:
    """``--subnet``/``--gateway`` given once per address family -> (ipv4, ipv6)."""
    v4 = [v for v in values if ":" not in v]
    v6 = [v for v in values if ":" in v]
    if len(v4) > 1 or len(v6) > 1:
        raise InvalidArgument(f"one {what} per address family is supported")
    return (v4[0] if v4 else "", v6[0] if v6 else "")


def _row(net: Network, no_trunc: bool) -> dict[str, Any]:
    """The fields ``network ls --format`` knows."""
    return {
        "ID": net.id if no_trunc else net.id[:12],
        "Name": net.name,
        "Driver": net.driver,
        "Scope": "local",
        "IPv4": "true",
        "IPv6": str(net.ipv6).lower(),
        "Internal": str(net.internal).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(net.labels.items())),
        "CreatedAt": net.created,
    }


@click.command("create")
@click.argument("name")
@click.option("-d", "--driver", default="bridge", show_default=True, help="network driver")
@click.option("--subnet", "subnets", multiple=True, help="subnet in CIDR form (one per family)")
@click.option("--gateway", "gateways", multiple=True, help="gateway for the subnet")
@click.option("--ip-range", default="", help="allocate container ips from a sub-range")
@click.option("--internal", is_flag=True, help="restrict external access to the network")
@click.option("--ipv6", is_flag=True, help="enable ipv6 networking")
@click.option("--label", "labels", multiple=True, help="set metadata (key=value)")
@click.option("-o", "--opt", "opts", multiple=True, help="driver options (key=value)")
@click.option("--attachable", is_flag=True, hidden=True, help="accepted for compatibility")
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    driver: str,
    subnets: tuple[str, ...],
    gateways: tuple[str, ...],
    ip_range: str,
    internal: bool,
    ipv6: bool,
    labels: tuple[str, ...],
    opts: tuple[str, ...],
    attachable: bool,
) -> None:
    """Create a network."""
    from capsa.engine.network.types import NetworkCreateOptions
    from capsa.syntax.keyvalue import key_values

    subnet, subnet6 = _by_family(subnets, "subnet")
    gateway, gateway6 = _by_family(gateways, "gateway")
    options = NetworkCreateOptions(
        name=name,
        driver=driver,
        subnet=subnet,
        gateway=gateway,
        ip_range=ip_range,
        internal=internal,
        ipv6=ipv6 or bool(subnet6),
        subnet6=subnet6,
        gateway6=gateway6,
        labels=key_values(labels, "label"),
        options=key_values(opts, "option", require_eq=True),
    )
    click.echo(_service(ctx).create(options).id)


@click.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="only display network ids")
@click.option("-f", "--filter", "filters", multiple=True, help="filter output (name=value)")
@click.option("--format", "fmt", help="'table', 'json' or a Go template")
@click.option("--no-trunc", is_flag=True, help="do not truncate the output")
@click.pass_context
def ls(
    ctx: click.Context, quiet: bool, filters: tuple[str, ...], fmt: str | None, no_trunc: bool
) -> None:
    """List networks."""
    from capsa.syntax.filters import parse_filters

    nets = sorted(_service(ctx).list(parse_filters(filters)), key=lambda n: n.name)
    rows = [_row(n, no_trunc) for n in nets]
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    if fmt and fmt != "table":
        render.render_format(fmt, rows, {"ID": "NETWORK ID"})
        return
    render.print_table(
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
        [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows],
    )


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="a Go template")
@click.option("-v", "--verbose", is_flag=True, hidden=True, help="accepted for compatibility")
@click.pass_context
def inspect(ctx: click.Context, names: tuple[str, ...], fmt: str | None, verbose: bool) -> None:
    """Show details of networks."""
    from capsa.api.wire_networks import network_inspect
    from capsa.cli.per_item import print_inspected

    service = _service(ctx)
    reports = service.inspect_each(list(names))
    print_inspected(ctx, reports, lambda net: network_inspect(net, service.endpoints_of(net)), fmt)


@click.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="ignore networks that do not exist")
@click.pass_context
def rm(ctx: click.Context, names: tuple[str, ...], force: bool) -> None:
    """Remove networks."""
    from capsa.cli.per_item import print_each

    reports = _service(ctx).remove_each(list(names))
    if force:  # Docker's network rm -f: a missing network is no error, and not shown
        from capsa.errors import NotFound

        reports = [r for r in reports if not isinstance(r.error, NotFound)]
    print_each(ctx, reports)


@click.command("prune")
@click.option("-f", "--force", is_flag=True, help="do not ask for confirmation")
@click.option("--filter", "filters", multiple=True, help="label=<key>[=<value>]")
@click.pass_context
def prune(ctx: click.Context, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    from capsa.syntax.filters import parse_filters

    parsed = parse_filters(filters)
    if not force and not click.confirm(
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue?",
        default=False,
    ):
        return
    removed = _service(ctx).prune(parsed)
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)
        click.echo()


@click.command("connect")
@click.argument("network")
@click.argument("container")
@click.option("--ip", default="", help="ipv4 address")
@click.option("--alias", "aliases", multiple=True, help="network-scoped alias")
@click.pass_context
def connect(
    ctx: click.Context, network: str, container: str, ip: str, aliases: tuple[str, ...]
) -> None:
    """Connect a container to a network."""
    # the engine records it in the container's config as well
    _app(ctx).engine.containers.network_connect(container, network, aliases=list(aliases), ip=ip)


@click.command("disconnect")
@click.argument("network")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="force the container to disconnect")
@click.pass_context
def disconnect(ctx: click.Context, network: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    _app(ctx).engine.containers.network_disconnect(container, network, force=force)


def register(cli: click.Group) -> None:
    group = click.Group("network", help="Manage networks.")
    for cmd, names in (
        (create, ("create",)),
        (ls, ("ls", "list")),
        (inspect, ("inspect",)),
        (rm, ("rm", "remove")),
        (prune, ("prune",)),
        (connect, ("connect",)),
        (disconnect, ("disconnect",)),
    ):
        for name in names:
            group.add_command(cmd, name)
    cli.add_command(group)
