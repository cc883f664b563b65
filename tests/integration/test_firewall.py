"""capsa's nftables table on the real kernel: NAT, published ports, hairpin, isolation.

Each test builds its own lab: bridges with test subnets, "containers" (network
namespaces held by a sleeping process, a veth into the bridge), an "outside" namespace
routed through the host, and its own nftables table ``capsa_test_<hex>``. Servers and
clients are sockets created inside the namespaces by this process (a socket stays in
the namespace it was created in), served by threads.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute
from tests.helpers import wait_for

from capsa.engine.network import firewall as fw
from capsa.engine.network.types import Endpoint, Network, PortMapping
from capsa.linux import syscalls

pytestmark = pytest.mark.root


def _netns_inode(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


@contextlib.contextmanager
def in_netns(pid: int) -> Iterator[None]:
    """Switch this thread into the netns of ``pid`` for the block."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(target, syscalls.CLONE_NEWNET)
        try:
            yield
        finally:
            syscalls.setns(own, syscalls.CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(own)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Namespace:
    """A network namespace held by a sleeping process; ``ip`` is its address."""

    def __init__(self, token: str) -> None:
        argv = ["unshare", "--net", "--", sys.executable, "-c", "import signal; signal.pause()"]
        self.proc = subprocess.Popen([*argv, token])
        host = _netns_inode("self")
        wait_for(lambda: _netns_inode(self.proc.pid) != host, what="new netns")
        self.pid = self.proc.pid
        self.ip = ""

    def socket(self, kind: int = socket.SOCK_STREAM) -> socket.socket:
        with in_netns(self.pid):
            return socket.socket(socket.AF_INET, kind)

    def iproute(self) -> IPRoute:
        with in_netns(self.pid):
            return IPRoute()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Server:
    """Answers each TCP connection (or UDP datagram) with the client's address."""

    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock, self.port = sock, port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        if sock.type == socket.SOCK_STREAM:
            sock.listen(16)
        sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                if self.sock.type == socket.SOCK_DGRAM:
                    _, peer = self.sock.recvfrom(512)
                    self.sock.sendto(peer[0].encode(), peer)
                    continue
                conn, peer = self.sock.accept()
                with conn:
                    conn.sendall(peer[0].encode())

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


def ask(sock: socket.socket, address: tuple[str, int], timeout: float = 3.0) -> str:
    """The answer of the server at ``address`` ("" when unreachable)."""
    with sock:
        sock.settimeout(timeout)
        try:
            if sock.type == socket.SOCK_DGRAM:
                sock.sendto(b"?", address)
                return sock.recv(512).decode()
            sock.connect(address)
            return sock.recv(512).decode()
        except OSError:
            return ""


def host_socket(kind: int = socket.SOCK_STREAM) -> socket.socket:
    return socket.socket(socket.AF_INET, kind)


class Lab:
    def __init__(self, token: str) -> None:
        self.token, self.hex = token, secrets.token_hex(3)
        self.table = f"capsa_test_{self.hex}"
        self.ipr = IPRoute()
        self.n = 0
        self.cleanups: list[Callable[[], None]] = []
        self._used: list[ipaddress.IPv4Network] = [
            ipaddress.IPv4Network(f"{r.get('dst') or '0.0.0.0'}/{r['dst_len']}", strict=False)
            for r in self.ipr.get_routes(family=socket.AF_INET, table=254)
            if r["dst_len"]
        ]

    def _name(self, kind: str) -> str:
        self.n += 1
        return f"cpt{kind}{self.hex}{self.n}"  # at most 15 characters

    def subnet(self) -> ipaddress.IPv4Network:
        while True:
            net = ipaddress.IPv4Network(
                f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
            )
            if not any(net.overlaps(u) for u in self._used):
                self._used.append(net)
                return net

    def network(self, internal: bool = False) -> Network:
        subnet = self.subnet()
        name = self._name("b")
        self.ipr.link("add", ifname=name, kind="bridge")
        self.cleanups.append(lambda: self._delete_link(name))
        index = self.ipr.link_lookup(ifname=name)[0]
        self.ipr.addr("add", index=index, address=str(subnet[1]), prefixlen=24)
        self.ipr.link("set", index=index, state="up")
        net_id = secrets.token_hex(32)
        return Network(
            id=net_id,
            name=f"n-{net_id[:6]}",
            bridge=name,
            subnet=str(subnet),
            gateway=str(subnet[1]),
            internal=internal,
        )

    def namespace(self) -> Namespace:
        ns = Namespace(self.token)
        self.cleanups.append(ns.kill)
        return ns

    def _veth(self, ns: Namespace, ip: str, gateway: str, master: int | None) -> str:
        host = self._name("v")
        fd = os.open(f"/proc/{ns.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.ipr.link("add", ifname=host, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
        finally:
            os.close(fd)
        self.cleanups.append(lambda: self._delete_link(host))
        index = self.ipr.link_lookup(ifname=host)[0]
        if master is not None:
            self.ipr.link("set", index=index, master=master)
            # as the engine plugs veths: a container reaching its own published port
            # through the host comes back out of its bridge port (br_netfilter)
            self.ipr.brport("set", index=index, mode=1)
        self.ipr.link("set", index=index, state="up")
        with ns.iproute() as inner:
            eth0 = inner.link_lookup(ifname="eth0")[0]
            inner.addr("add", index=eth0, address=ip, prefixlen=24)
            inner.link("set", index=eth0, state="up")
            inner.link("set", index=inner.link_lookup(ifname="lo")[0], state="up")
            inner.route("add", dst="0.0.0.0/0", gateway=gateway)
        ns.ip = ip
        return host

    def container(self, net: Network, host_part: int) -> tuple[Namespace, Endpoint]:
        ns = self.namespace()
        ip = str(ipaddress.ip_network(net.subnet)[host_part])
        bridge = self.ipr.link_lookup(ifname=net.bridge)[0]
        veth = self._veth(ns, ip, net.gateway, bridge)
        ep = Endpoint(
            network_id=net.id,
            network_name=net.name,
            container_id=secrets.token_hex(32),
            container_name=f"c{host_part}",
            ifname="eth0",
            host_ifname=veth,
            mac="",
            ip=ip,
            prefix_len=24,
            gateway=net.gateway,
            bridge=net.bridge,
            internal=net.internal,
        )
        return ns, ep

    def outside(self) -> tuple[Namespace, str]:
        """A namespace routed through the host ("another host"); returns it and the
        host's address on that link."""
        subnet = self.subnet()
        ns = self.namespace()
        host_link = self._veth(ns, str(subnet[2]), str(subnet[1]), None)
        index = self.ipr.link_lookup(ifname=host_link)[0]
        self.ipr.addr("add", index=index, address=str(subnet[1]), prefixlen=24)
        return ns, str(subnet[1])

    def server(self, ns: Namespace | None, port: int, kind: int = socket.SOCK_STREAM) -> Server:
        sock = ns.socket(kind) if ns else host_socket(kind)
        server = Server(sock, port)
        self.cleanups.append(server.stop)
        return server

    def _delete_link(self, name: str) -> None:
        for index in self.ipr.link_lookup(ifname=name):
            with contextlib.suppress(Exception):
                self.ipr.link("del", index=index)

    def close(self) -> None:
        errors = []
        try:
            fw.remove_all(self.table)
        except Exception as e:
            errors.append(e)
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as e:
                errors.append(e)
        self.ipr.close()
        assert not errors, errors


@pytest.fixture
def lab(test_token: str, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(test_token)
    try:
        yield lab
    finally:
        lab.close()


def test_outbound_nat_reaches_a_server_in_another_namespace(lab: Lab) -> None:
    net = lab.network()
    ns, _ = lab.container(net, 2)
    outside, host_ip = lab.outside()
    lab.server(outside, 8000)
    fw.ensure_base(lab.table)
    fw.add_network(net, lab.table)
    # masqueraded: the server sees the host's address on its link, not the container's
    assert ask(ns.socket(), (outside.ip, 8000)) == host_ip


def test_published_tcp_port_answers_on_the_host_address_loopback_and_from_outside(
    lab: Lab,
) -> None:
    net = lab.network()
    ns, ep = lab.container(net, 2)
    outside, host_ip = lab.outside()
    lab.server(ns, 80)
    port = free_port()
    fw.add_network(net, lab.table)
    fw.publish(ep, [PortMapping(port, 80)], lab.table)
    assert ask(host_socket(), (host_ip, port)) == host_ip
    assert ask(host_socket(), ("127.0.0.1", port)) == net.gateway  # masqueraded loopback
    assert ask(outside.socket(), (host_ip, port)) == outside.ip  # another host
    assert ask(host_socket(), (net.gateway, port))
    fw.unpublish(ep, lab.table)
    assert ask(host_socket(), ("127.0.0.1", port), timeout=1) == ""
    fw.unpublish(ep, lab.table)  # twice is fine


def test_published_port_on_one_host_address_only(lab: Lab) -> None:
    net = lab.network()
    ns, ep = lab.container(net, 2)
    _, host_ip = lab.outside()
    lab.server(ns, 80)
    port = free_port()
    fw.add_network(net, lab.table)
    fw.publish(ep, [PortMapping(port, 80, host_ip="127.0.0.1")], lab.table)
    assert ask(host_socket(), ("127.0.0.1", port)) == net.gateway
    assert ask(host_socket(), (host_ip, port), timeout=1) == ""


def test_udp_publishing(lab: Lab) -> None:
    net = lab.network()
    ns, ep = lab.container(net, 2)
    outside, host_ip = lab.outside()
    lab.server(ns, 53, socket.SOCK_DGRAM)
    port = free_port(socket.SOCK_DGRAM)
    fw.add_network(net, lab.table)
    fw.publish(ep, [PortMapping(port, 53, "udp")], lab.table)
    assert ask(host_socket(socket.SOCK_DGRAM), ("127.0.0.1", port)) == net.gateway
    assert ask(outside.socket(socket.SOCK_DGRAM), (host_ip, port)) == outside.ip


def test_hairpin_from_containers_through_the_host_address(lab: Lab) -> None:
    net, other_net = lab.network(), lab.network()
    ns, ep = lab.container(net, 2)
    neighbour, _ = lab.container(net, 3)
    stranger, _ = lab.container(other_net, 2)
    _, host_ip = lab.outside()
    lab.server(ns, 80)
    port = free_port()
    fw.add_network(net, lab.table)
    fw.add_network(other_net, lab.table)
    fw.publish(ep, [PortMapping(port, 80)], lab.table)
    assert ask(ns.socket(), (host_ip, port)) == net.gateway  # itself
    assert ask(neighbour.socket(), (host_ip, port)) == net.gateway
    assert ask(stranger.socket(), (host_ip, port)) == net.gateway  # from another network


def test_networks_are_isolated_from_each_other(lab: Lab) -> None:
    a, b = lab.network(), lab.network()
    ns_a, _ = lab.container(a, 2)
    ns_b, _ = lab.container(b, 2)
    lab.server(ns_a, 80)
    lab.server(ns_b, 80)
    fw.add_network(a, lab.table)
    fw.add_network(b, lab.table)
    assert ask(ns_a.socket(), (ns_b.ip, 80), timeout=1) == ""
    assert ask(ns_b.socket(), (ns_a.ip, 80), timeout=1) == ""
    peer, _ = lab.container(a, 3)
    assert ask(peer.socket(), (ns_a.ip, 80)) == peer.ip  # same network: fine


def test_internal_network_cannot_reach_out(lab: Lab) -> None:
    net = lab.network(internal=True)
    ns, _ = lab.container(net, 2)  # even with a default route
    peer, _ = lab.container(net, 3)
    outside, _ = lab.outside()
    lab.server(outside, 8000)
    lab.server(ns, 80)
    fw.add_network(net, lab.table)
    assert ask(ns.socket(), (outside.ip, 8000), timeout=1) == ""
    assert ask(outside.socket(), (ns.ip, 80), timeout=1) == ""
    assert ask(peer.socket(), (ns.ip, 80)) == peer.ip


def test_remove_network_and_remove_all_leave_no_table(lab: Lab) -> None:
    a, b = lab.network(), lab.network()
    _, ep = lab.container(a, 2)
    fw.add_network(a, lab.table)
    fw.add_network(a, lab.table)  # idempotent
    fw.add_network(b, lab.table)
    fw.publish(ep, [PortMapping(free_port(), 80)], lab.table)
    fw.remove_network(a, lab.table)  # also drops a's published ports
    chains = {r["chain"] for r in fw.list_rules(lab.table)}
    assert fw.ports_chain(ep) not in chains
    assert fw.net_chains(b.id)[0] in chains
    assert fw.net_chains(a.id)[0] not in chains
    fw.remove_network(b, lab.table)  # the last one takes the table
    assert fw.list_rules(lab.table) == []
    fw.remove_network(b, lab.table)
    fw.ensure_base(lab.table)
    fw.remove_all(lab.table)
    fw.remove_all(lab.table)
    assert fw.list_rules(lab.table) == []
    assert not [c for c in fw.forward_drops_elsewhere(lab.table) if lab.table in c]
