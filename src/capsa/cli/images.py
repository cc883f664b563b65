"""Image commands: pull, push, images, rmi, tag, inspect, history, save, load, import,
prune, login/logout, system df — with docker's flags and output."""

from __future__ import annotations

import sys

import click

from capsa.cli import render
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.main import App


def _app(ctx: click.Context) -> App:
    obj: App = ctx.find_root().obj
    return obj


# -- pull / push ----------------------------------------------------------------


@click.command()
@click.argument("name")
@click.option("--platform", help="os/arch[/variant] to pull (default: this host's)")
@click.option("-q", "--quiet", is_flag=True, help="print only the image name")
@click.option("-a", "--all-tags", is_flag=True, hidden=True)
@click.pass_context
def pull(ctx: click.Context, name: str, platform: str | None, quiet: bool, all_tags: bool) -> None:
    """Download an image from a registry."""
    from capsa.cli.progress import make_progress
    from capsa.engine.images.types import PullOptions
    from capsa.oci import reference

    if all_tags:
        raise InvalidArgument("pull --all-tags is not supported")
    ref = reference.parse(name)
    if not quiet and reference.parse(name, default_tag=False).tag is None and not ref.digest:
        click.echo(f"Using default tag: {ref.tag}")
    progress = make_progress(quiet)
    try:
        _app(ctx).engine.images.pull(name, PullOptions(platform=platform), progress)
    finally:
        progress.close()
    if not quiet:
        click.echo(f"Status: Downloaded newer image for {ref.familiar}")
    click.echo(ref.name)


@click.command()
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def push(ctx: click.Context, name: str, quiet: bool) -> None:
    """Upload an image to a registry."""
    from capsa.cli.progress import make_progress
    from capsa.oci import reference

    ref = reference.parse(name)
    if not quiet:
        click.echo(f"The push refers to repository [{ref.repository}]")
    progress = make_progress(quiet)
    try:
        digest = _app(ctx).engine.images.push(name, progress=progress)
    finally:
        progress.close()
    click.echo(f"{ref.tag or 'latest'}: digest: {digest}")


@click.command()
@click.argument("server", required=False, default="docker.io")
@click.option("-u", "--username")
@click.option("-p", "--password")
@click.option("--password-stdin", is_flag=True)
@click.pass_context
def login(
    ctx: click.Context,
    server: str,
    username: str | None,
    password: str | None,
    password_stdin: bool,
) -> None:
    """Log in to a registry (credentials kept in ~/.docker/config.json)."""
    if password_stdin:
        if password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.read().rstrip("\n")
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    _app(ctx).engine.images.login(server, username, password)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False, default="docker.io")
@click.pass_context
def logout(ctx: click.Context, server: str) -> None:
    """Log out from a registry."""
    if _app(ctx).engine.images.logout(server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")


# -- listing ----------------------------------------------------------------------


@click.command("images")
@click.argument("repository", required=False)
@click.option("-a", "--all", "show_all", is_flag=True, help="show intermediate images too")
@click.option("-q", "--quiet", is_flag=True, help="only image IDs")
@click.option("--digests", is_flag=True, help="show digests")
@click.option("--no-trunc", is_flag=True, help="do not truncate IDs")
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    help="dangling=, label=, reference=, before=, since=",
)
@click.option("--format", "fmt", help="'json', 'table ...' or a Go template")
@click.pass_context
def images_cmd(ctx: click.Context, **kw: Any) -> None:
    """List images."""
    # the body is shared with the cold fast path (capsa.cli.fastpath): flags above and
    # in fastpath.IMAGES_OPTIONS are the same (tests/unit/test_fastpath.py)
    from capsa.cli.list_images import images as body

    body(_app(ctx), **kw)


# -- names and removal -----------------------------------------------------


@click.command()
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag(ctx: click.Context, source: str, target: str) -> None:
    """Give an image another name."""
    _app(ctx).engine.images.tag(source, target)


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="remove even if containers use it")
@click.option("--no-prune", is_flag=True, help="keep untagged parents")
@click.pass_context
def rmi(ctx: click.Context, images: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove images."""
    from capsa.engine.images.types import RemoveImagesOptions

    report = _app(ctx).engine.images.remove(list(images), RemoveImagesOptions(force, no_prune))
    for name in report.untagged:
        click.echo(f"Untagged: {name}")
    for image_id in report.deleted:
        click.echo(f"Deleted: {image_id}")
    from capsa.cli.per_item import DAEMON

    for err in report.errors:
        click.echo(f"{DAEMON}{err}", err=True)  # as Docker's CLI shows its daemon's answer
    if report.errors:
        ctx.exit(1)


# -- inspect / history -----------------------------------------------------


@click.command("inspect")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Go template")
@click.pass_context
def image_inspect(ctx: click.Context, images: tuple[str, ...], fmt: str | None) -> None:
    """Show low-level information about images (Docker's JSON)."""
    from capsa.api import wire
    from capsa.cli.per_item import print_inspected

    reports = _app(ctx).engine.images.inspect_each(list(images))
    print_inspected(ctx, reports, wire.image_inspect, fmt)


@click.command()
@click.argument("image")
@click.option("-H", "--human/--no-human", default=True)
@click.option("--no-trunc", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option("--format", "fmt")
@click.pass_context
def history(
    ctx: click.Context, image: str, human: bool, no_trunc: bool, quiet: bool, fmt: str | None
) -> None:
    """Show the history of an image."""
    entries = _app(ctx).engine.images.history(image)
    rows = []
    for e in entries:
        short = e.id if (no_trunc or e.id == "<missing>") else e.id.removeprefix("sha256:")[:12]
        created_by = (
            e.created_by if no_trunc or len(e.created_by) <= 45 else (e.created_by[:44] + "…")
        )
        rows.append(
            {
                "ID": short,
                "CreatedSince": render.ago(e.created) if human else (e.created or ""),
                "CreatedAt": e.created or "",
                "CreatedBy": created_by,
                "Size": render.human_size(e.size) if human else str(e.size),
                "Comment": e.comment,
            }
        )
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    if fmt:
        render.render_format(
            fmt, rows, {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY"}
        )
        return
    render.print_table(
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        [[r["ID"], r["CreatedSince"], r["CreatedBy"], r["Size"], r["Comment"]] for r in rows],
    )


# -- archives ------------------------------------------------------------------


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write to a file")
@click.option(
    "--format",
    "fmt",
    default="docker-archive",
    type=click.Choice(["docker-archive", "oci-archive"]),
)
@click.pass_context
def save(ctx: click.Context, images: tuple[str, ...], output: str | None, fmt: str) -> None:
    """Save images to a tar archive (stdout by default)."""
    if output is None and sys.stdout.isatty():
        raise InvalidArgument(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
        )
    if output is None:
        _app(ctx).engine.images.save(list(images), sys.stdout.buffer, fmt)
        return
    _app(ctx).engine.images.save_to_file(list(images), output, fmt)


@click.command()
@click.option("-i", "--input", "source", type=click.Path(dir_okay=False, exists=True))
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def load(ctx: click.Context, source: str | None, quiet: bool) -> None:
    """Load images from a tar archive (stdin by default)."""
    if source is None and sys.stdin.isatty():
        raise InvalidArgument("requested load from stdin, but stdin is empty")
    if source is None:
        loaded = _app(ctx).engine.images.load(sys.stdin.buffer)
    else:
        with open(source, "rb") as f:
            loaded = _app(ctx).engine.images.load(f)
    for name in loaded:
        prefix = "Loaded image ID" if name.startswith("sha256:") else "Loaded image"
        click.echo(f"{prefix}: {name}")


@click.command("import")
@click.argument("source")
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Dockerfile instruction")
@click.option("-m", "--message", default="")
@click.option("--platform")
@click.pass_context
def import_cmd(
    ctx: click.Context,
    source: str,
    reference: str | None,
    changes: tuple[str, ...],
    message: str,
    platform: str | None,
) -> None:
    """Create an image from a rootfs tarball (file or '-' for stdin)."""
    from capsa.engine.images.types import ImportOptions

    opts = ImportOptions(
        reference=reference, changes=list(changes), message=message, platform=platform
    )
    if source == "-":
        summary = _app(ctx).engine.images.import_image(sys.stdin.buffer, opts)
    else:
        try:
            f = open(source, "rb")  # noqa: SIM115
        except OSError as e:
            raise InvalidArgument(f"cannot open {source}: {e.strerror}") from None
        with f:
            summary = _app(ctx).engine.images.import_image(f, opts)
    click.echo(summary.id)


# -- prune / df ------------------------------------------------------------------


@click.command()
@click.option("-a", "--all", "all_images", is_flag=True, help="also unused tagged images")
@click.option("-f", "--force", is_flag=True, help="do not ask")
@click.option("--filter", "filters", multiple=True, help="until=, label=, label!=, dangling=")
@click.pass_context
def prune(ctx: click.Context, all_images: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images."""
    from capsa.syntax.filters import parse_filters

    parsed = parse_filters(filters)
    if not force:
        what = "all images without at least one container" if all_images else "all dangling images"
        if not click.confirm(
            f"WARNING! This will remove {what}.\nAre you sure you want to continue?", default=False
        ):
            return
    report = _app(ctx).engine.images.prune(all_images, parsed)
    if report.deleted or report.untagged:
        click.echo("Deleted Images:")
        for name in report.untagged:
            click.echo(f"untagged: {name}")
        for image_id in report.deleted:
            click.echo(f"deleted: {image_id}")
        click.echo()
    click.echo(f"Total reclaimed space: {render.human_size(report.space_reclaimed, 4)}")


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="each image, container and volume")
@click.option("--format", "fmt", help="'table', 'json' or a Go template")
@click.pass_context
def df(ctx: click.Context, verbose: bool, fmt: str | None) -> None:
    """Show disk usage."""
    from capsa.cli import diskusage

    diskusage.show(_app(ctx), verbose, fmt)


def register(cli: click.Group) -> None:
    image = click.Group("image", help="Manage images.")
    for cmd, names in (
        (images_cmd, ("ls", "list")),
        (pull, ("pull",)),
        (push, ("push",)),
        (rmi, ("rm", "remove")),
        (tag, ("tag",)),
        (image_inspect, ("inspect",)),
        (history, ("history",)),
        (save, ("save",)),
        (load, ("load",)),
        (import_cmd, ("import",)),
        (prune, ("prune",)),
    ):
        for name in names:
            image.add_command(cmd, name)
    cli.add_command(image)
    for cmd, name in (
        (pull, "pull"),
        (push, "push"),
        (images_cmd, "images"),
        (rmi, "rmi"),
        (tag, "tag"),
        (history, "history"),
        (save, "save"),
        (load, "load"),
        (import_cmd, "import"),
        (login, "login"),
        (logout, "logout"),
    ):
        cli.add_command(cmd, name)
    system = cli.commands.get("system")
    if not isinstance(system, click.Group):
        system = click.Group("system", help="Manage capsa.")
        cli.add_command(system)
    system.add_command(df, "df")
