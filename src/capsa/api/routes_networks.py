"""The API's networks endpoints: list, inspect, create, connect, disconnect, remove,
prune. Docker's JSON is turned into the records the CLI builds from its flags
(``capsa.cli.networks``) and the engine does the rest."""

from __future__ import annotations

from aiohttp import web

from capsa.api import params
from capsa.api.server import engines
from capsa.errors import Conflict, InvalidArgument, NotFound, PermissionDenied

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.local import LocalEngine
    from capsa.engine.network.types import NetworkCreateOptions


async def list_networks(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_networks import network_summary

    filters = params.query_filters(request)
    nets = await engines(request).call(lambda e: e.networks.list(filters))
    return web.json_response([network_summary(n) for n in nets])


async def inspect(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_networks import network_inspect

    name = request.match_info["id"]
    scope = params.query_str(request, "scope")
    params.query_bool(request, "verbose")  # swarm services: none here
    if scope and scope != "local":
        raise NotFound(f"network {name} not found")

    def read(e: LocalEngine) -> dict[str, Any]:
        net = e.networks.get(name)
        return network_inspect(net, e.networks.endpoints_of(net))

    return web.json_response(await engines(request).call(read))


def _string_map(doc: dict[str, Any], name: str) -> dict[str, str]:
    value = params.field(doc, name, dict) or {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidArgument(f"invalid type for field {name}.{key}: expected string")
    return dict(value)


def create_options(doc: dict[str, Any]) -> NetworkCreateOptions:
    """``POST /networks/create``'s body as the engine's options (``network create``)."""
    from capsa.engine.network.types import NetworkCreateOptions

    name = params.field(doc, "Name", str)
    if not name:
        raise InvalidArgument("network name is required (field Name)")
    driver = params.field(doc, "Driver", str) or "bridge"
    for flag in ("CheckDuplicate", "Attachable", "Ingress", "ConfigOnly", "EnableIPv4"):
        params.field(doc, flag, bool)
    if doc.get("Ingress"):
        raise InvalidArgument("ingress networks need swarm mode, which is not supported")
    if doc.get("ConfigOnly") or (params.field(doc, "ConfigFrom", dict) or {}).get("Network"):
        raise InvalidArgument("config-only networks are not supported")
    if doc.get("EnableIPv4") is False:
        raise InvalidArgument("networks without IPv4 are not supported")
    scope = params.field(doc, "Scope", str)
    if scope and scope != "local":
        raise InvalidArgument(f"scope {scope} is not supported: networks are local")
    v4: list[dict[str, Any]] = []
    v6: list[dict[str, Any]] = []
    ipam = params.field(doc, "IPAM", dict) or {}
    ipam_driver = params.field(ipam, "Driver", str, where="IPAM")
    if ipam_driver not in (None, "", "default"):
        raise InvalidArgument(f"IPAM driver {ipam_driver} is not supported")
    for i, item in enumerate(params.field(ipam, "Config", list, where="IPAM") or []):
        if not isinstance(item, dict):
            raise InvalidArgument(f"invalid type for field IPAM.Config[{i}]: expected object")
        where = f"IPAM.Config[{i}]"
        for key in ("Subnet", "Gateway", "IPRange"):
            params.field(item, key, str, where=where)
        subnet = item.get("Subnet") or ""
        (v6 if ":" in subnet or ":" in (item.get("Gateway") or "") else v4).append(item)
    if len(v4) > 1 or len(v6) > 1:
        raise InvalidArgument("one IPAM config (subnet) per address family is supported")
    first = v4[0] if v4 else {}
    first6 = v6[0] if v6 else {}
    if first6.get("IPRange"):
        raise InvalidArgument("an IPv6 IPRange is not supported")
    ipv6 = bool(params.field(doc, "EnableIPv6", bool)) or bool(first6.get("Subnet"))
    return NetworkCreateOptions(
        name=name,
        driver=driver,
        subnet=first.get("Subnet") or "",
        gateway=first.get("Gateway") or "",
        ip_range=first.get("IPRange") or "",
        internal=bool(params.field(doc, "Internal", bool)),
        ipv6=ipv6,
        subnet6=first6.get("Subnet") or "",
        gateway6=first6.get("Gateway") or "",
        labels=_string_map(doc, "Labels"),
        options=_string_map(doc, "Options"),
    )


async def create(request: web.Request) -> web.StreamResponse:
    opts = create_options(await params.json_body(request))
    net = await engines(request).call(lambda e: e.networks.create(opts))
    return web.json_response({"Id": net.id, "Warning": ""}, status=201)


async def connect(request: web.Request) -> web.StreamResponse:
    network = request.match_info["id"]
    doc = await params.json_body(request)
    container = params.field(doc, "Container", str)
    if not container:
        raise InvalidArgument("a container is required (field Container)")
    config = params.field(doc, "EndpointConfig", dict) or {}
    aliases = params.field(config, "Aliases", list, where="EndpointConfig") or []
    if not all(isinstance(a, str) for a in aliases):
        raise InvalidArgument("invalid type for field EndpointConfig.Aliases: expected strings")
    ipam = params.field(config, "IPAMConfig", dict, where="EndpointConfig") or {}
    ip = params.field(ipam, "IPv4Address", str, where="EndpointConfig.IPAMConfig") or ""
    if params.field(ipam, "IPv6Address", str, where="EndpointConfig.IPAMConfig"):
        raise InvalidArgument("a fixed IPv6 address is not supported")

    def join(e: LocalEngine) -> None:
        e.networks.get(network)  # a missing network is named before the container
        e.containers.network_connect(container, network, aliases=list(aliases), ip=ip)

    await engines(request).call(join)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.StreamResponse:
    network = request.match_info["id"]
    doc = await params.json_body(request)
    container = params.field(doc, "Container", str)
    if not container:
        raise InvalidArgument("a container is required (field Container)")
    force = bool(params.field(doc, "Force", bool))

    def leave(e: LocalEngine) -> None:
        e.networks.get(network)
        try:
            e.containers.get(container)
        except NotFound:
            if not force:
                raise
            # a removed container's leftovers (as ``network disconnect -f``)
            e.networks.disconnect(network, container, 0)
            return
        e.containers.network_disconnect(container, network, force=force)

    await engines(request).call(leave)
    return web.Response(status=200)


async def remove(request: web.Request) -> web.StreamResponse:
    name = request.match_info["id"]

    def drop(e: LocalEngine) -> None:
        net = e.networks.get(name)
        try:
            e.networks.remove(net.id)
        except Conflict as err:  # pre-defined or in use: dockerd answers 403 for both
            raise PermissionDenied(str(err)) from None

    await engines(request).call(drop)
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    filters = params.query_filters(request)
    removed = await engines(request).call(lambda e: e.networks.prune(filters))
    return web.json_response({"NetworksDeleted": removed})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/networks", list_networks),
        web.get("/networks/", list_networks),
        web.post("/networks/create", create),
        web.post("/networks/prune", prune),
        web.get("/networks/{id}", inspect),
        web.post("/networks/{id}/connect", connect),
        web.post("/networks/{id}/disconnect", disconnect),
        web.delete("/networks/{id}", remove),
    ]
