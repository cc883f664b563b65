"""The Docker Engine API on a unix socket: an aiohttp application over the engine.

Routes come from the ``routes_*`` modules, each served at ``/PATH`` and at
``/vX.Y/PATH`` for every API version from ``MIN_VERSION`` to ``VERSION``. Errors are
Docker's ``{"message": ...}`` with the status of their kind (``capsa.api.statuses``);
nothing reaches a client as a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket

from aiohttp import web

from capsa.api.engines import Engines
from capsa.api.statuses import status_of
from capsa.engine.children import reap
from capsa.errors import CapsaError, FailedPrecondition, InvalidArgument, os_reason
from capsa.record import field, record
from capsa.syntax.hosts import HostAddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

    from capsa.config import Settings

VERSION = "1.50"
MIN_VERSION = "1.24"
ENGINES: web.AppKey[Engines] = web.AppKey("engines", Engines)
ROUTE_MODULES = (
    "capsa.api.routes_system",
    "capsa.api.routes_containers",
    "capsa.api.routes_streams",
    "capsa.api.routes_exec",
    "capsa.api.routes_images",
    "capsa.api.routes_networks",
    "capsa.api.routes_volumes",
    "capsa.api.routes_capsa",
)

log = logging.getLogger("capsa.api")


def engines(request: web.Request) -> Engines:
    return request.app[ENGINES]


def api_version(request: web.Request) -> tuple[int, int]:
    """The version the client's path names (the newest when it names none)."""
    got: tuple[int, int] | None = request.get("api_version")
    return got or _parse(VERSION)


def _parse(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def error_response(status: int, message: str) -> web.Response:
    """Docker's error document. The content type is exactly ``application/json`` (no
    charset): the docker CLI shows the message only then, the raw JSON otherwise."""
    body = json.dumps({"message": message}).encode()
    return web.Response(body=body, status=status, content_type="application/json")


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except CapsaError as e:
        return error_response(status_of(e), str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = "page not found" if e.status == 404 else (e.reason or "error").lower()
        return error_response(e.status, message)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as e:  # a bug: say so in one line, log the rest
        log.exception("%s %s", request.method, request.path)
        return error_response(500, f"internal error: {type(e).__name__}: {e}")


@web.middleware
async def _version(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """``/vX.Y/PATH`` serves ``/PATH`` for clients of versions ``MIN_VERSION`` to
    ``VERSION``, Docker's words for the others."""
    text = request.match_info.get("api_version")
    if text:
        wanted = _parse(text)
        if wanted > _parse(VERSION):
            raise InvalidArgument(
                f"client version {text} is too new. Maximum supported API version is {VERSION}"
            )
        if wanted < _parse(MIN_VERSION):
            raise InvalidArgument(
                f"client version {text} is too old. Minimum supported API version is "
                f"{MIN_VERSION}, please upgrade your client to a newer version"
            )
        request["api_version"] = wanted
    return await handler(request)


def make_app(settings: Settings) -> web.Application:
    import importlib

    app = web.Application(middlewares=[_errors, _version], client_max_size=0)
    app[ENGINES] = Engines(settings)
    for name in ROUTE_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "setup"):
            module.setup(app)
        for route in module.routes():
            app.router.add_route(route.method, route.path, route.handler)
            app.router.add_route(
                route.method, r"/v{api_version:\d+\.\d+}" + route.path, route.handler
            )

    async def close(app: web.Application) -> None:
        app[ENGINES].close()

    app.on_cleanup.append(close)
    return app


def json_dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"))


class Idle:
    """Counts requests in flight; ``expired`` when none ran for ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.active = 0
        self.last = asyncio.get_running_loop().time()

    def expired(self) -> bool:
        if self.timeout <= 0 or self.active:
            return False
        return asyncio.get_running_loop().time() - self.last >= self.timeout


@record
class TlsFiles:
    cert: str
    key: str
    ca: str = ""  # given: clients must present a certificate it signed


@record
class ServeOptions:
    """Where the service listens: unix sockets and TCP addresses (``capsa.syntax.hosts``),
    or the sockets systemd handed over; ``timeout``: idle seconds before it exits."""

    hosts: list[HostAddress] = field(default_factory=list)
    listen_fds: list[int] = field(default_factory=list)
    tls: TlsFiles | None = None
    timeout: float = 0


def check_hosts(opts: ServeOptions) -> None:
    """A TCP listener off loopback only with TLS (the API is root on this machine)."""
    for host in opts.hosts:
        if host.scheme == "tcp" and not host.loopback and opts.tls is None:
            raise InvalidArgument(
                f"{host}: refusing to serve the API without TLS on a non-loopback address "
                "(give --tlscert and --tlskey, and --tlscacert to verify clients)"
            )


def _ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert, tls.key)
        if tls.ca:
            context.load_verify_locations(tls.ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise InvalidArgument(f"TLS material: {e}") from None
    return context


async def serve(
    settings: Settings, opts: ServeOptions, ready: Callable[[], None] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT or ``opts.timeout`` idle seconds (0: forever)."""
    import signal

    check_hosts(opts)
    context = _ssl_context(opts.tls) if opts.tls is not None else None
    app = make_app(settings)
    idle = Idle(opts.timeout)

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        idle.active += 1
        try:
            return await handler(request)
        finally:
            idle.active -= 1
            idle.last = asyncio.get_running_loop().time()

    app.middlewares.insert(0, count)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,  # a client that hangs up ends its stream
        shutdown_timeout=3,
    )
    await runner.setup()
    sites: list[web.BaseSite] = []
    bound: list[tuple[str, int]] = []  # our socket files, to remove at the end
    try:
        for fd in opts.listen_fds:
            sites.append(web.SockSite(runner, socket.socket(fileno=fd)))
        for host in opts.hosts:
            if host.scheme == "unix":
                sock = _bind(host.path)
                bound.append((host.path, os.stat(host.path).st_ino))
                sites.append(web.SockSite(runner, sock))
            else:
                sites.append(web.TCPSite(runner, host.host, host.port, ssl_context=context))
        for site in sites:
            await site.start()
    except OSError as e:
        await runner.cleanup()
        for path, inode in bound:
            _unlink_if_ours(path, inode)
        raise FailedPrecondition(f"cannot listen: {os_reason(e)}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                reap()  # the monitors and exec watchers spawned, once they end
                if idle.expired():
                    break
    finally:
        await runner.cleanup()
        for path, inode in bound:
            _unlink_if_ours(path, inode)


def _bind(path: str) -> socket.socket:
    """A listening unix socket at ``path``, mode 0660 (root's group may use it); a
    stale socket file is replaced, a live one is an error."""
    os.makedirs(os.path.dirname(path) or ".", 0o711, exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        pass
    else:
        probe.close()
        raise FailedPrecondition(f"{path}: a service already listens there")
    probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    sock.listen(128)
    return sock


def _unlink_if_ours(path: str, inode: int) -> None:
    """Remove our socket file (not one a newer service bound since)."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass
