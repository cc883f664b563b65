"""Linux bridges for networks: created with the gateway address, up; removed with the network."""

from __future__ import annotations

import socket

from capsa.errors import Conflict, Internal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyroute2 import IPRoute

EEXIST = 17
ENODEV = 19
EADDRNOTAVAIL = 99
IFA_F_NODAD = 0x02
MAX_IFNAME = 15


def open_iproute() -> IPRoute:
    """A netlink socket in the caller's netns; pyroute2 is imported here, on first use
    (importing it costs over 100 ms, which ``network ls`` should not pay)."""
    from pyroute2 import IPRoute

    return IPRoute()


def netlink_error() -> type[Exception]:
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def lookup(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def ensure(ipr: IPRoute, name: str, mtu: int, addresses: list[tuple[str, int]]) -> int:
    """The bridge ``name`` with ``addresses`` (ip, prefix len), up; idempotent and race-safe."""
    index = lookup(ipr, name)
    if index is None:
        try:
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
        except netlink_error() as e:
            if getattr(e, "code", None) != EEXIST:  # another process made it meanwhile
                raise Internal(f"create bridge {name}: {e}") from None
        index = lookup(ipr, name)
        if index is None:
            raise Internal(f"bridge {name} vanished after creation")
    kind = ipr.get_links(index)[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    if kind != "bridge":
        raise Conflict(f"interface {name} exists and is not a bridge")
    for address, prefix_len in addresses:
        add_address(ipr, index, address, prefix_len)
    ipr.link("set", index=index, state="up")
    return index


def add_address(ipr: IPRoute, index: int, address: str, prefix_len: int) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    extra = {"flags": IFA_F_NODAD} if family == socket.AF_INET6 else {}
    try:
        ipr.addr("add", index=index, address=address, prefixlen=prefix_len, family=family, **extra)
    except netlink_error() as e:
        if getattr(e, "code", None) != EEXIST:
            raise Internal(f"add address {address}/{prefix_len}: {e}") from None


def remove(ipr: IPRoute, name: str) -> None:
    """Delete the bridge; a missing one is fine."""
    delete_link(ipr, name, "bridge")


def delete_link(ipr: IPRoute, name: str, kind: str) -> None:
    """Delete link ``name`` (a ``kind`` for the error message); a missing one is fine."""
    index = lookup(ipr, name)
    if index is None:
        return
    try:
        ipr.link("del", index=index)
    except netlink_error() as e:
        if getattr(e, "code", None) != ENODEV:
            raise Internal(f"delete {kind} {name}: {e}") from None


def mtu_of(ipr: IPRoute, name: str) -> int:
    index = lookup(ipr, name)
    if index is None:
        return 0
    return int(ipr.get_links(index)[0].get("mtu") or 0)
