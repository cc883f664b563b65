"""NetworkService: networks, and the endpoints that plug containers into them.

Networks are records in ``root/networks.db``; a network's bridge, firewall rules and
DNS server exist only while it has endpoints (set up by the first ``attach``, torn
down after the last ``detach`` or by ``remove``). A per-network lock file orders the
two: attaches hold it shared, teardown holds it exclusive and re-checks for users.

The records outlive the kernel objects (a reboot, a killed monitor): an endpoint whose
host-side veth is gone is stale (the veth dies with the container's network namespace)
and is dropped, with its lease and published ports, before it could block a start or
keep a network up; a teardown removes whatever of the network's chains, map elements
and bridge is still there, whether or not this run root remembers setting them up.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import functools
import hashlib
import os
import secrets
import time

from capsa.cleanup import CleanupStack
from capsa.engine.network import bridge, claims, ipam, pools, tc, veth
from capsa.engine.network.store import NetworkStore
from capsa.engine.network.types import (
    BRIDGE_DRIVER,
    DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
    OPT_BRIDGE_NAME,
    AttachRequest,
    Endpoint,
    Network,
    NetworkCreateOptions,
    NetworkFilters,
)
from capsa.errors import (
    AlreadyExists,
    CapsaError,
    Conflict,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    no_such_network,
    no_such_object,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from pyroute2 import IPRoute

    from capsa.config import Settings
    from capsa.engine.network.collaborators import Dns, Firewall
    from capsa.engine.system.reports import ItemReport

_RESERVED = {"host", "none"}
_FILTERS = {"name", "id", "label", "driver", "type", "dangling", "scope"}


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class NetworkService:
    def __init__(
        self,
        settings: Settings,
        container_exists: Callable[[str], bool] | None = None,
        firewall_table: str = "",
        claims_dir: str = "",
        *,
        firewall: Firewall | None = None,
        dns: Dns | None = None,
    ) -> None:
        """``firewall`` and ``dns``: the collaborators (see ``collaborators``); by
        default nftables rules in the root's own table (or ``firewall_table``) and the
        embedded name server, made on first use."""
        self.settings = settings
        self._firewall = firewall
        self._firewall_table = firewall_table or root_firewall_table(settings.root)
        self._dns = dns
        self.store = NetworkStore(settings.root)
        # subnets other roots of the host hold (see claims.py)
        self._claims = claims.SubnetClaims(settings.root, claims_dir or claims.CLAIMS_DIR)
        # lets a full subnet reclaim the leases of containers that are gone
        self._is_live = container_exists
        self._lock_dir = os.path.join(settings.runroot, "networks")

    @property
    def firewall(self) -> Firewall:
        if self._firewall is None:
            from capsa.engine.network.firewall import NftFirewall

            self._firewall = NftFirewall(self._firewall_table)
        return self._firewall

    @property
    def dns(self) -> Dns:
        if self._dns is None:
            from capsa.engine.network.dns import EmbeddedDns

            self._dns = EmbeddedDns(self.settings)
        return self._dns

    # networks

    def create(self, opts: NetworkCreateOptions) -> Network:
        name = opts.name
        if name in _RESERVED or name == DEFAULT_NETWORK:
            raise Conflict(f"network name {name} is reserved for a pre-defined network")
        ipam.check_name(name)
        if opts.driver not in ("", BRIDGE_DRIVER):
            raise InvalidArgument(f"network driver {opts.driver} is not supported")
        net = ipam.new_network(opts, secrets.token_hex(32), now_rfc3339())
        routes = self._routes() if not opts.subnet else []
        user_pools = pools.pools_from(getattr(self.settings, "default_address_pools", None))

        def check(existing: list[Network]) -> None:
            if not net.subnet:
                used = [n.subnet for n in existing]
                net.subnet = pools.choose(user_pools or pools.USER_POOLS, used, routes)
                net.gateway = ipam.default_gateway(ipam.parse_subnet(net.subnet))
            ipam.check_conflicts(net, existing)

        with self._claims.locked():
            routes += [] if opts.subnet else self._claims.others()
            self.store.add_network(net, check)
            self._publish_claims()
        return net

    def default(self) -> Network:
        """The ``bridge`` network, created (record only) on first use."""
        found = self.store.find_network(DEFAULT_NETWORK)
        if found is not None:
            return found
        bridge = self._default_bridge_name()
        net = Network(
            id=secrets.token_hex(32),
            name=DEFAULT_NETWORK,
            bridge=bridge,
            created=now_rfc3339(),
            default=True,
            options={OPT_BRIDGE_NAME: bridge},
        )
        routes = self._routes()

        def check(existing: list[Network]) -> None:
            used = [n.subnet for n in existing]
            net.subnet = pools.choose(pools.DEFAULT_BRIDGE_POOLS, used, routes)
            net.gateway = ipam.default_gateway(ipam.parse_subnet(net.subnet))

        try:
            with self._claims.locked():
                routes += self._claims.others()  # never another root's subnet
                self.store.add_network(net, check)
                self._publish_claims()
        except AlreadyExists:  # another process won the race
            return self.get(DEFAULT_NETWORK)
        return net

    def _default_bridge_name(self) -> str:
        """capsa0 for the default root; a root of its own (tests, a second engine) gets a
        bridge of its own, so two roots never share, lease on or delete one bridge."""
        tag = root_tag(self.settings.root)
        return "capsa" + tag if tag else DEFAULT_BRIDGE

    def _publish_claims(self) -> None:
        """Claim this root's subnets for the host (the caller holds the claims lock)."""
        self._claims.publish(n.subnet for n in self.store.networks())

    def get(self, name_or_id: str) -> Network:
        if name_or_id == DEFAULT_NETWORK:
            return self.default()
        net = self.store.find_network(name_or_id)
        if net is None:
            raise no_such_network(name_or_id)
        return net

    def inspect(self, name_or_id: str) -> Network:
        """``get``, a missing network worded as Docker's ``inspect`` words it."""
        try:
            return self.get(name_or_id)
        except NotFound:
            raise no_such_object(name_or_id, "network") from None

    def inspect_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[Network]]:
        """``inspect`` of several names, a report per name (``capsa.engine.system.reports``)."""
        from capsa.engine.system.reports import each

        return each(names, self.inspect)

    def remove_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[None]]:
        from capsa.engine.system.reports import each

        return each(names, self.remove)

    def list(self, filters: NetworkFilters | None = None) -> builtins.list[Network]:
        self.default()
        filters = filters or {}
        unknown = set(filters) - _FILTERS
        if unknown:
            raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}'")
        nets = self.store.networks()
        used = {ep.network_id for ep in self.store.endpoints()}
        return [n for n in nets if _matches(n, filters, n.id in used)]

    def endpoints_of(self, network: Network) -> builtins.list[Endpoint]:
        return self.store.endpoints(network_id=network.id)

    def remove(self, name_or_id: str) -> None:
        net = self.get(name_or_id)
        if net.default:
            raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
        self._drop_dead_endpoints(net)
        with self._users(net, exclusive=True):
            if self.store.endpoints(network_id=net.id):
                raise Conflict(
                    f"error while removing network: network {net.name} has active endpoints"
                )
            self._teardown(net)  # a failure keeps the record: rm can be retried
            self.store.remove_network(net)
        with self._claims.locked():
            self._publish_claims()

    def prune(self, filters: NetworkFilters | None = None) -> builtins.list[str]:
        """Remove unused user networks (``until``/``label``/``label!`` filters)."""
        from capsa.engine.system.filters import NETWORK_PRUNE, parse_prune

        parsed = parse_prune(filters, NETWORK_PRUNE)
        self.drop_stale_endpoints()
        removed = []
        for net in self.list():
            if net.default or not parsed.matches(net.labels, net.created):
                continue
            if self.store.endpoints(network_id=net.id):
                continue
            try:
                self.remove(net.id)
            except (Conflict, NotFound):
                continue
            removed.append(net.name)
        self.teardown_idle()  # the default bridge too, if a lingering host kept it up
        return removed

    # endpoints

    def attach(self, req: AttachRequest) -> Endpoint:
        net = self.get(req.network)
        self._drop_stale(self.store.endpoints(req.container_id))
        if any(ep.network_id == net.id for ep in self.store.endpoints(req.container_id)):
            raise AlreadyExists(
                f"endpoint with name {req.container_name} already exists in network {net.name}"
            )
        # the undo steps run after the shared lock is released: teardown takes it exclusive
        with CleanupStack() as undo, self._users(net, exclusive=False):
            ip = self.store.lease(net, req.container_id, req.ip, 4, self._is_live)
            undo.push(self.store.release, net.id, req.container_id)
            ip6 = self.store.lease(net, req.container_id, "", 6) if net.ipv6 else ""
            ep = _endpoint(net, req, ip, ip6)
            with bridge.open_iproute() as ipr:
                bridge_index = self._setup(ipr, net, undo)
                undo.push(_delete_veth, ep.host_ifname)
                self._plumb(ipr, ep, net, bridge_index)
            self.store.put_endpoint(ep)
            undo.push(self.store.remove_endpoint, ep.container_id, net.id)
            self.firewall.publish(ep, list(req.ports))
            undo.push(self.firewall.unpublish, ep)
            if not net.default:
                self.dns.register(net, ep)
        return ep

    def _plumb(self, ipr: IPRoute, ep: Endpoint, net: Network, bridge_index: int) -> None:
        """veth pair, container side configured and limited, host side on the bridge."""
        with veth.netns_iproute(ep.pid) as ns:
            ep.ifname = veth.free_ifname(ns)
            veth.create(ipr, ep.host_ifname, ep.pid, ep.ifname, net.mtu)
            addresses = [(ep.ip, ep.prefix_len)]
            gateways = [] if net.internal else [net.gateway]
            if ep.ip6:
                addresses.append((ep.ip6, int(net.subnet6.split("/")[1])))
                gateways += [] if net.internal else [net.gateway6]
            index = veth.configure(ns, ep.ifname, ep.mac, addresses, gateways)
            tc.limit(ns, index, ep.rate_out_bps)
        host_index = veth.plug(ipr, ep.host_ifname, bridge_index)
        tc.limit(ipr, host_index, ep.rate_in_bps)

    def detach(
        self, container_id: str, network: str | None = None, keep_idle: bool = False
    ) -> None:
        """Undo ``attach`` for one or all networks of the container; idempotent. With
        ``keep_idle`` a network left without users keeps its bridge and rules for the
        next container, until ``teardown_idle``."""
        eps = self.store.endpoints(container_id)
        if network is not None:
            net = self.get(network)
            eps = [ep for ep in eps if ep.network_id == net.id]
        failures: list[BaseException] = []
        for ep in eps:
            failures += self._detach_one(ep, keep_idle)
        for net_id, _ip, holder in self.store.leases():
            if holder == container_id and (
                network is None or net_id in {e.network_id for e in eps}
            ):
                self.store.release(net_id, container_id)
        if failures:
            raise Internal(f"detach container {container_id[:12]}", causes=failures)

    def teardown_idle(self) -> None:
        """Take down the bridge, rules and DNS of every network nobody uses (stale
        endpoints do not count); the networks' records stay."""
        failures: builtins.list[BaseException] = []
        try:
            self.drop_stale_endpoints()
        except CapsaError as e:
            failures.append(e)
        for net in self.store.networks():
            try:
                self._teardown_if_unused(net)
            except CapsaError as e:
                failures.append(e)
        if failures:
            raise Internal("tear down idle networks", causes=failures)

    def drop_stale_endpoints(self) -> builtins.list[str]:
        """Forget every endpoint whose host-side veth is gone (its container's network
        namespace went: the container exited unseen, or the host restarted), with its
        lease, published ports and DNS names. The ids of the containers concerned."""
        return self._drop_stale(self.store.endpoints())

    def _drop_stale(self, eps: builtins.list[Endpoint]) -> builtins.list[str]:
        if not eps:
            return []
        present = _existing_links([ep.host_ifname for ep in eps])
        stale = [ep for ep in eps if ep.host_ifname not in present]
        failures: builtins.list[BaseException] = []
        for ep in stale:
            failures += self._detach_one(ep, keep_idle=True)
        if failures:
            raise Internal("drop stale network endpoints", causes=failures)
        return sorted({ep.container_id for ep in stale})

    def _detach_one(self, ep: Endpoint, keep_idle: bool = False) -> builtins.list[BaseException]:
        net = self.store.find_network(ep.network_id)
        steps: builtins.list[Callable[[], object]] = []
        if net is not None and not net.default:
            steps.append(functools.partial(self.dns.unregister, net, ep.container_id))
        steps.append(functools.partial(self.firewall.unpublish, ep))
        steps.append(functools.partial(_delete_veth, ep.host_ifname))
        failures = _run_all(steps)
        self.store.remove_endpoint(ep.container_id, ep.network_id)
        self.store.release(ep.network_id, ep.container_id)
        if net is not None and not keep_idle:
            try:
                self._teardown_if_unused(net)
            except CapsaError as e:
                failures.append(e)
        return failures

    def connect(
        self,
        network: str,
        container_id: str,
        container_name: str,
        pid: int,
        aliases: Sequence[str] = (),
        ip: str = "",
    ) -> Endpoint:
        req = AttachRequest(container_id, container_name, pid, network, list(aliases), ip)
        return self.attach(req)

    def disconnect(self, network: str, container_id: str, pid: int = 0) -> None:
        net = self.get(network)
        if not any(ep.network_id == net.id for ep in self.store.endpoints(container_id)):
            raise NotFound(f"container {container_id[:12]} is not connected to network {net.name}")
        self.detach(container_id, net.id)

    def endpoints(self, container_id: str) -> builtins.list[Endpoint]:
        return self.store.endpoints(container_id)

    def set_rate(self, container_id: str, rate_in_bps: int, rate_out_bps: int) -> None:
        eps = self.store.endpoints(container_id)
        if not eps:
            raise FailedPrecondition(f"container {container_id[:12]} has no network endpoint")
        with bridge.open_iproute() as ipr:
            for ep in eps:
                host_index = bridge.lookup(ipr, ep.host_ifname)
                if host_index is None:
                    raise FailedPrecondition(f"container {container_id[:12]} is not running")
                tc.limit(ipr, host_index, rate_in_bps)
                with veth.netns_iproute(ep.pid) as ns:
                    index = bridge.lookup(ns, ep.ifname)
                    if index is None:
                        raise FailedPrecondition(f"interface {ep.ifname} missing in the container")
                    tc.limit(ns, index, rate_out_bps)
                ep.rate_in_bps, ep.rate_out_bps = rate_in_bps, rate_out_bps
                self.store.put_endpoint(ep)

    def interface_stats(self, container_id: str) -> dict[str, dict[str, int]]:
        """Counters as the container sees them (the host end's rx is the container's tx)."""
        out: dict[str, dict[str, int]] = {}
        with bridge.open_iproute() as ipr:
            for ep in self.store.endpoints(container_id):
                stats = veth.link_stats(ipr, ep.host_ifname)
                if stats is not None:
                    out[ep.ifname] = {
                        "rx_bytes": stats["tx_bytes"],
                        "tx_bytes": stats["rx_bytes"],
                        "rx_packets": stats["tx_packets"],
                        "tx_packets": stats["rx_packets"],
                    }
        return out

    def cleanup_stale(self, live_ids: set[str]) -> None:
        """Detach and forget every container not in ``live_ids`` (after a crash)."""
        failures: list[BaseException] = []
        for container_id in sorted(self.store.holders() - set(live_ids)):
            try:
                self.detach(container_id)
            except CapsaError as e:
                failures.append(e)
            self.store.forget_container(container_id)
        if failures:
            raise Internal("clean up stale network endpoints", causes=failures)

    def resolv_conf(self, endpoint_networks: Sequence[Network | Endpoint | str]) -> dict | None:
        """The embedded DNS (the gateway of the first user network), None on the default bridge."""
        for item in endpoint_networks:
            if isinstance(item, Endpoint):
                net = self.store.find_network(item.network_id)
            else:
                net = item if isinstance(item, Network) else self.get(item)
            if net is not None and not net.default:
                return {"nameservers": [net.gateway], "search": [self.dns.domain], "options": []}
        return None

    def close(self) -> None:
        self.store.close()

    # bridge lifecycle

    def _setup(self, ipr: IPRoute, net: Network, undo: CleanupStack) -> int:
        """Bridge, firewall, DNS of ``net`` (first user only; holding the users lock).

        Marker files in the run root: ``.owned`` (capsa made the bridge, so it may delete
        it) is written before the bridge exists, ``.up`` once everything is set up.
        """
        owned, up = self._marker(net, "owned"), self._marker(net, "up")
        with self._flock(net, "setup", fcntl.LOCK_EX):
            existed = bridge.lookup(ipr, net.bridge) is not None
            if existed and os.path.exists(up):
                return bridge.ensure(ipr, net.bridge, net.mtu, [])
            undo.push(self._teardown_if_unused, net)
            if not existed:
                _touch(owned)
            addresses = [(net.gateway, net.prefix_len)]
            if net.ipv6:
                addresses.append((net.gateway6, int(net.subnet6.split("/")[1])))
            index = bridge.ensure(ipr, net.bridge, net.mtu, addresses)
            self.firewall.ensure_base()
            self.firewall.add_network(net)
            if not net.default:
                self.dns.start(net)
            _touch(up)
            with self._claims.locked():  # a claim lost, or a root older than claims
                self._publish_claims()
            return index

    def _teardown_if_unused(self, net: Network) -> None:
        with self._users(net, exclusive=True):
            if not self.store.endpoints(network_id=net.id):
                self._teardown(net)

    def _teardown(self, net: Network) -> None:
        """Remove DNS, firewall rules and (if capsa made it) the bridge of ``net``; the caller
        holds the users lock. Every step is idempotent and runs even when this run root
        has no record of a set-up (emptied, or a reboot): what is left in the kernel goes."""
        owned, up = self._marker(net, "owned"), self._marker(net, "up")
        steps: builtins.list[Callable[[], object]] = []
        if not net.default:
            steps.append(functools.partial(self.dns.stop, net))
        steps.append(functools.partial(self.firewall.remove_network, net))
        if os.path.exists(owned) or _named_by_capsa(net):
            steps.append(functools.partial(_remove_bridge, net.bridge))
        failures = _run_all(steps)
        if failures:
            raise Internal(f"tear down network {net.name}", causes=failures)
        for path in (up, owned):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _marker(self, net: Network, kind: str) -> str:
        return os.path.join(self._lock_dir, f"{net.id}.{kind}")

    def _drop_dead_endpoints(self, net: Network) -> None:
        if self._is_live is None:
            return
        for ep in self.store.endpoints(network_id=net.id):
            if not self._is_live(ep.container_id):
                self.detach(ep.container_id, net.id)

    @contextlib.contextmanager
    def _users(self, net: Network, exclusive: bool) -> Iterator[None]:
        with self._flock(net, "lock", fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def _flock(self, net: Network, kind: str, mode: int) -> Iterator[None]:
        os.makedirs(self._lock_dir, exist_ok=True)
        path = os.path.join(self._lock_dir, f"{net.id}.{kind}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _routes() -> builtins.list[str]:
        with bridge.open_iproute() as ipr:
            return pools.host_routes(ipr)


def root_tag(root: str) -> str:
    """A short hash of ``root`` ("" for the default data root): it sets the root's
    default bridge and nftables table apart from every other root's."""
    from capsa.config import DEFAULT_ROOT

    if os.path.realpath(root) == DEFAULT_ROOT:
        return ""
    return hashlib.sha256(root.encode()).hexdigest()[:9]


def root_firewall_table(root: str) -> str:
    """The data root's own nftables table: ``inet capsa`` for the default root,
    ``inet capsa-<tag>`` for any other (its default bridge is ``capsa<tag>``), so that
    two roots' rules never mix and one root's last network never drops the other's."""
    tag = root_tag(root)
    return f"capsa-{tag}" if tag else "capsa"


def _touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w"):
        pass


def _run_all(steps: list[Callable[[], object]]) -> list[BaseException]:
    """Run every step even when some fail; return the failures."""
    failures: list[BaseException] = []
    for step in steps:
        try:
            step()
        except Exception as e:
            failures.append(e)
    return failures


def _named_by_capsa(net: Network) -> bool:
    """The bridge's name is one capsa chose (the default network's, ``capsa-<id>``): no
    other bridge can carry it, so capsa may delete it without a record of making it. A
    name the user gave (``-o com.docker.network.bridge.name``) may be a bridge of theirs."""
    return net.default or OPT_BRIDGE_NAME not in net.options


def _existing_links(names: list[str]) -> set[str]:
    """Which of the interfaces ``names`` exist in this network namespace."""
    with bridge.open_iproute() as ipr:
        return {name for name in names if bridge.lookup(ipr, name) is not None}


def _delete_veth(host_ifname: str) -> None:
    with bridge.open_iproute() as ipr:
        veth.delete(ipr, host_ifname)


def _remove_bridge(name: str) -> None:
    with bridge.open_iproute() as ipr:
        bridge.remove(ipr, name)


def _endpoint(net: Network, req: AttachRequest, ip: str, ip6: str) -> Endpoint:
    mac = ipam.check_mac(req.mac) if req.mac else ipam.mac_for(ip)
    names = [req.container_name, req.container_id[:12], *req.aliases]
    return Endpoint(
        network_id=net.id,
        network_name=net.name,
        container_id=req.container_id,
        container_name=req.container_name,
        ifname="",
        host_ifname=veth.host_ifname(req.container_id, net.id),
        mac=mac,
        ip=ip,
        prefix_len=net.prefix_len,
        gateway=net.gateway,
        ip6=ip6,
        aliases=list(req.aliases),
        dns_names=[n for i, n in enumerate(names) if n and n not in names[:i]],
        bridge=net.bridge,
        internal=net.internal,
        rate_in_bps=req.rate_in_bps,
        rate_out_bps=req.rate_out_bps,
        pid=req.pid,
        requested_ip=req.ip,
        id=hashlib.sha256(f"{req.container_id}/{net.id}".encode()).hexdigest(),
    )


def _matches(net: Network, filters: NetworkFilters, used: bool) -> bool:
    checks: dict[str, Callable[[str], bool]] = {
        "name": lambda v: v in net.name,
        "id": lambda v: net.id.startswith(v),
        "driver": lambda v: v == net.driver,
        "scope": lambda v: v == "local",
        "type": lambda v: v == ("builtin" if net.default else "custom"),
        "dangling": lambda v: (v.lower() in ("true", "1")) == (not used and not net.default),
        "label": lambda v: _label_matches(net.labels, v),
    }
    return all(any(checks[k](v) for v in values) for k, values in filters.items())


def _label_matches(labels: dict[str, str], want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)
