"""The embedded DNS server as a detached process on a test bridge's gateway, port 53."""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import pytest
from pyroute2 import IPRoute
from tests.helpers import wait_for

from capsa.config import Settings
from capsa.engine.network import dns as capsa_dns
from capsa.engine.network.types import Network
from capsa.errors import Unavailable

pytestmark = pytest.mark.root


class Upstream:
    """A UDP resolver on loopback answering every A query with 192.0.2.99."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                wire, peer = self.sock.recvfrom(512)
            except OSError:
                continue
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            name = query.question[0].name
            response.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "192.0.2.99"))
            self.sock.sendto(response.to_wire(), peer)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


def _used_routes(ipr: IPRoute) -> list[ipaddress.IPv4Network]:
    return [
        ipaddress.IPv4Network(f"{r.get('dst') or '0.0.0.0'}/{r['dst_len']}", strict=False)
        for r in ipr.get_routes(family=socket.AF_INET, table=254)
        if r["dst_len"]
    ]


@pytest.fixture
def network(test_token: str) -> Iterator[Network]:
    """A bridge carrying the gateway address of a free test subnet."""
    with IPRoute() as ipr:
        used = _used_routes(ipr)
        while True:
            subnet = ipaddress.IPv4Network(
                f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
            )
            if not any(subnet.overlaps(u) for u in used):
                break
        name = f"cptd{secrets.token_hex(4)}"
        ipr.link("add", ifname=name, kind="bridge")
        try:
            index = ipr.link_lookup(ifname=name)[0]
            ipr.addr("add", index=index, address=str(subnet[1]), prefixlen=24)
            ipr.link("set", index=index, state="up")
            yield Network(
                id=secrets.token_hex(32),
                name=f"{test_token}-net",
                bridge=name,
                subnet=str(subnet),
                gateway=str(subnet[1]),
            )
        finally:
            ipr.link("del", index=ipr.link_lookup(ifname=name)[0])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.stop()


def _ask(server: str, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, server, port=53, timeout=5)
    return dns.query.udp(query, server, port=53, timeout=5)


def _addresses(response: dns.message.Message) -> list[str]:
    return [r.address for rrset in response.answer for r in rrset]


def test_server_answers_names_on_the_gateway_and_stops(
    settings: Settings, network: Network, upstream: Upstream
) -> None:
    registry = capsa_dns.DnsRegistry(settings, network.id)
    registry.register("c1", ["web", "api"], "10.0.0.2")
    upstreams = [("127.0.0.1", upstream.port)]
    try:
        address = capsa_dns.start_dns(settings, network, upstreams=upstreams)
        assert address == (network.gateway, 53)
        pid = capsa_dns.running_pid(settings, network.id)
        assert pid
        assert capsa_dns.start_dns(settings, network) == address  # already running
        assert capsa_dns.running_pid(settings, network.id) == pid
        assert _addresses(_ask(network.gateway, "web")) == ["10.0.0.2"]
        assert _addresses(_ask(network.gateway, "API.dns.capsa", tcp=True)) == ["10.0.0.2"]
        registry.register("c2", ["db", "api"], "10.0.0.3")
        assert _addresses(_ask(network.gateway, "db")) == ["10.0.0.3"]
        assert sorted(_addresses(_ask(network.gateway, "api"))) == ["10.0.0.2", "10.0.0.3"]
        assert _ask(network.gateway, "gone.dns.capsa").rcode() == dns.rcode.NXDOMAIN
        assert _addresses(_ask(network.gateway, "example.org")) == ["192.0.2.99"]
    finally:
        capsa_dns.stop_dns(settings, network)
    assert capsa_dns.running_pid(settings, network.id) == 0
    assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    assert os.listdir(capsa_dns.dns_dir(settings)) == []


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except OSError:
        return True


def test_server_exits_on_sigterm_and_removes_its_pid_file(
    settings: Settings, network: Network, upstream: Upstream
) -> None:
    capsa_dns.start_dns(settings, network, upstreams=[("127.0.0.1", upstream.port)])
    try:
        pid = capsa_dns.running_pid(settings, network.id)
        pidfile = os.path.join(capsa_dns.dns_dir(settings), f"{network.id}.pid")
        assert os.path.exists(pidfile)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not os.path.exists(pidfile), what="pid file removed")
        wait_for(lambda: capsa_dns.running_pid(settings, network.id) == 0, what="exit")
    finally:
        capsa_dns.stop_dns(settings, network)


def test_start_reports_an_address_in_use(settings: Settings, network: Network) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((network.gateway, 53))
        try:
            with pytest.raises(Unavailable, match="address already in use"):
                capsa_dns.start_dns(settings, network)
        finally:
            capsa_dns.stop_dns(settings, network)


def test_server_on_loopback_with_dns_flags(settings: Settings, upstream: Upstream) -> None:
    """Any listen address works (tests, hosts without a bridge address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    net = Network(id=secrets.token_hex(32), name="loop", gateway="127.0.0.1")
    capsa_dns.DnsRegistry(settings, net.id).register("c1", ["web"], "10.0.0.2")
    try:
        capsa_dns.start_dns(
            settings, net, listen=("127.0.0.1", port), upstreams=[("127.0.0.1", upstream.port)]
        )
        query = dns.message.make_query("web", "A")
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
        assert response.flags & dns.flags.AA
        assert _addresses(response) == ["10.0.0.2"]
    finally:
        capsa_dns.stop_dns(settings, net)
