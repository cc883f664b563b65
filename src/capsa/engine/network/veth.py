"""veth pairs: one end on the host bridge, the other inside the container's netns.

The container end is created directly in the target namespace (``net_ns_fd`` on the
peer), so it never appears on the host under a temporary name. Configuring it goes
through an ``IPRoute`` socket opened while the calling *thread* is switched into the
namespace with setns: no fork, safe in a threaded process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket

from capsa.engine.network.bridge import (
    EEXIST,
    IFA_F_NODAD,
    delete_link,
    lookup,
    netlink_error,
    open_iproute,
)
from capsa.errors import Internal, NotFound, os_reason
from capsa.linux import syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyroute2 import IPRoute


def host_ifname(container_id: str, network_id: str) -> str:
    """``veth`` + 11 hex: stable per (container, network), so a crash can be cleaned up."""
    digest = hashlib.sha256(f"{container_id}/{network_id}".encode()).hexdigest()
    return "veth" + digest[:11]


def open_netns(pid: int) -> int:
    try:
        return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"network namespace of process {pid} not found") from None
    except OSError as e:
        raise Internal(f"open network namespace of process {pid}: {os_reason(e)}") from None


@contextlib.contextmanager
def netns_iproute(pid: int) -> Iterator[IPRoute]:
    """An ``IPRoute`` bound to the netns of ``pid`` (the socket keeps its namespace)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = open_netns(pid)
        try:
            syscalls.setns(target, syscalls.CLONE_NEWNET)
            try:
                ipr = open_iproute()
            finally:
                syscalls.setns(own, syscalls.CLONE_NEWNET)
        finally:
            os.close(target)
    finally:
        os.close(own)
    with ipr:
        yield ipr


def create(ipr: IPRoute, host_name: str, pid: int, ifname: str, mtu: int) -> None:
    """The pair ``host_name`` (host) <-> ``ifname`` (in the netns of ``pid``); a stale host end
    left by a crash is replaced."""
    delete(ipr, host_name)
    fd = open_netns(pid)
    try:
        peer = {"ifname": ifname, "net_ns_fd": fd, "mtu": mtu}
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, peer=peer)
    except netlink_error() as e:
        what = f"{ifname} exists in the container" if getattr(e, "code", None) == EEXIST else str(e)
        raise Internal(f"create veth {host_name}: {what}") from None
    finally:
        os.close(fd)


def plug(ipr: IPRoute, host_name: str, bridge_index: int) -> int:
    """Enslave the host end to the bridge and bring it up."""
    index = lookup(ipr, host_name)
    if index is None:
        raise Internal(f"veth {host_name} vanished")
    ipr.link("set", index=index, master=bridge_index, state="up")
    # hairpin: a container reaching its own published port through the host address
    # comes back out of the port it went in (br_netfilter is loaded on these machines)
    ipr.brport("set", index=index, mode=1)
    return index


def delete(ipr: IPRoute, host_name: str) -> None:
    """Delete the host end (its peer dies with it); a missing one is fine."""
    delete_link(ipr, host_name, "veth")


def configure(
    ns: IPRoute,
    ifname: str,
    mac: str,
    addresses: list[tuple[str, int]],
    gateways: list[str],
) -> int:
    """Inside the netns: MAC, addresses, up; lo up; default routes via ``gateways``."""
    index = lookup(ns, ifname)
    if index is None:
        raise Internal(f"interface {ifname} missing in the container")
    ns.link("set", index=index, address=mac)
    for address, prefix_len in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        extra = {"flags": IFA_F_NODAD} if family == socket.AF_INET6 else {}
        ns.addr("add", index=index, address=address, prefixlen=prefix_len, family=family, **extra)
    ns.link("set", index=index, state="up")
    lo = lookup(ns, "lo")
    if lo is not None:
        ns.link("set", index=lo, state="up")
    for gateway in gateways:
        add_default_route(ns, gateway)
    return index


def add_default_route(ns: IPRoute, gateway: str) -> None:
    """A default route via ``gateway`` unless the netns has one (a second network)."""
    family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
    dst = "::/0" if family == socket.AF_INET6 else "0.0.0.0/0"
    try:
        ns.route("add", dst=dst, gateway=gateway, family=family)
    except netlink_error() as e:
        if getattr(e, "code", None) != EEXIST:
            raise Internal(f"add default route via {gateway}: {e}") from None


def free_ifname(ns: IPRoute) -> str:
    """The lowest ``ethN`` not present in the netns."""
    names = {link.get("ifname") for link in ns.get_links()}
    n = 0
    while f"eth{n}" in names:
        n += 1
    return f"eth{n}"


def link_stats(ipr: IPRoute, name: str) -> dict[str, int] | None:
    index = lookup(ipr, name)
    if index is None:
        return None
    stats = ipr.get_links(index)[0].get("stats64") or {}
    keys = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")
    return {k: int(stats.get(k, 0)) for k in keys}
