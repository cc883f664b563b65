"""The API's volumes endpoints: list, create, inspect, remove, prune. Docker's JSON is
turned into the records the CLI builds from its flags (``capsa.cli.volumes``)."""

from __future__ import annotations

from aiohttp import web

from capsa.api import params
from capsa.api.server import api_version, engines
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.volumes.types import VolumeCreateOptions

# API versions before 1.42 prune named volumes too; later ones need the ``all`` filter
_PRUNE_ANONYMOUS_ONLY = (1, 42)


async def list_volumes(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_volumes import volume_list

    filters = params.query_filters(request)
    volumes = await engines(request).call(lambda e: e.volumes.list(filters))
    return web.json_response(volume_list(volumes))


def _string_map(doc: dict[str, Any], name: str) -> dict[str, str]:
    value = params.field(doc, name, dict) or {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidArgument(f"invalid type for field {name}.{key}: expected string")
    return dict(value)


def create_options(doc: dict[str, Any]) -> VolumeCreateOptions:
    """``POST /volumes/create``'s body as the engine's options (``volume create``)."""
    from capsa.engine.volumes.types import VolumeCreateOptions

    if params.field(doc, "ClusterVolumeSpec", dict):
        raise InvalidArgument("cluster volumes need swarm mode, which is not supported")
    return VolumeCreateOptions(
        name=params.field(doc, "Name", str) or None,
        driver=params.field(doc, "Driver", str) or "local",
        labels=_string_map(doc, "Labels"),
        driver_opts=_string_map(doc, "DriverOpts"),
    )


async def create(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_volumes import volume_inspect

    opts = create_options(await params.json_body(request, required=False))
    volume = await engines(request).call(lambda e: e.volumes.create(opts))
    return web.json_response(volume_inspect(volume), status=201)


async def inspect(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_volumes import volume_inspect

    name = request.match_info["name"]
    volume = await engines(request).call(lambda e: e.volumes.get(name))
    return web.json_response(volume_inspect(volume))


async def remove(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    force = params.query_bool(request, "force")
    await engines(request).call(lambda e: e.volumes.remove(name, force))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_volumes import volume_prune

    filters = params.query_filters(request)
    every = api_version(request) < _PRUNE_ANONYMOUS_ONLY
    report = await engines(request).call(lambda e: e.volumes.prune(filters, all_volumes=every))
    return web.json_response(volume_prune(report))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/volumes", list_volumes),
        web.post("/volumes/create", create),
        web.post("/volumes/prune", prune),
        web.get("/volumes/{name}", inspect),
        web.delete("/volumes/{name}", remove),
    ]
