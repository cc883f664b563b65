"""Embedded DNS: the registry file, the server's view of it, and the server in-process
against a fake upstream (no root, loopback only)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
import pytest_asyncio

from capsa.config import Settings
from capsa.engine.network import dns as capsa_dns
from capsa.engine.network.dns import DnsRegistry, Records, host_nameservers
from capsa.engine.network.dns_server import DnsServer, ServerConfig, bind_sockets
from capsa.engine.network.types import Endpoint, Network

NET_ID = "ab" * 32


def _settings(tmp_path: Path) -> Settings:
    return Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))


def _registry(tmp_path: Path) -> DnsRegistry:
    return DnsRegistry(_settings(tmp_path), NET_ID)


def test_register_writes_names_and_unregister_removes(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.register("c1", ["web", "Web", "alias"], "10.89.0.2")
    reg.register("c2", ["db"], "10.89.0.3", "fd00::3")
    assert reg.load()["c1"] == {"names": ["web", "alias"], "ip": "10.89.0.2", "ip6": ""}
    reg.unregister("c1")
    reg.unregister("missing")
    assert list(reg.load()) == ["c2"]
    assert Path(reg.path) == tmp_path / "run" / "dns" / f"{NET_ID}.json"


def test_register_endpoint_uses_dns_names(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    net = Network(id=NET_ID, name="n", subnet="10.89.0.0/24", gateway="10.89.0.1")
    ep = Endpoint(
        network_id=NET_ID,
        network_name="n",
        container_id="c" * 64,
        container_name="web",
        ifname="eth0",
        host_ifname="veth0",
        mac="",
        ip="10.89.0.2",
        prefix_len=24,
        gateway="10.89.0.1",
        aliases=["api"],
    )
    capsa_dns.register(settings, net, ep)
    assert DnsRegistry(settings, NET_ID).load()["c" * 64]["names"] == ["web", "api"]
    capsa_dns.unregister(settings, net, "c" * 64)
    assert DnsRegistry(settings, NET_ID).load() == {}
    assert capsa_dns.dns_server_for(net) == ("10.89.0.1", 53)


def test_records_match_names_case_insensitively_with_or_without_domain(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.register("c1", ["web"], "10.89.0.2")
    records = Records(reg.path)
    records.refresh()
    for name in ("web", "WEB.", "web.dns.capsa", "Web.DNS.Capsa."):
        assert records.lookup(name) == (["10.89.0.2"], [])
    assert records.lookup("other") is None
    assert records.in_domain("other.dns.capsa.")
    assert not records.in_domain("example.com")
    assert records.reverse("10.89.0.2") == "web.dns.capsa"


def test_records_rotate_addresses_of_a_shared_name(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    for i in (2, 3, 4):
        reg.register(f"c{i}", [f"web-{i}", "web"], f"10.89.0.{i}")
    records = Records(reg.path)
    records.refresh()
    answers = [records.lookup("web") for _ in range(3)]
    firsts = {a[0][0] for a in answers if a}
    assert firsts == {"10.89.0.2", "10.89.0.3", "10.89.0.4"}
    assert all(a and sorted(a[0]) == ["10.89.0.2", "10.89.0.3", "10.89.0.4"] for a in answers)


def test_records_reload_when_the_file_changes(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.register("c1", ["web"], "10.89.0.2")
    records = Records(reg.path)
    records.refresh()
    reg.register("c2", ["db"], "10.89.0.3")
    records.refresh()
    assert records.lookup("db") == (["10.89.0.3"], [])
    os.unlink(reg.path)
    records.refresh()
    assert records.lookup("web") is None


def test_host_nameservers_skip_a_local_stub(tmp_path: Path) -> None:
    resolv, systemd = tmp_path / "resolv.conf", tmp_path / "systemd.conf"
    resolv.write_text("# stub\nnameserver 127.0.0.53\noptions edns0\n")
    systemd.write_text("nameserver 192.0.2.53\nnameserver 2001:db8::53 # v6\n")
    assert host_nameservers(str(resolv), str(systemd)) == ["192.0.2.53", "2001:db8::53"]
    resolv.write_text("nameserver 192.0.2.1\nnameserver 127.0.0.1\n")
    assert host_nameservers(str(resolv), str(systemd)) == ["192.0.2.1", "127.0.0.1"]
    assert host_nameservers(str(tmp_path / "missing"), str(systemd)) == []


# -- the server, in-process --------------------------------------------------------


class FakeUpstream:
    """Answers every A query with 192.0.2.7; ``big.example`` is truncated over UDP."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []
        self.servers: list[asyncio.AbstractServer | asyncio.BaseTransport] = []

    def answer(self, wire: bytes, transport: str) -> bytes:
        query = dns.message.from_wire(wire)
        name = query.question[0].name
        self.queries.append((name.to_text(), transport))
        response = dns.message.make_response(query)
        count = 60 if name.to_text() == "big.example." else 1
        ips = [f"192.0.2.{i + 7}" for i in range(count)]
        response.answer.append(dns.rrset.from_text_list(name, 30, "IN", "A", ips))
        if transport == "udp" and count > 1:
            response.answer.clear()
            response.flags |= dns.flags.TC
        return response.to_wire()

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        udp, tcp = bind_sockets([["127.0.0.1", 0]])
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(upstream.answer(data, "udp"), addr)  # type: ignore[attr-defined]

        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            size = int.from_bytes(await reader.readexactly(2), "big")
            reply = upstream.answer(await reader.readexactly(size), "tcp")
            writer.write(len(reply).to_bytes(2, "big") + reply)
            await writer.drain()
            writer.close()

        transport, _ = await loop.create_datagram_endpoint(Udp, sock=udp)
        self.servers += [transport, await asyncio.start_server(on_tcp, sock=tcp)]
        return int(udp.getsockname()[1])

    def close(self) -> None:
        for server in self.servers:
            server.close()


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[DnsRegistry, int, FakeUpstream]]:
    reg = _registry(tmp_path)
    reg.register("c1", ["web", "api"], "10.89.0.2", "fd00::2")
    reg.register("c2", ["worker", "api"], "10.89.0.3")
    upstream = FakeUpstream()
    upstream_port = await upstream.start()
    config = ServerConfig(
        registry=reg.path,
        listen=[["127.0.0.1", 0]],
        upstreams=[["127.0.0.1", upstream_port]],
        timeout=1.0,
    )
    dns_server = DnsServer(config)
    await dns_server.start()
    yield reg, dns_server.addresses[0][1], upstream
    await dns_server.close()
    upstream.close()


async def _ask(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=5)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=5)


def _addresses(response: dns.message.Message) -> list[str]:
    return [r.address for rrset in response.answer for r in rrset]


@pytest.mark.asyncio
async def test_server_answers_container_names(
    server: tuple[DnsRegistry, int, FakeUpstream],
) -> None:
    _, port, upstream = server
    for name in ("web", "WEB.dns.capsa."):
        response = await _ask(port, name)
        assert response.rcode() == dns.rcode.NOERROR
        assert response.flags & dns.flags.AA
        assert _addresses(response) == ["10.89.0.2"]
    assert _addresses(await _ask(port, "web", "AAAA")) == ["fd00::2"]
    assert _addresses(await _ask(port, "worker", "AAAA")) == []
    assert _addresses(await _ask(port, "web", tcp=True)) == ["10.89.0.2"]
    ptr = await _ask(port, "2.0.89.10.in-addr.arpa.", "PTR")
    assert [r.target.to_text() for r in ptr.answer[0]] == ["web.dns.capsa."]
    assert upstream.queries == []


@pytest.mark.asyncio
async def test_server_rotates_a_shared_alias(server: tuple[DnsRegistry, int, FakeUpstream]) -> None:
    _, port, _ = server
    answers = [_addresses(await _ask(port, "api")) for _ in range(4)]
    assert all(sorted(a) == ["10.89.0.2", "10.89.0.3"] for a in answers)
    firsts = [a[0] for a in answers]
    assert firsts[0] != firsts[1] and firsts[0::2] == [firsts[0]] * 2


@pytest.mark.asyncio
async def test_server_nxdomain_inside_its_domain(
    server: tuple[DnsRegistry, int, FakeUpstream],
) -> None:
    _, port, upstream = server
    response = await _ask(port, "nobody.dns.capsa")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert upstream.queries == []


@pytest.mark.asyncio
async def test_server_forwards_other_names(server: tuple[DnsRegistry, int, FakeUpstream]) -> None:
    _, port, upstream = server
    assert _addresses(await _ask(port, "example.com")) == ["192.0.2.7"]
    assert upstream.queries == [("example.com.", "udp")]


@pytest.mark.asyncio
async def test_server_forwards_truncation_to_udp_and_retries_tcp_clients_over_tcp(
    server: tuple[DnsRegistry, int, FakeUpstream],
) -> None:
    _, port, upstream = server
    udp = await _ask(port, "big.example")
    assert udp.flags & dns.flags.TC
    tcp = await _ask(port, "big.example", tcp=True)
    assert len(_addresses(tcp)) == 60
    assert upstream.queries[-2:] == [("big.example.", "udp"), ("big.example.", "tcp")]


@pytest.mark.asyncio
async def test_server_sees_registry_changes(server: tuple[DnsRegistry, int, FakeUpstream]) -> None:
    reg, port, _ = server
    reg.register("c3", ["late"], "10.89.0.9")
    assert _addresses(await _ask(port, "late")) == ["10.89.0.9"]
    reg.unregister("c1")
    assert (await _ask(port, "web.dns.capsa")).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.asyncio
async def test_server_truncates_large_local_answers_over_udp(
    server: tuple[DnsRegistry, int, FakeUpstream],
) -> None:
    reg, port, _ = server
    for i in range(60):
        reg.register(f"m{i}", ["many"], f"10.89.1.{i}")
    udp = await _ask(port, "many")
    assert udp.flags & dns.flags.TC and not udp.answer
    assert len(_addresses(await _ask(port, "many", tcp=True))) == 60


@pytest.mark.asyncio
async def test_server_fails_softly_without_upstream(tmp_path: Path) -> None:
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", 0))  # a port nobody answers on
    config = ServerConfig(
        registry=str(tmp_path / "none.json"),
        listen=[["127.0.0.1", 0]],
        upstreams=[["127.0.0.1", free.getsockname()[1]]],
        timeout=0.2,
    )
    dns_server = DnsServer(config)
    await dns_server.start()
    try:
        response = await _ask(dns_server.addresses[0][1], "example.com")
        assert response.rcode() == dns.rcode.SERVFAIL
    finally:
        await dns_server.close()
        free.close()
