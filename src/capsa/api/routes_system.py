"""``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``."""

from __future__ import annotations

import json
import time

from aiohttp import web

from capsa.api import params
from capsa.api.server import MIN_VERSION, VERSION, engines
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from capsa.engine.local import LocalEngine


def _ping_headers() -> dict[str, str]:
    return {
        "API-Version": VERSION,
        "Ostype": "linux",
        "Docker-Experimental": "false",
        "Builder-Version": "1",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }


async def ping(request: web.Request) -> web.StreamResponse:
    headers = _ping_headers()
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Type": "text/plain; charset=utf-8"})
    return web.Response(text="OK", headers=headers)


def version_doc() -> dict[str, Any]:
    import os
    import platform

    from capsa import __version__

    kernel = os.uname().release
    components = [
        {
            "Name": "Engine",
            "Version": __version__,
            "Details": {
                "ApiVersion": VERSION,
                "MinAPIVersion": MIN_VERSION,
                "Os": "linux",
                "Arch": _arch(),
                "KernelVersion": kernel,
                "PythonVersion": platform.python_version(),
            },
        }
    ]
    return {
        "Platform": {"Name": "capsa"},
        "Components": components,
        "Version": __version__,
        "ApiVersion": VERSION,
        "MinAPIVersion": MIN_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": _arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    }


def _arch() -> str:
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def version(request: web.Request) -> web.StreamResponse:
    return web.json_response(version_doc(), headers=_ping_headers())


async def info(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_system import docker_info

    data = await engines(request).call(lambda e: e.system.info())
    return web.json_response(docker_info(data))


def _timestamp(request: web.Request, name: str) -> float | None:
    """Docker's ``since``/``until``: unix seconds, fractions allowed (``1700000000.5``),
    or a duration before now (``10m``)."""
    text = request.query.get(name, "")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    from capsa.syntax.durations import parse_duration

    try:
        return time.time() - parse_duration(text)
    except InvalidArgument:
        raise InvalidArgument(f"invalid value for {name}: {text!r}: not a timestamp") from None


async def events(request: web.Request) -> web.StreamResponse:
    from capsa.api.streaming import iterate

    since = _timestamp(request, "since")
    until = _timestamp(request, "until")
    filters = params.query_filters(request)
    if since is None and until is None:
        since = time.time()

    def make(engine: LocalEngine, gone: Callable[[], bool]) -> Iterator[dict[str, Any]]:
        return engine.events.stream(since, until, filters, stop=gone)

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for event in iterate(engines(request), make):
        await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
    await response.write_eof()
    return response


async def disk_usage(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_system import disk_usage as doc

    def report(engine: LocalEngine) -> dict[str, Any]:
        return doc(engine.containers, engine.system.disk_usage())

    return web.json_response(await engines(request).call(report))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/_ping", ping, allow_head=False),
        web.head("/_ping", ping),
        web.get("/version", version),
        web.get("/info", info),
        web.get("/events", events),
        web.get("/system/df", disk_usage),
    ]
