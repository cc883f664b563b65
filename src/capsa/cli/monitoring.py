"""Watching and tuning containers and the engine: stats, top, update, port, events,
info, system prune (and a ``version`` if the main module has none)."""

from __future__ import annotations

import errno
import json
import os
import sys
import time

import click

from capsa.cli import render
from capsa.errors import CapsaError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.main import App
    from capsa.engine.containers.stats import ContainerStats, Sample
    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.system.info import SystemInfo

INTERVAL = 1.0  # seconds between two stats samples
STATS_FORMAT = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
    "\t{{.BlockIO}}\t{{.PIDs}}"
)
STATS_HEADERS = {
    "ID": "CONTAINER ID",
    "Container": "CONTAINER",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def _app(ctx: click.Context) -> App:
    obj: App = ctx.find_root().obj
    return obj


def bytes_size(size: float) -> str:
    """Docker's units.BytesSize: binary units, 4 significant digits ("491.5KiB")."""
    i = 0
    while size >= 1024 and i < len(_BINARY) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{_BINARY[i]}"


# -- stats -----------------------------------------------------------------------------


def stats_row(s: ContainerStats, container: str, no_trunc: bool) -> dict[str, str]:
    """The fields ``stats --format`` templates see, as the docker CLI fills them."""
    hs = render.human_size
    return {
        "Container": container,
        "Name": s.name,
        "ID": s.id if no_trunc else s.id[:12],
        "CPUPerc": f"{s.cpu_percent:.2f}%",
        "MemUsage": f"{bytes_size(s.mem_usage)} / {bytes_size(s.mem_limit)}",
        "MemPerc": f"{s.mem_percent:.2f}%",
        "NetIO": f"{hs(s.net_rx)} / {hs(s.net_tx)}",
        "BlockIO": f"{hs(s.block_read)} / {hs(s.block_write)}",
        "PIDs": str(s.pids),
    }


def _targets(
    ctx: click.Context, names: tuple[str, ...], all_: bool, strict: bool
) -> list[tuple[str, Any]]:
    """(what the user named, record) pairs; without names: the running (or all) ones.
    A named container that is gone fails the first frame (``strict``) and is dropped
    from the later ones."""
    from capsa.engine.containers.types import PsOptions

    service = _app(ctx).engine.containers
    if not names:
        recs = service.list_containers(PsOptions(all=all_))
        return [(rec.short_id, rec) for rec in recs]
    out = []
    for name in names:
        try:
            out.append((name, service.get(name)))
        except CapsaError:
            if strict:
                raise
    return out


def _stats_frame(
    ctx: click.Context, targets: list[tuple[str, Any]], previous: dict[str, Sample]
) -> tuple[dict[str, Sample], list[tuple[str, ContainerStats]]]:
    from capsa.engine.containers.stats import compute

    service = _app(ctx).engine.containers
    samples = {rec.id: service.sample(rec) for _, rec in targets}
    stats = [(name, compute(samples[rec.id], previous.get(rec.id))) for name, rec in targets]
    return samples, stats


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="all containers (default: running)")
@click.option("--no-stream", is_flag=True, help="print one sample and exit")
@click.option("--no-trunc", is_flag=True)
@click.option("--format", "fmt", default="")
@click.argument("containers", nargs=-1)
@click.pass_context
def stats(
    ctx: click.Context,
    all_: bool,
    no_stream: bool,
    no_trunc: bool,
    fmt: str,
    containers: tuple[str, ...],
) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    from capsa.cli.template import format_rows

    tty = sys.stdout.isatty()
    previous, _ = _stats_frame(ctx, _targets(ctx, containers, all_, strict=True), {})
    try:
        while True:
            time.sleep(INTERVAL)
            targets = _targets(ctx, containers, all_, strict=False)
            previous, rows = _stats_frame(ctx, targets, previous)
            text = format_rows(
                fmt,
                [stats_row(s, name, no_trunc) for name, s in rows],
                STATS_HEADERS,
                default=STATS_FORMAT,
            )
            if tty and not no_stream:
                sys.stdout.write("\033[H\033[2J")
            if text:
                click.echo(text)
            if no_stream:
                return
    except KeyboardInterrupt:
        return


# -- top -------------------------------------------------------------------------------


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top(ctx: click.Context, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    from capsa.cli.template import tabwrite

    args = " ".join(ps_args).split() if ps_args else None
    result = _app(ctx).engine.containers.top(container, args)
    lines = ["\t".join(result.titles), *("\t".join(p) for p in result.processes)]
    click.echo(tabwrite("\n".join(lines), minwidth=20, padding=3))


# -- update ----------------------------------------------------------------------------


def _changes(kw: dict[str, Any]) -> Any:
    from capsa.engine.containers.update import ResourceUpdate
    from capsa.syntax.sizes import parse_bytes

    ch = ResourceUpdate()
    if kw["memory"]:
        ch.memory = parse_bytes(kw["memory"], "memory")
    if kw["memory_swap"]:
        swap = kw["memory_swap"]
        ch.memory_swap = -1 if swap == "-1" else parse_bytes(swap, "memory-swap")
    if kw["memory_reservation"]:
        ch.memory_reservation = parse_bytes(kw["memory_reservation"], "memory reservation")
    if kw["cpus"]:
        from capsa.cli.limitflags import nano_cpus

        ch.nano_cpus = nano_cpus(kw["cpus"])  # as run's --cpus: no float overflow on "inf"
    for name in ("cpu_shares", "cpu_quota", "cpu_period", "pids_limit", "blkio_weight"):
        if kw[name] is not None:
            setattr(ch, name, kw[name])
    for name in ("cpuset_cpus", "cpuset_mems", "restart"):
        if kw[name]:
            setattr(ch, name, kw[name])
    for name in ("network_rate_in", "network_rate_out"):
        if kw[name]:
            from capsa.syntax.sizes import parse_rate

            setattr(ch, name, 0 if kw[name] in ("0", "none") else parse_rate(kw[name]))
    return ch


@click.command()
@click.option("-m", "--memory")
@click.option("--memory-swap")
@click.option("--memory-reservation")
@click.option("--cpus")
@click.option("-c", "--cpu-shares", type=int)
@click.option("--cpu-quota", type=int)
@click.option("--cpu-period", type=int)
@click.option("--cpuset-cpus")
@click.option("--cpuset-mems")
@click.option("--pids-limit", type=int)
@click.option("--blkio-weight", type=int)
@click.option("--network-rate-in", help="e.g. 10mbit (0: no limit)")
@click.option("--network-rate-out", help="e.g. 5mbit (0: no limit)")
@click.option("--restart")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def update(ctx: click.Context, containers: tuple[str, ...], **kw: Any) -> None:
    """Update configuration of one or more containers."""
    changes = _changes(kw)
    if changes.empty():
        raise InvalidArgument("you must provide one or more flags when using this command")
    engine = _app(ctx).engine
    failed = False
    for name in containers:
        try:
            warnings = engine.containers.update(name, changes)
        except CapsaError as e:
            click.echo(f"Error response from daemon: {e}", err=True)
            failed = True
            continue
        for w in warnings:
            click.echo(f"WARNING: {w}", err=True)
        click.echo(name)
    if failed:
        ctx.exit(1)


# -- port ------------------------------------------------------------------------------


def _natural_key(text: str) -> list[Any]:
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _host(ip: str, port: Any) -> str:
    ip = ip or "0.0.0.0"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def port_lines(rec: ContainerRecord, wanted: str | None) -> list[str]:
    """``docker port`` lines from the published ports in the container's spec."""
    from capsa.engine.containers.types import is_live

    ports = rec.spec.ports if is_live(rec.state) else []
    if wanted:
        number, _, proto = wanted.partition("/")
        if not number.isdigit() or int(number) > 65535:
            raise InvalidArgument(f"invalid port ({number})")
        key = f"{int(number)}/{proto or 'tcp'}"
        out = [
            _host(p.host_ip, p.host_port)
            for p in ports
            if f"{p.container_port}/{p.protocol or 'tcp'}" == key
        ]
        if not out:
            raise InvalidArgument(f"no public port '{wanted}' published for {rec.name}")
    else:
        out = [
            f"{p.container_port}/{p.protocol or 'tcp'} -> " + _host(p.host_ip, p.host_port)
            for p in ports
        ]
    return sorted(out, key=_natural_key)


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_context
def port(ctx: click.Context, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    rec = _app(ctx).engine.containers.get(container)
    for line in port_lines(rec, private_port):
        click.echo(line)


# -- events ----------------------------------------------------------------------------


class _EventFields(dict):
    """An event for templates: Go's field names (.ID, .Status) find the JSON keys."""

    ALIASES = {
        "ID": "id",
        "Status": "status",
        "From": "from",
        "Scope": "scope",
        "Time": "time",
        "TimeNano": "timeNano",
    }

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(self.ALIASES.get(key, key), default)


def local_rfc3339_nano(ns: int) -> str:
    """Go's RFC3339NanoFixed in local time ("2026-11-28T16:34:00.393227473Z")."""
    local = time.localtime(ns // 10**9)
    offset = local.tm_gmtoff or 0
    zone = "Z"
    if offset:
        sign = "+" if offset > 0 else "-"
        zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{ns % 10**9:09d}{zone}"


def format_event(event: dict[str, Any]) -> str:
    """The docker CLI's line: time, type, action, actor id, (sorted attributes)."""
    ns = int(event.get("timeNano") or int(event.get("time", 0)) * 10**9)
    actor = event.get("Actor") or {}
    line = f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    if ns:
        line = f"{local_rfc3339_nano(ns)} {line}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


@click.command()
@click.option("--since", help="show events since a timestamp or duration")
@click.option("--until", help="stream events until this timestamp or duration")
@click.option("-f", "--filter", "filters", multiple=True, help="filter output (key=value)")
@click.option("--format", "fmt", default="")
@click.pass_context
def events(
    ctx: click.Context, since: str | None, until: str | None, filters: tuple[str, ...], fmt: str
) -> None:
    """Get real time events from the engine."""
    from capsa.cli.template import Template
    from capsa.syntax.durations import parse_time_arg
    from capsa.syntax.filters import parse_event_filters

    now = time.time()
    # dockerd: --until alone shows the past events up to it, then new ones until then
    start = parse_time_arg(since, now) if since else (None if until else now)
    end = parse_time_arg(until, now) if until else None
    if start is not None and end is not None and end < start:
        raise InvalidArgument(f"`since` time ({since}) cannot be after `until` time ({until})")
    wanted = parse_event_filters(filters)
    tpl = Template(fmt) if fmt and fmt != "json" else None
    service = _app(ctx).engine.events
    out = _fileno(sys.stdout)
    try:
        for event in service.stream(start, end, wanted, stop=lambda: _reader_gone(out)):
            if fmt == "json":
                click.echo(json.dumps(event, separators=(",", ":")))
            elif tpl is not None:
                click.echo(tpl.render(_EventFields(event)))
            else:
                click.echo(format_event(event))
    except KeyboardInterrupt:
        return
    if _reader_gone(out):  # a pipe nobody reads: end as a write to it would
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def _fileno(stream: Any) -> int:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):  # not a file (embedded, tests): -1
        return -1


def _reader_gone(fd: int) -> bool:
    """Nobody reads ``fd`` any more (a pipe's reader exited, a socket or terminal hung
    up): seen without writing, so ``events`` ends even when no event comes."""
    import select

    if fd < 0:
        return False
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are always reported
    try:
        ready = poller.poll(0)
    except OSError:
        return False
    return any(mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, mask in ready)


# -- info ------------------------------------------------------------------------------


def _security_lines(options: list[str]) -> list[str]:
    out = []
    for opt in options:
        fields = dict(kv.partition("=")[::2] for kv in opt.split(","))
        out.append(f"  {fields.get('name', opt)}")
        out.extend(f"   {k.capitalize()}: {v}" for k, v in fields.items() if k != "name")
    return out


def info_lines(info: SystemInfo, debug: bool = False) -> list[str]:
    from capsa import __version__

    return [
        "Client:",
        f" Version:    {__version__}",
        " Context:    default",
        f" Debug Mode: {str(debug).lower()}",
        "",
        "Server:",
        f" Containers: {info.containers}",
        f"  Running: {info.running}",
        f"  Paused: {info.paused}",
        f"  Stopped: {info.stopped}",
        f" Images: {info.images}",
        f" Server Version: {info.server_version}",
        f" Storage Driver: {info.storage_driver}",
        f" Logging Driver: {info.logging_driver}",
        f" Cgroup Driver: {info.cgroup_driver}",
        f" Cgroup Version: {info.cgroup_version}",
        " Plugins:",
        f"  Volume: {' '.join(info.volume_plugins)}",
        f"  Network: {' '.join(info.network_plugins)}",
        f"  Log: {' '.join(info.log_plugins)}",
        " Swarm: inactive",
        f" Runtimes: {' '.join(sorted(info.runtimes))}",
        f" Default Runtime: {info.default_runtime}",
        " Security Options:",
        *_security_lines(info.security_options),
        f" Kernel Version: {info.kernel_version}",
        f" Operating System: {info.operating_system}",
        " OSType: linux",
        f" Architecture: {info.architecture}",
        f" CPUs: {info.ncpu}",
        f" Total Memory: {bytes_size(info.mem_total)}",
        f" Name: {info.name}",
        f" ID: {info.id}",
        f" Docker Root Dir: {info.root_dir}",
        f" Debug Mode: {str(debug).lower()}",
        " Experimental: false",
        " Insecure Registries:",
        *(f"  {r}" for r in info.insecure_registries),
        *(
            [" Registry Mirrors:"] + [f"  {m}" for m in info.registry_mirrors]
            if info.registry_mirrors
            else []
        ),
        " Live Restore Enabled: true",
    ]


@click.command()
@click.option("-f", "--format", "fmt", default="")
@click.pass_context
def info(ctx: click.Context, fmt: str) -> None:
    """Display system-wide information."""
    from capsa.api.wire_system import docker_info

    app = _app(ctx)
    data = app.engine.system.info()
    if fmt:
        doc = docker_info(data)
        if fmt == "json":
            click.echo(json.dumps(doc, separators=(",", ":")))
        else:
            render.render_format(fmt, [doc])
        return
    for line in info_lines(data, app.debug):
        click.echo(line)
    for warning in data.warnings:
        click.echo(warning, err=True)


# -- system prune ----------------------------------------------------------------------


def _prune_warning(all_images: bool, volumes: bool, filters: dict[str, list[str]]) -> str:
    """The docker CLI's confirmation, with the filters it will apply."""
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append(
        "all images without at least one container associated to them"
        if all_images
        else "all dangling images"
    )
    text = "WARNING! This will remove:" + "".join(f"\n  - {item}" for item in items) + "\n"
    shown = sorted(f"{k}={v}" for k in ("label", "label!", "until") for v in filters.get(k, []))
    if shown:
        text += "\n  Items to be pruned will be filtered with:"
        text += "".join(f"\n  - {item}" for item in shown) + "\n"
    return text + "\nAre you sure you want to continue?"


def _section(title: str, lines: list[str]) -> None:
    if lines:
        click.echo(f"{title}:")
        for line in lines:
            click.echo(line)
        click.echo()


@click.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True, help="remove all unused images")
@click.option("--volumes", is_flag=True, help="prune anonymous volumes")
@click.option("-f", "--force", is_flag=True, help="do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="until=, label=, label!=")
@click.pass_context
def system_prune(
    ctx: click.Context, all_images: bool, volumes: bool, force: bool, filters: tuple[str, ...]
) -> None:
    """Remove unused data."""
    from capsa.engine.system.types import SystemPruneOptions
    from capsa.syntax.filters import parse_filters

    opts = SystemPruneOptions(all_images, volumes, parse_filters(filters))
    system = _app(ctx).engine.system
    system.check_prune(opts)
    if not force and not click.confirm(
        _prune_warning(all_images, volumes, opts.filters), default=False
    ):
        return
    report = system.prune(opts)
    _section("Deleted Containers", report.containers)
    _section("Deleted Networks", report.networks)
    _section("Deleted Volumes", report.volumes)
    images = report.images
    if images is not None:
        _section(
            "Deleted Images",
            [f"untagged: {n}" for n in images.untagged] + [f"deleted: {i}" for i in images.deleted],
        )
    click.echo(f"Total reclaimed space: {render.human_size(report.space_reclaimed, 4)}")


# -- version (only if the main module has none) ----------------------------------------


@click.command()
@click.option("-f", "--format", "fmt", default="")
def version(fmt: str) -> None:
    """Show the capsa version information."""
    import platform

    from capsa import __version__
    from capsa.oci.runtime_spec import OCI_VERSION

    doc = {
        "Client": {"Version": __version__, "PythonVersion": platform.python_version()},
        "Server": {"Version": __version__, "OCIVersion": OCI_VERSION, "Os": "linux"},
    }
    if fmt:
        render.render_format(fmt, [doc])
        return
    click.echo(f"capsa version {__version__}")
    click.echo(f"OCI runtime spec {OCI_VERSION}")


# -- registration ----------------------------------------------------------------------


def _group(cli: click.Group, name: str, help_text: str) -> click.Group:
    group = cli.commands.get(name)
    if not isinstance(group, click.Group):
        group = click.Group(name, help=help_text)
        cli.add_command(group)
    return group


def register(cli: click.Group) -> None:
    """Call after ``containers.register`` (it makes the ``container`` group)."""
    container = _group(cli, "container", "Manage containers.")
    system = _group(cli, "system", "Manage capsa.")
    for name, cmd in (("stats", stats), ("top", top), ("update", update), ("port", port)):
        cli.add_command(cmd, name)
        container.add_command(cmd, name)
    cli.add_command(events, "events")
    cli.add_command(info, "info")
    system.add_command(events, "events")
    system.add_command(info, "info")
    system.add_command(system_prune, "prune")
    if "version" not in cli.commands:
        cli.add_command(version, "version")
