"""A container's networking, as the monitor and the engine need it: which network a
container joins, its published ports, attach/detach around the runtime's create and
the container's exit, and the /etc files that depend on the address. ``-p`` specs are
read by ``capsa.syntax.network.parse_publish``."""

from __future__ import annotations

import os

from capsa.errors import CapsaError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.containers.paths import ContainerPaths
    from capsa.engine.containers.types import ContainerRecord, ContainerSpec
    from capsa.engine.network.types import Endpoint, PortMapping
    from capsa.engine.service_context import ServiceContext

NO_NETWORK = ("none", "host")


def network_of(spec: ContainerSpec) -> str | None:
    """The network the container is attached to at start ("bridge" = the default)."""
    mode = spec.network_mode or "bridge"
    if mode in NO_NETWORK or mode.startswith("container:"):
        return None
    return mode


def free_port(proto: str, host_ip: str = "") -> int:
    import socket

    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host_ip or "0.0.0.0", 0))
        port: int = s.getsockname()[1]
        return port


def resolve_ports(spec: ContainerSpec, exposed: dict[str, Any] | None) -> list[PortMapping]:
    """The container's published ports with random host ports chosen (-p N, -P)."""
    from capsa.engine.network.types import PortMapping

    ports = [PortMapping(p.host_port, p.container_port, p.protocol, p.host_ip) for p in spec.ports]
    if spec.publish_all:
        for key in sorted(exposed or {}):
            port, _, proto = key.partition("/")
            if not any(
                p.container_port == int(port) and p.protocol == (proto or "tcp") for p in ports
            ):
                ports.append(PortMapping(0, int(port), proto or "tcp"))
    for p in ports:
        if not p.host_port:
            p.host_port = free_port(p.protocol, p.host_ip)
    if ports and network_of(spec) is None:
        raise InvalidArgument(
            f"published ports need a bridge network (not --network {spec.network_mode})"
        )
    return ports


def attach(ctx: ServiceContext, rec: ContainerRecord, pid: int) -> list[Endpoint]:
    """Put the new container's network namespace on its networks (before start)."""
    from capsa.engine.containers.types import NetworkAttachment
    from capsa.engine.network.types import AttachRequest

    name = network_of(rec.spec)
    if name is None:
        return []
    spec = rec.spec
    first = NetworkAttachment(name, list(spec.aliases), spec.ip)
    networks = [first, *[a for a in spec.networks if a.name != name]]
    r = spec.resources
    endpoints = []
    for i, net in enumerate(networks):
        req = AttachRequest(
            container_id=rec.id,
            container_name=rec.name,
            pid=pid,
            network=net.name,
            aliases=list(net.aliases),
            ip=net.ip,
            mac=spec.mac_address if i == 0 else "",
            ports=list(spec.ports) if i == 0 else [],
            rate_in_bps=r.network_rate_in,
            rate_out_bps=r.network_rate_out,
        )
        endpoints.append(ctx.networks.attach(req))
    return endpoints


def detach(ctx: ServiceContext, container_id: str, keep_idle: bool = False) -> None:
    try:
        ctx.networks.detach(container_id, keep_idle=keep_idle)
    except CapsaError:
        pass


def add_own_address(paths: ContainerPaths, hostname: str, endpoints: list[Endpoint]) -> None:
    """/etc/hosts gets the container's address (rewritten in place: it is bind-mounted)."""
    if not endpoints:
        return
    with open(paths.hosts) as f:
        lines = [ln for ln in f.read().splitlines() if not ln.endswith(f"\t{hostname}")]
    lines += [f"{ep.ip}\t{hostname}" for ep in endpoints[:1]]
    fd = os.open(paths.hosts, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def dns_servers(ctx: ServiceContext, spec: ContainerSpec) -> dict[str, Any] | None:
    """nameserver/search for a container on a user network (the embedded DNS)."""
    name = network_of(spec)
    if name is None or name == "bridge":
        return None
    try:
        conf: dict[str, Any] | None = ctx.networks.resolv_conf([name])
        return conf
    except CapsaError:
        return None
