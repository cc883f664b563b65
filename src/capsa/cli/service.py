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
    "-H",
    "--host",
    "hosts",
    multiple=True,
    help="Listen here too: unix:///PATH or tcp://ADDR:PORT (off loopback only with TLS).",
)
@click.option("--tlscert", default="", help="TLS certificate for tcp:// hosts.")
@click.option("--tlskey", default="", help="TLS key for tcp:// hosts.")
@click.option("--tlscacert", default="", help="Verify clients' certificates with this CA.")
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
def service(
    ctx: click.Context,
    socket_path: str,
    hosts: tuple[str, ...],
    tlscert: str,
    tlskey: str,
    tlscacert: str,
    timeout: int,
    uri: str,
) -> None:
    """Serve the Docker Engine API (for the docker CLI, docker-py, compose):
    DOCKER_HOST=unix://SOCKET."""
    import asyncio

    from capsa.api.server import ServeOptions, TlsFiles, serve
    from capsa.errors import InvalidArgument
    from capsa.syntax.hosts import HostAddress, parse_host

    app: App = ctx.find_root().obj
    if bool(tlscert) != bool(tlskey) or (tlscacert and not tlscert):
        raise InvalidArgument("--tlscert and --tlskey go together (and --tlscacert with them)")
    tls = TlsFiles(tlscert, tlskey, tlscacert) if tlscert else None
    addresses = [parse_host(h, tls is not None) for h in (*hosts, *([uri] if uri else []))]
    if socket_path:
        addresses.insert(0, HostAddress("unix", path=socket_path))
    fds = _listen_fds()
    if not addresses and not fds:
        addresses = [HostAddress("unix", path=os.path.join(app.settings.runroot, "api.sock"))]
    opts = ServeOptions(hosts=addresses, listen_fds=fds, tls=tls, timeout=timeout)

    def ready() -> None:
        for address in addresses:
            click.echo(f"API listening on {address}", err=True)

    asyncio.run(serve(app.settings, opts, ready=ready))
