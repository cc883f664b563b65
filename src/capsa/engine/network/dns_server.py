"""The embedded DNS server of one user network: ``python -m ... dns_server CONFIG``.

Listens on UDP and TCP (the network's gateway address, port 53), answers A/AAAA/PTR
for the names in the network's registry (``capsa.engine.network.dns.Records``),
rotating the addresses of a name several containers share, and forwards everything
else to the host's resolvers over UDP (TCP when a TCP client's answer came back
truncated). Unknown names inside the network's domain get NXDOMAIN.

Started detached by ``capsa.engine.network.dns.start_dns``: sockets are bound first
(errors reach the starter on stderr), then the process forks; the parent writes the
child's pid to the pid file and exits, the child serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import struct
import sys

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

from capsa.engine.network.dns import Records, Upstreams
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IP_FREEBIND = 15  # bind the gateway address even before the bridge carries it
TCP_IDLE = 10.0
UDP_MIN = 512


@record
class ServerConfig:
    registry: str  # the network's records file (capsa.engine.network.dns)
    listen: list[list[Any]] = field(default_factory=list)  # [[ip, port], ...]
    domain: str = "dns.capsa"
    upstreams: list[list[Any]] = field(default_factory=list)  # [] = the host's resolvers
    pidfile: str = ""
    log: str = ""
    timeout: float = 2.0
    ttl: int = 10

    @classmethod
    def load(cls, path: str) -> ServerConfig:
        with open(path) as f:
            data: dict[str, Any] = json.load(f)
        return cls(**data)


class Peers:
    """The other networks' records a client can also see: a container on several
    networks resolves the names of all of them, whichever server it asks."""

    def __init__(self, own: Records) -> None:
        self.own = own
        self.cache: dict[str, Records] = {}

    def of(self, client_ip: str | None) -> list[Records]:
        """The registries the client is also in (it is known by its name on ours)."""
        client = self.own.reverse(client_ip) if client_ip else None
        if not client:
            return []
        directory = os.path.dirname(self.own.path) or "."
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        out = []
        for name in names:
            path = os.path.join(directory, name)
            if not name.endswith(".json") or name.endswith(".conf.json") or path == self.own.path:
                continue
            records = self.cache.get(path)
            if records is None:
                records = self.cache[path] = Records(path, self.own.domain)
            records.refresh()
            if records.lookup(client) is not None:
                out.append(records)
        return out


class Resolver:
    """Wire query in, wire answer out: local names first, then the upstreams."""

    def __init__(self, records: Records, upstreams: Upstreams, ttl: int, timeout: float):
        self.records, self.upstreams = records, upstreams
        self.ttl, self.timeout = ttl, timeout
        self.peers = Peers(records)

    async def resolve(self, wire: bytes, tcp: bool, client: str | None = None) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not worth an answer
        self.records.refresh()
        response = self.local(query, client)
        if response is None:
            return await self.forward(query, wire, tcp)
        limit = 65535 if tcp else max(UDP_MIN, query.payload if query.edns >= 0 else 0)
        try:
            # keep the rotated order: dnspython shuffles records unless told not to
            return response.to_wire(max_size=limit, want_shuffle=False)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)

    def local(
        self, query: dns.message.Message, client: str | None = None
    ) -> dns.message.Message | None:
        """The answer for a name of this network, or None to forward the query."""
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            return _error(query, dns.rcode.NOTIMP)
        q = query.question[0]
        if q.rdclass != dns.rdataclass.IN:
            return None
        if q.rdtype == dns.rdatatype.PTR:
            return self._reverse(query)
        name = q.name.to_text(omit_final_dot=True)
        found = self.records.lookup(name)
        if found is None:
            for peer in self.peers.of(client):
                found = peer.lookup(name)
                if found is not None:
                    break
        if found is None:
            return _error(query, dns.rcode.NXDOMAIN) if self.records.in_domain(name) else None
        response = _authoritative(query)
        ips = found[0] if q.rdtype == dns.rdatatype.A else found[1]
        if ips and q.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rrset = dns.rrset.from_text_list(q.name, self.ttl, "IN", q.rdtype, ips)
            response.answer.append(rrset)
        return response

    def _reverse(self, query: dns.message.Message) -> dns.message.Message | None:
        q = query.question[0]
        try:
            address = dns.reversename.to_address(q.name)
        except (dns.exception.SyntaxError, ValueError):
            return None
        target = self.records.reverse(address)
        if target is None:
            return None
        response = _authoritative(query)
        rrset = dns.rrset.from_text_list(q.name, self.ttl, "IN", "PTR", [target + "."])
        response.answer.append(rrset)
        return response

    async def forward(self, query: dns.message.Message, wire: bytes, tcp: bool) -> bytes:
        for server in self.upstreams.servers():
            try:
                reply = await udp_exchange(wire, server, self.timeout)
                if tcp and len(reply) > 2 and reply[2] & 0x02:  # TC: ask again over TCP
                    reply = await tcp_exchange(wire, server, self.timeout)
                return reply
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                continue
        return _error(query, dns.rcode.SERVFAIL).to_wire()


def _authoritative(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA | dns.flags.RA
    return response


def _error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    response = _authoritative(query)
    response.set_rcode(rcode)
    return response


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, qid: bytes, future: asyncio.Future[bytes]) -> None:
        self.qid, self.future = qid, future

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data[:2] == self.qid and not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


async def udp_exchange(wire: bytes, server: tuple[str, int], timeout: float) -> bytes:
    """One query over UDP from a fresh socket (fresh source port); the matching reply."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Reply(wire[:2], future), remote_addr=server
    )
    try:
        transport.sendto(wire)
        return await asyncio.wait_for(future, timeout)
    finally:
        transport.close()


async def tcp_exchange(wire: bytes, server: tuple[str, int], timeout: float) -> bytes:
    connect = asyncio.open_connection(server[0], server[1])
    reader, writer = await asyncio.wait_for(connect, timeout)
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        head = await asyncio.wait_for(reader.readexactly(2), timeout)
        return await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), timeout)
    finally:
        writer.close()


class _UdpServer(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        task = asyncio.ensure_future(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr: Any) -> None:
        try:
            reply = await self.resolver.resolve(data, tcp=False, client=addr[0])
        except Exception as e:  # one bad query must not end the server
            print(f"query from {addr[0]} failed: {e!r}", file=sys.stderr)
            return
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class DnsServer:
    """UDP and TCP listeners sharing one resolver; ``start`` then ``close``."""

    def __init__(self, config: ServerConfig) -> None:
        exclude = {str(ip) for ip, _ in config.listen}
        fixed = [(str(h), int(p)) for h, p in config.upstreams]
        self.resolver = Resolver(
            Records(config.registry, config.domain),
            Upstreams(fixed, exclude),
            config.ttl,
            config.timeout,
        )
        self.config = config
        self.addresses: list[tuple[str, int]] = []
        self._closers: list[Any] = []

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sock in sockets if sockets is not None else bind_sockets(self.config.listen):
            if sock.type == socket.SOCK_DGRAM:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpServer(self.resolver), sock=sock
                )
                self._closers.append(transport)
                self.addresses.append(sock.getsockname()[:2])
            else:
                server = await asyncio.start_server(self._tcp_client, sock=sock)
                self._closers.append(server)

    async def close(self) -> None:
        for closer in self._closers:
            closer.close()
        self._closers.clear()

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                size = struct.unpack("!H", head)[0]
                wire = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE)
                peer = writer.get_extra_info("peername")
                reply = await self.resolver.resolve(
                    wire, tcp=True, client=peer[0] if peer else None
                )
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception as e:  # one bad query must not end the server
            print(f"tcp query failed: {e!r}", file=sys.stderr)
        finally:
            writer.close()


def bind_sockets(listen: list[list[Any]]) -> list[socket.socket]:
    """A UDP and a TCP socket per ``[ip, port]`` (port 0: the same free port for both)."""
    sockets: list[socket.socket] = []
    try:
        for ip, port in listen:
            for attempt in range(20):
                try:
                    sockets += _bind_pair(ip, int(port))
                    break
                except OSError as e:  # port 0: the UDP port may be taken for TCP; next one
                    if int(port) != 0 or e.errno != errno.EADDRINUSE or attempt == 19:
                        raise
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    for sock in sockets:
        sock.setblocking(False)
    return sockets


def _bind_pair(ip: str, port: int) -> list[socket.socket]:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        udp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        udp.bind((ip, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        tcp.bind((ip, udp.getsockname()[1]))
        tcp.listen(64)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return [udp, tcp]


async def serve(config: ServerConfig, sockets: list[socket.socket]) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = DnsServer(config)
    await server.start(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def _daemonize(config: ServerConfig) -> None:
    """Fork; the parent records the child's pid and exits, the child detaches its stdio."""
    pid = os.fork()
    if pid:
        if config.pidfile:
            from capsa.linux.atomicfile import write_atomic

            write_atomic(config.pidfile, f"{pid}\n".encode(), 0o644)
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(config.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if config.log else null
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m capsa.engine.network.dns_server CONFIG_JSON", file=sys.stderr)
        return 2
    config = ServerConfig.load(args[0])
    try:
        sockets = bind_sockets(config.listen)
    except OSError as e:
        where = ", ".join(f"{ip}:{port}" for ip, port in config.listen)
        print(f"cannot listen on {where}: {(e.strerror or str(e)).lower()}", file=sys.stderr)
        return 1
    _daemonize(config)
    try:
        asyncio.run(serve(config, sockets))
    finally:
        _remove_pidfile(config.pidfile)
    return 0


def _remove_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == str(os.getpid()):
                os.unlink(path)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
