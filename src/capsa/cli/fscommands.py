"""Container filesystem commands: cp, diff, commit, export."""

from __future__ import annotations

import os
import sys

import click

from capsa.errors import CapsaError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsa.cli.main import App
    from capsa.engine.protocol import Files

TERMINAL_REFUSAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"


def _app(ctx: click.Context) -> App:
    obj: App = ctx.find_root().obj
    return obj


def _fs(ctx: click.Context) -> Files:
    return _app(ctx).engine.fs


def _daemon_errors(ctx: click.Context, fn: Callable[..., object], *args: object) -> None:
    """Run ``fn`` and report engine errors as Docker's CLI does."""
    try:
        fn(*args)
    except CapsaError as e:
        click.echo(f"Error response from daemon: {e}", err=True)
        ctx.exit(1)


@click.command()
@click.option("-a", "--archive", is_flag=True, help="keep uid/gid of the copied files")
@click.option("-L", "--follow-link", is_flag=True, help="follow a symbolic link in SRC")
@click.option("-q", "--quiet", is_flag=True, hidden=True)
@click.argument("src")
@click.argument("dest")
@click.pass_context
def cp(
    ctx: click.Context, src: str, dest: str, archive: bool, follow_link: bool, quiet: bool
) -> None:
    """Copy files between a container and the host (`-` streams a tar archive).

    \b
    capsa cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    capsa cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH
    """
    from capsa.engine.fsops.types import CopyOptions
    from capsa.syntax.mounts import split_cp_arg

    src_container, src_path = split_cp_arg(src)
    dst_container, dst_path = split_cp_arg(dest)
    if src_container and dst_container:
        raise InvalidArgument("copying between containers is not supported")
    if not src_container and not dst_container:
        raise InvalidArgument("must specify at least one container source")
    fs = _fs(ctx)
    opts = CopyOptions(follow_link=follow_link, archive=archive)
    if src_container and dst_path == "-":
        out = sys.stdout.buffer
        _daemon_errors(ctx, fs.archive, src_container, src_path, out, opts)
        out.flush()
    elif src_container:
        _daemon_errors(ctx, fs.copy_from, src_container, src_path, dst_path, opts)
    elif src_path == "-":
        stdin = sys.stdin.buffer
        _daemon_errors(ctx, fs.extract, dst_container, dst_path, stdin, opts)
    else:
        _daemon_errors(ctx, fs.copy_to, dst_container, src_path, dst_path, opts)


@click.command()
@click.argument("container")
@click.pass_context
def diff(ctx: click.Context, container: str) -> None:
    """Show the files added (A), changed (C) and deleted (D) in a container."""
    for change in _fs(ctx).changes(container):
        click.echo(str(change))


class _PauseCommand(click.Command):
    """Takes Docker's ``--pause=false`` spelling of the ``--pause/--no-pause`` flag."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, [_pause_flag(a) for a in args])


def _pause_flag(arg: str) -> str:
    name, sep, value = arg.partition("=")
    if sep and name in ("-p", "--pause") and value.lower() in ("true", "false", "1", "0"):
        return "--pause" if value.lower() in ("true", "1") else "--no-pause"
    return arg


@click.command(cls=_PauseCommand)
@click.option("-a", "--author", default="", help='author ("Name <email>")')
@click.option("-c", "--change", "changes", multiple=True, help="Dockerfile instruction")
@click.option("-m", "--message", default="", help="commit message")
@click.option("-p", "--pause/--no-pause", default=True, help="pause the container meanwhile")
@click.argument("container")
@click.argument("reference", required=False, default="")
@click.pass_context
def commit(
    ctx: click.Context,
    container: str,
    reference: str,
    author: str,
    changes: tuple[str, ...],
    message: str,
    pause: bool,
) -> None:
    """Create a new image from a container's changes."""
    from capsa.engine.fsops.types import CommitOptions

    opts = CommitOptions(
        reference=reference, message=message, author=author, changes=list(changes), pause=pause
    )
    click.echo(_fs(ctx).commit(container, opts))


@click.command()
@click.option("-o", "--output", help="write to a file instead of STDOUT")
@click.argument("container")
@click.pass_context
def export(ctx: click.Context, container: str, output: str | None) -> None:
    """Export a container's filesystem as a tar archive."""
    if not output and sys.stdout.isatty():
        raise InvalidArgument(TERMINAL_REFUSAL)
    fs = _fs(ctx)
    if not output:
        out = sys.stdout.buffer
        fs.export(container, out)
        out.flush()
        return
    tmp = os.path.join(os.path.dirname(os.path.abspath(output)), f".{os.path.basename(output)}.tmp")
    try:
        with open(tmp, "wb") as f:
            fs.export(container, f)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def register(cli: click.Group) -> None:
    """Add the commands at the top level and under ``container`` (register that first)."""
    group = cli.commands.get("container")
    for name, cmd in (("cp", cp), ("diff", diff), ("commit", commit), ("export", export)):
        cli.add_command(cmd, name)
        if isinstance(group, click.Group):
            group.add_command(cmd, name)
