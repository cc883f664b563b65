"""Address plans: validated network definitions, the next free address, MACs.

Pure functions; ``store.NetworkStore`` calls them inside a ``BEGIN IMMEDIATE``
transaction so that concurrent leases never get the same address.
"""

from __future__ import annotations

import ipaddress
import re

from capsa.engine.network.types import OPT_BRIDGE_NAME, OPT_MTU, Network, NetworkCreateOptions
from capsa.errors import Conflict, InvalidArgument

MAX_IFNAME = 15

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_subnet(text: str) -> IPNetwork:
    """``10.1.2.0/24``; host bits set (``10.1.2.3/24``) are refused as docker does."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet {text}: {e}") from None


def parse_address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid ip address {text}") from None


def default_gateway(subnet: IPNetwork) -> str:
    """The first host address of the subnet, as docker and podman choose."""
    if subnet.num_addresses < 4:
        raise InvalidArgument(f"subnet {subnet} is too small")
    return str(subnet.network_address + 1)


def check_gateway(subnet: IPNetwork, gateway: str) -> str:
    addr = parse_address(gateway)
    if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"gateway {gateway} is not a host address of subnet {subnet}")
    return str(addr)


def check_range(subnet: IPNetwork, ip_range: str) -> str:
    """``--ip-range`` must lie inside the subnet."""
    rng = parse_subnet(ip_range)
    if rng.version != subnet.version or not rng.subnet_of(subnet):  # type: ignore[arg-type]
        raise InvalidArgument(f"ip range {ip_range} is not inside subnet {subnet}")
    return str(rng)


def _hosts(subnet: IPNetwork, ip_range: str) -> Iterator[IPAddress]:
    """Leasable addresses: not the network address, not the IPv4 broadcast."""
    pool = parse_subnet(ip_range) if ip_range else subnet
    make = ipaddress.IPv4Address if subnet.version == 4 else ipaddress.IPv6Address
    reserved = {int(subnet.network_address)}
    if subnet.version == 4:
        reserved.add(int(subnet.broadcast_address))
    for value in range(int(pool.network_address), int(pool.broadcast_address) + 1):
        if value not in reserved:
            yield make(value)


def next_free(subnet: str, gateway: str, taken: Collection[str], ip_range: str = "") -> str:
    """The lowest address of ``ip_range`` (or the subnet) that is neither taken nor the gateway."""
    net = parse_subnet(subnet)
    for addr in _hosts(net, ip_range):
        text = str(addr)
        if text != gateway and text not in taken:
            return text
    raise Conflict(f"no available ip addresses on network with subnet {subnet}")


def check_requested(subnet: str, gateway: str, taken: Collection[str], ip: str) -> str:
    """A user-chosen ``--ip``: inside the subnet, not the gateway, not leased."""
    net = parse_subnet(subnet)
    addr = parse_address(ip)
    if addr.version != net.version or addr not in net:
        raise InvalidArgument(f"ip {ip} is not in subnet {subnet}")
    if addr in (net.network_address, net.broadcast_address) or str(addr) == gateway:
        raise InvalidArgument(f"ip {ip} is reserved on subnet {subnet}")
    if str(addr) in taken:
        raise Conflict(f"address {ip} already in use")
    return str(addr)


def mac_for(ip: str) -> str:
    """Docker's MAC for an IPv4 address: ``02:42`` followed by the address bytes."""
    packed = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def check_mac(mac: str) -> str:
    parts = mac.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and _is_hex(p) for p in parts):
        raise InvalidArgument(f"invalid mac address {mac}")
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"mac address {mac} is a multicast address")
    return ":".join(parts)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def ula_subnet(network_id: str) -> str:
    """A unique-local /64 derived from the network id, when ``--ipv6`` has no subnet."""
    h = network_id
    return str(ipaddress.IPv6Network(f"fd{h[:2]}:{h[2:6]}:{h[6:10]}:{h[10:14]}::/64"))


def check_name(name: str) -> None:
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name or ""):
        raise InvalidArgument(f"invalid network name {name!r}")


def new_network(opts: NetworkCreateOptions, network_id: str, created: str) -> Network:
    """The record for ``opts``, validated; ``subnet`` stays empty when it is to be chosen."""
    options = dict(opts.options)
    name = options.get(OPT_BRIDGE_NAME) or "capsa-" + network_id[:9]
    if len(name) > MAX_IFNAME or "/" in name or " " in name:
        raise InvalidArgument(f"invalid bridge name {name}")
    net = Network(
        id=network_id,
        name=opts.name,
        bridge=name,
        internal=opts.internal,
        labels=dict(opts.labels),
        options=options,
        created=created,
    )
    net.mtu = parse_mtu(options.get(OPT_MTU, ""))
    if opts.subnet:
        subnet = parse_subnet(opts.subnet)
        if subnet.version != 4:
            raise InvalidArgument(f"subnet {opts.subnet} is not an ipv4 subnet")
        net.subnet = str(subnet)
        net.gateway = (
            check_gateway(subnet, opts.gateway) if opts.gateway else default_gateway(subnet)
        )
        net.ip_range = check_range(subnet, opts.ip_range) if opts.ip_range else ""
    elif opts.gateway or opts.ip_range:
        raise InvalidArgument("gateway and ip range need a subnet")
    if opts.ipv6 or opts.subnet6:
        subnet6 = parse_subnet(opts.subnet6 or ula_subnet(network_id))
        if subnet6.version != 6:
            raise InvalidArgument(f"subnet {opts.subnet6} is not an ipv6 subnet")
        net.ipv6, net.subnet6 = True, str(subnet6)
        net.gateway6 = (
            check_gateway(subnet6, opts.gateway6) if opts.gateway6 else default_gateway(subnet6)
        )
    return net


def parse_mtu(text: str) -> int:
    if not text:
        return 1500
    if not text.isdigit() or not 68 <= int(text) <= 65535:
        raise InvalidArgument(f"invalid mtu {text}")
    return int(text)


def check_conflicts(net: Network, existing: list[Network]) -> None:
    mine = ipaddress.ip_network(net.subnet)
    for other in existing:
        if other.bridge == net.bridge:
            raise Conflict(f"bridge {net.bridge} is used by network {other.name}")
        if other.subnet and mine.overlaps(ipaddress.ip_network(other.subnet)):
            raise Conflict(f"subnet {net.subnet} overlaps with network {other.name}")
