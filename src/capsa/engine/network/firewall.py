"""capsa's nftables table: outbound NAT, published ports, isolation between networks.

Everything lives in one table (``inet capsa``); other tables are never touched. Each
change is one libnftables JSON batch, so the kernel applies it atomically. Layout::

    forward     (filter)      ct state established,related accept
                              iifname vmap @from-bridge   -> net-<id12>-from
                              oifname vmap @to-bridge     -> net-<id12>-to
    prerouting  (nat dstnat)  fib daddr type local jump ports
    output      (nat -100)    fib daddr type local jump ports    (host clients, 127.0.0.1)
    postrouting (nat srcnat)  ip saddr 127.0.0.0/8 ct status dnat masquerade
                              ip saddr vmap @nat-src4     -> net-<id12>-nat
    ports                     jump ports-<container id12>-<network id12>, one per endpoint

Per network: ``-from`` accepts traffic staying on the bridge, DNAT'd traffic (published
ports, hairpin) and the way out, and drops traffic to other capsa bridges (isolation);
``-to`` admits only DNAT'd traffic; ``-nat`` masquerades what leaves through another
interface and hairpin traffic coming back into the bridge. Internal networks drop
everything that does not stay on their bridge. The ``bridges`` set names every bridge.

Changes that read the table first (handles, stale elements, "is this the last
network") hold ``lock_path()`` so that two processes cannot interleave them; the
table is dropped with its last network.

The builders (``base_batch``, ``network_batch``, ``publish_batch``...) are pure so
tests can check them without a kernel.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from capsa.engine.network import nft
from capsa.engine.network.nft import ACCEPT, DROP, MASQUERADE, Command, Nft, Table
from capsa.errors import InvalidArgument, NotFound, Unavailable, os_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from capsa.engine.network.types import Endpoint, Network, PortMapping

TABLE = "capsa"
FAMILY = "inet"
PROTOCOLS = ("tcp", "udp", "sctp")
BASE_CHAINS = (
    ("forward", "filter", "forward", 0),
    ("prerouting", "nat", "prerouting", -100),
    ("output", "nat", "output", -100),
    ("postrouting", "nat", "postrouting", 100),
)
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
LOCK_DIR = "/run/lock"


def net_chains(net_id: str) -> tuple[str, str, str]:
    """The (from, to, nat) chains of a network."""
    base = f"net-{net_id[:12]}"
    return f"{base}-from", f"{base}-to", f"{base}-nat"


def ports_chain(ep: Endpoint) -> str:
    return f"ports-{ep.container_id[:12]}-{ep.network_id[:12]}"


# -- pure batch builders ---------------------------------------------------------


def skeleton_batch(t: Table) -> list[Command]:
    """Idempotent adds of the table, its chains, sets and maps (no rules)."""
    batch = [t.table("add"), t.chain("add", "ports")]
    batch += [t.base_chain(*spec) for spec in BASE_CHAINS]
    batch += [
        t.set("bridges", "ifname"),
        t.set("from-bridge", "ifname", data="verdict"),
        t.set("to-bridge", "ifname", data="verdict"),
        t.set("nat-src4", "ipv4_addr", data="verdict", interval=True),
        t.set("nat-src6", "ipv6_addr", data="verdict", interval=True),
    ]
    return batch


def base_batch(t: Table) -> list[Command]:
    """The skeleton plus the static rules of the base chains (flushed and re-added)."""
    local = nft.match(nft.fib_daddr_type(), "local")
    dnatted = nft.match(nft.ct("status"), "dnat", op="in")
    batch = skeleton_batch(t)
    batch += [t.chain("flush", name) for name, *_ in BASE_CHAINS]
    return [
        *batch,
        t.rule("forward", nft.match(nft.ct("state"), ["established", "related"], "in"), ACCEPT),
        t.rule("forward", nft.vmap(nft.meta("iifname"), "from-bridge")),
        t.rule("forward", nft.vmap(nft.meta("oifname"), "to-bridge")),
        t.rule("prerouting", local, nft.jump("ports")),
        t.rule("output", local, nft.jump("ports")),
        t.rule(
            "postrouting",
            nft.match(nft.payload("ip", "saddr"), nft.prefix("127.0.0.0/8")),
            dnatted,
            MASQUERADE,
        ),
        t.rule("postrouting", nft.vmap(nft.payload("ip", "saddr"), "nat-src4")),
        t.rule("postrouting", nft.vmap(nft.payload("ip6", "saddr"), "nat-src6")),
    ]


def network_rules(t: Table, net: Network) -> list[Command]:
    """Chains and rules of one network (chains flushed first: re-adding is safe)."""
    from_chain, to_chain, nat_chain = net_chains(net.id)
    bridge = net.bridge
    on_bridge = nft.match(nft.meta("oifname"), bridge)
    dnatted = nft.match(nft.ct("status"), "dnat", op="in")
    chains = (from_chain, to_chain) if net.internal else (from_chain, to_chain, nat_chain)
    batch = [t.chain("add", c) for c in chains]
    batch += [t.chain("flush", c) for c in chains]
    comment = f"network {net.name}"
    batch.append(t.rule(from_chain, on_bridge, ACCEPT, comment=comment))
    if net.internal:
        return [*batch, t.rule(from_chain, DROP), t.rule(to_chain, DROP)]
    return [
        *batch,
        t.rule(from_chain, dnatted, ACCEPT),
        t.rule(from_chain, nft.match(nft.meta("oifname"), "@bridges"), DROP),
        t.rule(from_chain, ACCEPT),
        t.rule(to_chain, dnatted, ACCEPT, comment=comment),
        t.rule(to_chain, DROP),
        t.rule(nat_chain, nft.match(nft.meta("oifname"), bridge, op="!="), MASQUERADE),
        t.rule(nat_chain, dnatted, MASQUERADE, comment="hairpin"),
    ]


def network_elements(net: Network) -> list[tuple[str, Any]]:
    """(map or set, element) pairs that route a network's traffic to its chains."""
    from_chain, to_chain, nat_chain = net_chains(net.id)
    elems: list[tuple[str, Any]] = [
        ("bridges", net.bridge),
        ("from-bridge", [net.bridge, nft.jump(from_chain)]),
        ("to-bridge", [net.bridge, nft.jump(to_chain)]),
    ]
    if not net.internal:
        elems.append(("nat-src4", [nft.prefix(net.subnet), nft.jump(nat_chain)]))
        if net.ipv6 and net.subnet6:
            elems.append(("nat-src6", [nft.prefix(net.subnet6), nft.jump(nat_chain)]))
    return elems


def network_batch(t: Table, net: Network, stale: list[Command] | None = None) -> list[Command]:
    """Base + the network's chains + its map elements; ``stale`` deletions go first."""
    batch = [*base_batch(t), *network_rules(t, net), *(stale or [])]
    batch += [t.element("add", name, [e]) for name, e in network_elements(net)]
    return declarations_first(batch)


def declarations_first(batch: list[Command]) -> list[Command]:
    """Table, then chains, then sets and maps, then the rest, each in its order.

    libnftables 1.0.6 fails a batch that creates an interval verdict map before a
    chain one of its elements jumps to.
    """

    def rank(command: Command) -> int:
        kind = next(iter(command.get("add", {"": None})))
        return {"table": 0, "chain": 1, "set": 2, "map": 2}.get(kind, 3)

    return sorted(batch, key=rank)


def port_rules(t: Table, chain: str, ep: Endpoint, pm: PortMapping) -> list[Command]:
    """DNAT rules of one mapping, per address family the mapping and endpoint share."""
    if pm.protocol not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {pm.protocol!r} for port {pm.host_port}")
    for port in (pm.host_port, pm.container_port):
        if not 0 < port < 65536:
            raise InvalidArgument(f"invalid port {port}")
    dport = nft.match(nft.payload(pm.protocol, "dport"), pm.host_port)
    rules = []
    for family, nfproto, daddr in _families(pm.host_ip):
        addr = ep.ip if family == "ip" else ep.ip6
        if not addr:
            continue
        if daddr:
            where = nft.match(nft.payload(family, "daddr"), daddr)
        else:
            where = nft.match(nft.meta("nfproto"), nfproto)
        rules.append(t.rule(chain, where, dport, nft.dnat(family, addr, pm.container_port)))
    if not rules:
        raise InvalidArgument(f"cannot publish {pm.host_ip}:{pm.host_port}: no matching address")
    return rules


def _families(host_ip: str) -> list[tuple[str, str, str]]:
    """(family, nfproto, destination address or "" for any) a host address selects."""
    if not host_ip:
        return [("ip", "ipv4", ""), ("ip6", "ipv6", "")]
    if ":" in host_ip:
        return [("ip6", "ipv6", "" if host_ip == "::" else host_ip)]
    return [("ip", "ipv4", "" if host_ip == "0.0.0.0" else host_ip)]


def publish_batch(
    t: Table, ep: Endpoint, ports: list[PortMapping], stale_handles: list[int]
) -> list[Command]:
    """The endpoint's ``ports-*`` chain (re)filled and jumped to from ``ports``."""
    chain = ports_chain(ep)
    batch = skeleton_batch(t)
    batch += [t.delete_rule("ports", h) for h in stale_handles]
    batch += [t.chain("add", chain), t.chain("flush", chain)]
    for pm in ports:
        batch += port_rules(t, chain, ep, pm)
    comment = f"container {ep.container_name or ep.container_id[:12]}"
    return declarations_first([*batch, t.rule("ports", nft.jump(chain), comment=comment)])


def unpublish_batch(t: Table, ep: Endpoint, handles: list[int], exists: bool) -> list[Command]:
    chain = ports_chain(ep)
    batch = [t.delete_rule("ports", h) for h in handles]
    if exists:
        batch += [t.chain("flush", chain), t.chain("delete", chain)]
    return batch


# -- reading the table back ------------------------------------------------------


class TableState:
    """What a listing of the table shows: chains, rules (with handles), elements."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.chains = {o["chain"]["name"] for o in objects if "chain" in o}
        self.rules = [o["rule"] for o in objects if "rule" in o]
        self.elements: dict[str, list[Any]] = {}
        for o in objects:
            body = o.get("set") or o.get("map")
            if body:
                self.elements[body["name"]] = list(body.get("elem", []))

    def jumps(self, chain: str, suffix: str = "", target: str = "") -> dict[int, str]:
        """Handles of rules in ``chain`` jumping to ``target`` (or any name ending in suffix)."""
        found = {}
        for rule in self.rules:
            if rule["chain"] != chain:
                continue
            for expr in rule["expr"]:
                name = expr.get("jump", {}).get("target", "")
                if name and (name == target or (suffix and name.endswith(suffix))):
                    found[rule["handle"]] = name
        return found

    def element(self, name: str, key: Any) -> Any:
        """The element of set or map ``name`` whose key is ``key`` (None if absent)."""
        for elem in self.elements.get(name, []):
            elem_key = elem[0] if isinstance(elem, list) else elem
            if elem_key == key:
                return elem
        return None


def _read(n: Nft, table: str) -> TableState | None:
    tables = n.listing({"tables": None}, "list tables")
    if not any(o["table"]["name"] == table and o["table"]["family"] == FAMILY for o in tables):
        return None
    return TableState(n.listing({"table": {"family": FAMILY, "name": table}}, f"list {table}"))


def _stale(t: Table, state: TableState | None, net: Network) -> list[Command]:
    """Deletions of elements keyed like this network's but pointing elsewhere."""
    if state is None:
        return []
    batch = []
    for name, elem in network_elements(net):
        key = elem[0] if isinstance(elem, list) else elem
        found = state.element(name, key)
        if found is not None and found != elem:
            batch.append(t.element("delete", name, [key]))
    return batch


def _removal(t: Table, state: TableState, net: Network) -> list[Command]:
    """Deletions of a network's elements, chains and leftover published ports."""
    batch = []
    for name, elem in network_elements(net):
        key = elem[0] if isinstance(elem, list) else elem
        if state.element(name, key) == elem:
            batch.append(t.element("delete", name, [key]))
    ports = state.jumps("ports", suffix=f"-{net.id[:12]}")
    batch += [t.delete_rule("ports", h) for h in ports]
    for chain in (*net_chains(net.id), *ports.values()):
        if chain in state.chains:
            batch += [t.chain("flush", chain), t.chain("delete", chain)]
    return batch


def _unused(state: TableState, removing: Network) -> bool:
    """True when ``removing`` is the table's last network and no port is published."""
    others = [b for b in state.elements.get("bridges", []) if b != removing.bridge]
    suffix = f"-{removing.id[:12]}"
    left = [c for c in state.chains if c.startswith("ports-") and not c.endswith(suffix)]
    return not others and not left


# -- public API --------------------------------------------------------------------


def ensure_base(table: str = TABLE) -> None:
    """The table with its base chains and static rules; IPv4 forwarding on. Idempotent."""
    _sysctl(IP_FORWARD, "ip forwarding")
    with _session() as n:
        n.run(base_batch(Table(FAMILY, table)), f"create table {table}")


def add_network(net: Network, table: str = TABLE) -> None:
    """NAT, forwarding and isolation for ``net`` (its bridge must exist). Idempotent."""
    _check_ifname(net.bridge)
    _sysctl(IP_FORWARD, "ip forwarding")
    localnet = f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet"
    _sysctl(localnet, f"route_localnet on {net.bridge}")
    t = Table(FAMILY, table)
    with _session() as n:
        stale = _stale(t, _read(n, table), net)
        n.run(network_batch(t, net, stale), f"add network {net.name}")


def remove_network(net: Network, table: str = TABLE) -> None:
    """Undo ``add_network`` (and any port still published on it); the table goes with
    the last network. Missing pieces are fine."""
    t = Table(FAMILY, table)
    with _session() as n:
        state = _read(n, table)
        if state is None:
            return
        if _unused(state, net):
            n.run(remove_all_batch(t), f"remove network {net.name}")
            return
        n.run(_removal(t, state, net), f"remove network {net.name}")


def publish(ep: Endpoint, ports: list[PortMapping], table: str = TABLE) -> None:
    """DNAT ``ports`` to the endpoint, replacing what it published before."""
    if not ports:
        return
    t = Table(FAMILY, table)
    with _session() as n:
        state = _read(n, table)
        stale = list(state.jumps("ports", target=ports_chain(ep))) if state else []
        n.run(publish_batch(t, ep, ports, stale), f"publish ports of {_who(ep)}")


def unpublish(ep: Endpoint, table: str = TABLE) -> None:
    """Remove the endpoint's published ports; nothing published is fine."""
    t = Table(FAMILY, table)
    with _session() as n:
        state = _read(n, table)
        if state is None:
            return
        chain = ports_chain(ep)
        handles = list(state.jumps("ports", target=chain))
        batch = unpublish_batch(t, ep, handles, chain in state.chains)
        n.run(batch, f"unpublish ports of {_who(ep)}")


def remove_all_batch(t: Table) -> list[Command]:
    """Delete the table whether or not it exists (add first makes delete safe)."""
    return [t.table("add"), t.table("delete")]


def remove_all(table: str = TABLE) -> None:
    """Drop the whole table (tests, ``system reset``)."""
    with _session() as n:
        n.run(remove_all_batch(Table(FAMILY, table)), f"delete table {table}")


def list_rules(table: str = TABLE) -> list[dict[str, Any]]:
    """The table's rules as libnftables JSON objects (chain, handle, expr, comment)."""
    with Nft() as n:
        state = _read(n, table)
    return state.rules if state else []


def forward_drops_elsewhere(table: str = TABLE) -> list[str]:
    """Other tables' forward hooks with a drop policy (they may drop container traffic)."""
    with Nft() as n:
        objects = n.listing({"chains": None}, "list chains")
    found = []
    for o in objects:
        c = o.get("chain", {})
        if c.get("hook") == "forward" and c.get("policy") == "drop" and c.get("table") != table:
            found.append(f"{c['family']} {c['table']} {c['name']}")
    return found


def lock_path() -> str:
    """The lock serializing firewall changes (list, then change, must not interleave).

    One for every table: changes take milliseconds, and no file is left per table."""
    return os.path.join(LOCK_DIR, "capsa-nft.lock")


@contextlib.contextmanager
def _session() -> Iterator[Nft]:
    os.makedirs(LOCK_DIR, exist_ok=True)
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with Nft() as n:
            yield n
    finally:
        os.close(fd)


def _who(ep: Endpoint) -> str:
    return ep.container_name or ep.container_id[:12]


def _check_ifname(name: str) -> None:
    if not name or "/" in name or name in (".", "..") or len(name) > 15:
        raise InvalidArgument(f"invalid bridge name {name!r}")


def _sysctl(path: str, what: str) -> None:
    """Write "1" to ``path`` unless it holds it already."""
    try:
        with open(path) as f:
            if f.read().strip() == "1":
                return
        with open(path, "w") as f:
            f.write("1")
    except FileNotFoundError:
        raise NotFound(f"cannot enable {what}: {os.path.dirname(path)} not found") from None
    except OSError as e:
        raise Unavailable(f"cannot enable {what}: {os_reason(e)}") from None


class NftFirewall:
    """The network service's firewall (``collaborators.Firewall``): nftables rules in
    one table, the root's own."""

    def __init__(self, table: str = TABLE) -> None:
        self.table = table

    def ensure_base(self) -> None:
        ensure_base(self.table)

    def add_network(self, net: Network) -> None:
        add_network(net, self.table)

    def remove_network(self, net: Network) -> None:
        remove_network(net, self.table)

    def publish(self, ep: Endpoint, ports: list[PortMapping]) -> None:
        publish(ep, ports, self.table)

    def unpublish(self, ep: Endpoint) -> None:
        unpublish(ep, self.table)
