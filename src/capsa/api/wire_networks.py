"""Docker's JSON shapes of networks (``network inspect``, ``GET /networks``), built from
the engine's ``Network`` and ``Endpoint`` records. The API and the CLI's ``network
inspect`` both render through here."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.network.types import Endpoint, Network


def _ipam_config(net: Network) -> list[dict[str, str]]:
    config: list[dict[str, str]] = []
    for subnet, gateway, ip_range in (
        (net.subnet, net.gateway, net.ip_range),
        (net.subnet6, net.gateway6, ""),
    ):
        if subnet:
            item = {"Subnet": subnet, "Gateway": gateway}
            if ip_range:
                item["IPRange"] = ip_range
            config.append(item)
    return config


def _container(net: Network, ep: Endpoint) -> dict[str, str]:
    return {
        "Name": ep.container_name,
        "EndpointID": ep.id,
        "MacAddress": ep.mac,
        "IPv4Address": f"{ep.ip}/{ep.prefix_len}" if ep.ip else "",
        "IPv6Address": f"{ep.ip6}/{net.subnet6.split('/')[1]}" if ep.ip6 else "",
    }


def network_inspect(net: Network, endpoints: list[Endpoint]) -> dict[str, Any]:
    """``GET /networks/{id}``: the network with the containers attached to it."""
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv4": True,
        "EnableIPv6": net.ipv6,
        "IPAM": {"Driver": "default", "Options": {}, "Config": _ipam_config(net)},
        "Internal": net.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {ep.container_id: _container(net, ep) for ep in endpoints},
        "Options": dict(sorted(net.options.items())),
        "Labels": dict(sorted(net.labels.items())),
    }


def network_summary(net: Network) -> dict[str, Any]:
    """One entry of ``GET /networks``: as inspect, without the containers (dockerd lists
    them empty too)."""
    return network_inspect(net, [])
