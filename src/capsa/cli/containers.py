"""Container lifecycle commands: run, create, start, stop, restart, kill, rm, ps, logs,
exec, attach, inspect, wait, pause, unpause, rename, container prune."""

from __future__ import annotations

import os
import sys

import click

from capsa.cli import render
from capsa.cli.runflags import build_spec, run_options
from capsa.errors import CapsaError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from capsa.cli.main import App
    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.protocol import Containers, Launch
    from capsa.engine.system.objects import Found
    from capsa.engine.system.reports import ItemReport

RUN_SETTINGS = {"help_option_names": ["--help"], "allow_interspersed_args": False}


def _app(ctx: click.Context) -> App:
    obj: App = ctx.find_root().obj
    return obj


def _signal(text: str) -> int:
    from capsa.signames import signal_number

    return signal_number(text)


# -- create / run / start ------------------------------------------------------


def _create(
    ctx: click.Context,
    image: str,
    command: tuple[str, ...],
    kw: dict[str, Any],
) -> ContainerRecord:
    from capsa.cli.progress import make_progress

    spec = build_spec(image, command, kw)
    if kw["cidfile"] and os.path.exists(kw["cidfile"]):
        raise InvalidArgument(
            f"container ID file found, make sure the other container "
            f"isn't running or delete {kw['cidfile']}"
        )
    engine = _app(ctx).engine
    if kw["pull"] == "always":
        from capsa.engine.images.types import PullOptions

        progress = make_progress(kw["quiet"])
        try:
            engine.images.pull(image, PullOptions(platform=kw["platform"]), progress)
        finally:
            progress.close()
    elif kw["pull"] == "never" and not engine.images.exists(image):
        from capsa.errors import no_such_image

        raise no_such_image(image)
    elif not kw["quiet"] and not engine.images.exists(image):
        click.echo(f"Unable to find image '{image}' locally", err=True)
    progress = make_progress(kw["quiet"])
    try:
        rec = engine.containers.create(spec, progress)
    finally:
        progress.close()
    if kw["cidfile"]:
        _write_cidfile(kw["cidfile"], rec.id)
    return rec


def _write_cidfile(path: str, container_id: str) -> None:
    """The id, in a file that must not exist yet (checked before the create, as the
    docker CLI does; one made meanwhile is not overwritten)."""
    try:
        with open(path, "x", encoding="ascii") as f:
            f.write(container_id)
    except FileExistsError:
        raise InvalidArgument(
            f"container ID file found, make sure the other container isn't running or delete {path}"
        ) from None
    except OSError as e:
        raise InvalidArgument(f"failed to write the container ID file: {e}") from None


@click.command(context_settings=RUN_SETTINGS)
@run_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def create(ctx: click.Context, image: str, command: tuple[str, ...], **kw: Any) -> None:
    """Create a container."""
    click.echo(_create(ctx, image, command, kw).id)


@click.command(context_settings=RUN_SETTINGS)
@run_options
@click.option("-d", "--detach", is_flag=True, help="run in the background, print the id")
@click.option("-a", "--attach", "attach_streams", multiple=True)
@click.option("--detach-keys")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="pass signals on (no -t)")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(
    ctx: click.Context,
    image: str,
    command: tuple[str, ...],
    detach: bool,
    attach_streams: tuple[str, ...],
    detach_keys: str | None,
    sig_proxy: bool,
    **kw: Any,
) -> None:
    """Create and start a container."""
    rec = _create(ctx, image, command, kw)
    containers = _app(ctx).engine.containers
    try:
        if detach:
            _, launch = containers.start(rec.id)
            _warn(launch)
            click.echo(rec.id)
            return
        code = _start_attached(
            ctx, rec, stdin=kw["interactive"], detach_keys=detach_keys, sig_proxy=sig_proxy
        )
    except CapsaError:
        if rec.spec.auto_remove:  # --rm: a container that could not start goes too
            try:
                containers.remove(rec.id, force=True)
            except CapsaError:
                pass
        raise
    ctx.exit(code)


def _start_attached(
    ctx: click.Context,
    rec: ContainerRecord,
    stdin: bool,
    detach_keys: str | None,
    sig_proxy: bool = True,
) -> int:
    from capsa.cli.attachio import DETACH_KEYS, AttachSession

    containers = _app(ctx).engine.containers
    _, launch = containers.start(rec.id, wait_attach=True)
    if launch is None:
        return 0
    from capsa.engine.containers.attach import AttachStream

    stream = AttachStream(launch.connect())
    session = AttachSession(
        stream,
        tty=rec.spec.tty,
        stdin=stdin,
        detach_keys=_keys(detach_keys) if detach_keys else DETACH_KEYS,
        proxy=_proxy(containers, rec) if sig_proxy and not rec.spec.tty else None,
    )
    session.hello()
    launch.wait_ready()
    _warn(launch)
    code = session.run()
    stream.close()
    if code is None:  # detached with ctrl-p ctrl-q
        return 0
    if session.error:
        click.echo(f"Error: {session.error}", err=True)
    return code


def _proxy(containers: Containers, rec: ContainerRecord) -> Callable[[int], None]:
    """``--sig-proxy``: the signals we receive go to the container (with a terminal, the
    keys that make them are passed as input instead)."""

    def send(sig: int) -> None:
        try:
            containers.proxy_signal(rec.id, sig)
        except CapsaError:  # it exited meanwhile: its exit code is on its way
            pass

    return send


def _warn(launch: Launch | None) -> None:
    for warning in launch.warnings if launch is not None else []:
        click.echo(f"WARNING: {warning}", err=True)


def _keys(spec: str) -> bytes:
    from capsa.syntax.detachkeys import parse_detach_keys

    return parse_detach_keys(spec)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-a", "--attach", "attach_flag", is_flag=True)
@click.option("-i", "--interactive", is_flag=True)
@click.option("--detach-keys")
@click.pass_context
def start(
    ctx: click.Context,
    containers: tuple[str, ...],
    attach_flag: bool,
    interactive: bool,
    detach_keys: str | None,
) -> None:
    """Start stopped containers."""
    service = _app(ctx).engine.containers
    if attach_flag or interactive:
        if len(containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        rec = service.get(containers[0])
        ctx.exit(_start_attached(ctx, rec, stdin=interactive, detach_keys=detach_keys))
    from capsa.cli.per_item import DAEMON

    failed = []
    for report in service.each.start(list(containers)):  # each line as Docker's CLI
        if report.error is None:
            click.echo(report.name)
        else:
            click.echo(f"{DAEMON}{report.error}", err=True)
            failed.append(report.name)
    if failed:
        click.echo("Error: failed to start containers: " + ", ".join(failed), err=True)
        ctx.exit(1)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, default=None)
@click.option("-s", "--signal", "sig")
@click.pass_context
def stop(
    ctx: click.Context, containers: tuple[str, ...], timeout: int | None, sig: str | None
) -> None:
    """Stop running containers (their stop signal, then SIGKILL after the timeout)."""
    from capsa.cli.per_item import print_each
    from capsa.signames import signal_number

    number = signal_number(sig) if sig else None
    print_each(ctx, _app(ctx).engine.containers.each.stop(list(containers), timeout, number))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, default=None)
@click.pass_context
def restart(ctx: click.Context, containers: tuple[str, ...], timeout: int | None) -> None:
    """Restart containers."""
    from capsa.cli.per_item import print_each

    print_each(ctx, _app(ctx).engine.containers.each.restart(list(containers), timeout))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", "sig", default="KILL")
@click.pass_context
def kill(ctx: click.Context, containers: tuple[str, ...], sig: str) -> None:
    """Send a signal to containers (default SIGKILL)."""
    from capsa.cli.per_item import print_each

    number = _signal(sig)
    print_each(ctx, _app(ctx).engine.containers.each.kill(list(containers), number))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True)
@click.option("-v", "--volumes", is_flag=True, help="remove anonymous volumes too")
@click.option("-l", "--link", is_flag=True, hidden=True)
@click.pass_context
def rm(
    ctx: click.Context, containers: tuple[str, ...], force: bool, volumes: bool, link: bool
) -> None:
    """Remove containers."""
    from capsa.cli.per_item import print_each
    from capsa.errors import NotFound

    reports = _app(ctx).engine.containers.each.remove(list(containers), force, volumes)
    print_each(ctx, reports, forgiven=(NotFound,) if force else ())  # Docker's rm -f


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def pause(ctx: click.Context, containers: tuple[str, ...]) -> None:
    """Freeze all processes of containers."""
    from capsa.cli.per_item import print_each

    print_each(ctx, _app(ctx).engine.containers.each.pause(list(containers)))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def unpause(ctx: click.Context, containers: tuple[str, ...]) -> None:
    """Thaw paused containers."""
    from capsa.cli.per_item import print_each

    print_each(ctx, _app(ctx).engine.containers.each.unpause(list(containers)))


@click.command()
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename(ctx: click.Context, container: str, new_name: str) -> None:
    """Rename a container."""
    _app(ctx).engine.containers.rename(container, new_name)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option(
    "--condition", default="not-running", type=click.Choice(["not-running", "next-exit", "removed"])
)
@click.pass_context
def wait(ctx: click.Context, containers: tuple[str, ...], condition: str) -> None:
    """Block until containers stop; print their exit codes."""
    from capsa.cli.per_item import print_each

    reports = _app(ctx).engine.containers.each.wait(list(containers), condition)
    print_each(ctx, reports, line=_exit_code_text)


def _exit_code_text(report: ItemReport[int | None]) -> str:
    return "unknown" if report.value is None else str(report.value)  # never invented


# -- ps ----------------------------------------------------------------------------


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option("-s", "--size", is_flag=True)
@click.option("-n", "--last", type=int, default=0)
@click.option("-l", "--latest", is_flag=True)
@click.option("--no-trunc", is_flag=True)
@click.option("-f", "--filter", "filters", multiple=True)
@click.option("--format", "fmt")
@click.pass_context
def ps(ctx: click.Context, **kw: Any) -> None:
    """List containers."""
    # the body is shared with the cold fast path (capsa.cli.fastpath): flags above and
    # in fastpath.PS_OPTIONS are the same (tests/unit/test_fastpath.py)
    from capsa.cli.list_containers import ps as body

    body(_app(ctx), **kw)


# -- logs ---------------------------------------------------------------------------


@click.command()
@click.argument("container")
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--tail", default="all")
@click.option("--since")
@click.option("--until")
@click.option("-t", "--timestamps", is_flag=True)
@click.option("--details", is_flag=True, hidden=True)
@click.pass_context
def logs(
    ctx: click.Context,
    container: str,
    follow: bool,
    tail: str,
    since: str | None,
    until: str | None,
    timestamps: bool,
    details: bool,
) -> None:
    """Show a container's output (json-file log)."""
    from capsa.engine.containers.logs import format_entry
    from capsa.engine.containers.types import LogOptions
    from capsa.syntax.durations import parse_time_arg

    if tail != "all" and not tail.isdigit():
        raise InvalidArgument(f"invalid value for tail: {tail}")
    opts = LogOptions(
        tail=None if tail == "all" else int(tail),
        since=parse_time_arg(since) if since else None,
        until=parse_time_arg(until) if until else None,
        follow=follow,
    )
    entries = _app(ctx).engine.containers.logs(container, opts)
    for entry in entries:
        out = sys.stdout.buffer if entry.stream == "stdout" else sys.stderr.buffer
        out.write(format_entry(entry, timestamps))
        out.flush()


# -- attach / exec ----------------------------------------------------------------


@click.command()
@click.argument("container")
@click.option("--no-stdin", is_flag=True)
@click.option("--detach-keys")
@click.option("--sig-proxy/--no-sig-proxy", default=True)
@click.pass_context
def attach(
    ctx: click.Context, container: str, no_stdin: bool, detach_keys: str | None, sig_proxy: bool
) -> None:
    """Attach to a running container's stdio."""
    from capsa.cli.attachio import DETACH_KEYS, AttachSession

    app = _app(ctx)
    rec = app.engine.containers.get(container)
    stream = app.engine.containers.attach(rec.id)
    session = AttachSession(
        stream,
        tty=rec.spec.tty,
        stdin=rec.spec.stdin_open and not no_stdin,
        detach_keys=_keys(detach_keys) if detach_keys else DETACH_KEYS,
        proxy=_proxy(app.engine.containers, rec) if sig_proxy and not rec.spec.tty else None,
    )
    session.hello()
    code = session.run()
    stream.close()
    ctx.exit(code or 0)


@click.command("exec", context_settings=RUN_SETTINGS)
@click.option("-d", "--detach", is_flag=True)
@click.option("-i", "--interactive", is_flag=True)
@click.option("-t", "--tty", is_flag=True)
@click.option("-e", "--env", multiple=True)
@click.option("--env-file", multiple=True)
@click.option("-u", "--user")
@click.option("-w", "--workdir")
@click.option("--privileged", is_flag=True)
@click.option("--detach-keys", hidden=True)
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_cmd(
    ctx: click.Context,
    detach: bool,
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    user: str | None,
    workdir: str | None,
    privileged: bool,
    detach_keys: str | None,
    container: str,
    command: tuple[str, ...],
) -> None:
    """Run a command in a running container."""
    from capsa.engine.containers.types import ExecSpec, ExecStdio
    from capsa.syntax.keyvalue import parse_env

    app = _app(ctx)
    spec = ExecSpec(
        command=list(command),
        tty=tty,
        interactive=interactive,
        detach=detach,
        env=parse_env(env, env_file),
        user=user or "",
        workdir=workdir or "",
        privileged=privileged,
    )
    stdio = ExecStdio(stdin=0, stdout=1, stderr=2)
    if tty and os.isatty(0):
        from capsa.ptyio import get_winsize

        stdio.rows, stdio.cols = get_winsize(0)
    session = app.engine.containers.exec(container, spec, stdio)
    if session is None:  # detached
        ctx.exit(0)
    from capsa.ptyio import foreground

    ctx.exit(foreground(session.master, session.wait, session.signal))


# -- inspect ----------------------------------------------------------------------


@click.command("inspect")
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--format", "fmt")
@click.option("-s", "--size", is_flag=True)
@click.pass_context
def container_inspect(
    ctx: click.Context, containers: tuple[str, ...], fmt: str | None, size: bool
) -> None:
    """Show low-level information about containers (Docker's JSON)."""
    from capsa.api import wire_containers
    from capsa.cli.per_item import print_inspected

    service = _app(ctx).engine.containers
    print_inspected(
        ctx,
        service.each.inspect(list(containers)),
        lambda rec: wire_containers.container_inspect(service, rec, size),
        fmt,
    )


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt")
@click.option("--type", "kind", type=click.Choice(["container", "image", "network", "volume"]))
@click.option("-s", "--size", is_flag=True, help="file sizes of containers")
@click.pass_context
def inspect_any(
    ctx: click.Context, names: tuple[str, ...], fmt: str | None, kind: str | None, size: bool
) -> None:
    """Show low-level information about containers, images, networks or volumes."""
    from capsa.cli.per_item import print_inspected
    from capsa.engine.system.objects import find_each

    app = _app(ctx)
    reports = find_each(app.engine, list(names), kind)
    print_inspected(ctx, reports, lambda found: _inspect_doc(app, found, size), fmt)


def _inspect_doc(app: App, found: Found, size: bool) -> dict[str, Any]:
    """Docker's JSON of whatever ``inspect`` found."""
    from capsa.api import wire, wire_containers

    if found.kind == "container":
        return wire_containers.container_inspect(app.engine.containers, found.value, size)
    if found.kind == "image":
        return wire.image_inspect(found.value)
    if found.kind == "network":
        from capsa.api.wire_networks import network_inspect

        return network_inspect(found.value, app.engine.networks.endpoints_of(found.value))
    from capsa.api.wire_volumes import volume_inspect

    return volume_inspect(found.value)


@click.command("prune")
@click.option("-f", "--force", is_flag=True)
@click.option("--filter", "filters", multiple=True, help="until=, label=, label!=")
@click.pass_context
def container_prune(ctx: click.Context, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all stopped containers."""
    from capsa.syntax.filters import parse_filters

    parsed = parse_filters(filters)
    if not force and not click.confirm(
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        default=False,
    ):
        return
    deleted, freed = _app(ctx).engine.containers.prune(parsed)
    if deleted:
        click.echo("Deleted Containers:")
        for cid in deleted:
            click.echo(cid)
        click.echo()
    click.echo(f"Total reclaimed space: {render.human_size(freed, 4)}")


def register(cli: click.Group) -> None:
    container = click.Group("container", help="Manage containers.")
    commands = {
        "run": run,
        "create": create,
        "start": start,
        "stop": stop,
        "restart": restart,
        "kill": kill,
        "rm": rm,
        "ps": ps,
        "logs": logs,
        "attach": attach,
        "exec": exec_cmd,
        "wait": wait,
        "pause": pause,
        "unpause": unpause,
        "rename": rename,
    }
    for name, cmd in commands.items():
        cli.add_command(cmd, name)
        container.add_command(cmd, name)
    container.add_command(ps, "ls")
    container.add_command(ps, "list")
    container.add_command(rm, "remove")
    container.add_command(container_inspect, "inspect")
    container.add_command(container_prune, "prune")
    cli.add_command(inspect_any, "inspect")
    cli.add_command(container)
