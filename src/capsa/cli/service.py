"""``capsa system service``: the Docker Engine API on a unix socket (``capsa.api``)."""

from __future__ import annotations

import os

import click

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cli.main import App


def _listen_fds() -> list[int]:
    """Sockets systemd passed (``LISTEN_FDS``, from fd 3), if they are for us."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return list(range(3, 3 + count))


@click.command("service")
@click.option(
    "--socket",
    "socket_path",
    default="",
    help="Unix socket to listen on (default: api.sock under the run root).",
)
@click.option(
    "--timeout",
    "-t",
    "--time",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Exit after this many idle seconds (0: never).",
)
@click.argument("uri", required=False, default="")
@click.pass_context
def service(ctx: click.Context, socket_path: str, timeout: int, uri: str) -> None:
    """Serve the Docker Engine API (for the docker CLI, docker-py, compose):
    DOCKER_HOST=unix://SOCKET."""
    import asyncio

    from capsa.errors import InvalidArgument

    app: App = ctx.find_root().obj
    if uri:
        if not uri.startswith("unix://"):
            raise InvalidArgument(f"{uri}: only unix:// sockets are served")
        socket_path = socket_path or uri[len("unix://") :]
    path = socket_path or os.path.join(app.settings.runroot, "api.sock")
    fds = _listen_fds()
    from capsa.api.server import serve

    def ready() -> None:
        if not fds:
            click.echo(f"API listening on unix://{path}", err=True)

    asyncio.run(serve(app.settings, path, timeout=timeout, listen_fds=fds, ready=ready))
