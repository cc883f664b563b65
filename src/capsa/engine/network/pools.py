"""Address pools and subnet selection that avoids every route of the host.

The default network takes 172.17.0.0/16 (Docker's choice), else 10.88.0.0/16 (podman's),
else a /24 of 10.87.0.0/16; user networks take /24s from 10.89.0.0/16 and onwards. A
candidate overlapping a route or address of the host (VPNs, Docker's or podman's bridge
when up, the LAN), a subnet of the root's own networks or one another capsa root of the
host claims (``claims.py``) is skipped.
"""

from __future__ import annotations

import ipaddress
import socket

from capsa.errors import Unavailable
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from pyroute2 import IPRoute


@record(frozen=True)
class AddressPool:
    base: str  # "10.89.0.0/16"
    size: int  # prefix length of each subnet taken from it: 24


DEFAULT_BRIDGE_POOLS = (
    AddressPool("172.17.0.0/16", 16),
    AddressPool("10.88.0.0/16", 16),
    AddressPool("10.87.0.0/16", 24),
)
USER_POOLS = (
    AddressPool("10.89.0.0/16", 24),
    AddressPool("10.90.0.0/15", 24),
    AddressPool("172.18.0.0/15", 16),
    AddressPool("172.20.0.0/14", 16),
    AddressPool("172.24.0.0/14", 16),
    AddressPool("172.28.0.0/14", 16),
    AddressPool("192.168.0.0/16", 20),
)


def candidates(pools: Iterable[AddressPool]) -> Iterator[ipaddress.IPv4Network]:
    for pool in pools:
        base = ipaddress.IPv4Network(pool.base)
        yield from base.subnets(new_prefix=pool.size) if pool.size > base.prefixlen else [base]


def choose(pools: Iterable[AddressPool], used: Iterable[str], routes: Iterable[str]) -> str:
    """The first candidate overlapping neither ``used`` subnets nor host ``routes``."""
    busy = [ipaddress.ip_network(n, strict=False) for n in [*used, *routes]]
    busy4 = [n for n in busy if isinstance(n, ipaddress.IPv4Network)]
    for subnet in candidates(pools):
        if not any(subnet.overlaps(other) for other in busy4):
            return str(subnet)
    raise Unavailable("all predefined address pools have been fully subnetted")


def host_routes(ipr: IPRoute) -> list[str]:
    """IPv4 destinations routed on the host (every table), default routes excluded.

    Addresses configured on interfaces are included: a /32 of an address still marks
    its subnet busy through its ``proto kernel`` route.
    """
    out: list[str] = []
    for msg in ipr.get_routes(family=socket.AF_INET):
        dst_len = msg.get("dst_len")
        if not dst_len:
            continue
        dst = msg.get("dst")
        if dst and not dst.startswith("127."):
            out.append(f"{dst}/{dst_len}")
    for msg in ipr.get_addr(family=socket.AF_INET):
        address = msg.get("address")
        if address and not address.startswith("127."):
            out.append(f"{address}/{msg.get('prefixlen')}")
    return out


def pools_from(raw: object) -> tuple[AddressPool, ...] | None:
    """``default_address_pools`` from settings: ``[{"base": ..., "size": ...}]`` or None."""
    if not raw:
        return None
    out = []
    for item in raw:  # type: ignore[attr-defined]
        base = item["base"] if isinstance(item, dict) else item.base
        size = item["size"] if isinstance(item, dict) else item.size
        out.append(AddressPool(str(base), int(size)))
    return tuple(out)
