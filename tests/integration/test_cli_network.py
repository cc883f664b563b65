"""Networking through the ``capsa`` CLI, as a Docker user sees it (issue 5).

User networks (names, aliases, round-robin, isolation, ``--internal``), published ports
(host address, 127.0.0.1, hairpin, UDP, ranges, ``-P``), connect/disconnect while running,
outbound NAT to a server in a network namespace made by the test (never the internet),
bandwidth limits, parallel IPAM, the default bridge, resolv.conf, and at the end: no
link, nftables rule or lease left behind.

Subnets are picked from 10.200-250.x.0/24 away from every host route. The machine may
be shared: the final check only looks at the links, chains and leases of this module.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import capsa_cli, unique_name
from tests.helpers.capsa_cli import IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

HTTPD = ("httpd", "-f", "-p", "80", "-h", "/etc")
EXPOSE_IMAGE = "capsa-test/busybox-expose:latest"
RATE = 10_000_000  # 10mbit
RATE_SECONDS = 5


# -- what this module made, to check that it is all gone at the end -------------------------


@dataclass
class Made:
    links_at_start: frozenset[str]
    table_at_start: bool
    bridges: dict[str, str] = field(default_factory=dict)  # network id -> bridge name
    containers: set[str] = field(default_factory=set)
    subnets: set[str] = field(default_factory=set)

    def veths(self) -> set[str]:
        from capsa.engine.network.veth import host_ifname

        return {host_ifname(c, n) for c in self.containers for n in self.bridges}


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _ruleset(capsa: CapsaCli) -> dict[str, Any] | None:
    """The root's own nftables table (``inet capsa-<tag>``), None when there is none."""
    from capsa.engine.network.service import root_firewall_table

    table = root_firewall_table(str(capsa.root))
    proc = subprocess.run(
        ["nft", "-j", "list", "table", "inet", table], capture_output=True, text=True
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


@pytest.fixture(scope="module", autouse=True)
def made(capsa_module: CapsaCli) -> Iterator[Made]:
    capsa_module.network = None  # this module is about networks: docker's default, bridge
    state = Made(frozenset(_links()), _ruleset(capsa_module) is not None)
    yield state
    capsa_module.cleanup()
    names = capsa_module.run("network", "ls", "--format", "{{.Name}}", check=False).stdout
    for name in names.split():
        if name.startswith("capsa-test-"):
            capsa_module.run("network", "rm", name, check=False)


def _routes() -> list[ipaddress.IPv4Network]:
    from pyroute2 import IPRoute

    from capsa.engine.network import pools

    with IPRoute() as ipr:
        return [ipaddress.IPv4Network(r, strict=False) for r in pools.host_routes(ipr)]


def free_subnet(made: Made) -> str:
    """A /24 in 10.200-250.x.0 overlapping no host route and nothing this module used."""
    busy = _routes() + [ipaddress.IPv4Network(s) for s in made.subnets]
    for _ in range(500):
        net = ipaddress.IPv4Network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(b) for b in busy):
            made.subnets.add(str(net))
            return str(net)
    raise AssertionError("no free subnet in 10.200.0.0-10.250.255.0")


class Nets:
    """``network create`` with a free subnet and a unique name; removed at teardown."""

    def __init__(self, cli: CapsaCli, made: Made) -> None:
        self.cli, self.made = cli, made
        self.names: list[str] = []

    def create(self, *flags: str, subnet: str = "") -> str:
        name = unique_name()
        sub = subnet or free_subnet(self.made)
        self.cli.run("network", "create", "--subnet", sub, *flags, name)
        self.names.append(name)
        self.track(name)
        return name

    def track(self, name: str) -> None:
        from capsa.engine.network.store import NetworkStore

        net_id = self.info(name)["Id"]  # also makes the default network's record
        store = NetworkStore(str(self.cli.root))
        try:
            net = store.find_network(net_id)
            assert net is not None, f"network {name} has no record"
            self.made.bridges[net.id] = net.bridge
        finally:
            store.close()

    def info(self, name: str) -> dict[str, Any]:
        (doc,) = self.cli.json("network", "inspect", name)
        assert isinstance(doc, dict)
        return doc

    def gateway(self, name: str) -> str:
        return str(self.info(name)["IPAM"]["Config"][0]["Gateway"])

    def remove_all(self) -> list[str]:
        problems = self.cli.cleanup()
        for name in self.names:
            proc = self.cli.run("network", "rm", name, check=False)
            if proc.returncode:
                problems.append(f"network rm {name}: {proc.stderr.strip()}")
        return problems


@pytest.fixture
def nets(capsa: CapsaCli, made: Made) -> Iterator[Nets]:
    n = Nets(capsa, made)
    n.track("bridge")
    yield n
    problems = n.remove_all()
    assert not problems, "network cleanup: " + "; ".join(problems)


# -- small helpers ------------------------------------------------------------------------


def start(capsa: CapsaCli, made: Made, *flags: str, cmd: tuple[str, ...] = HTTPD) -> str:
    """A detached container; its name."""
    name = capsa.name()
    made.containers.add(capsa.detached("--name", name, *flags, cmd=cmd))
    return name


def ip_on(capsa: CapsaCli, container: str, network: str) -> str:
    """The container's address on ``network``, from ``network inspect``."""
    out = capsa.run("network", "inspect", "-f", "{{json .Containers}}", network).stdout
    for ep in json.loads(out or "{}").values():
        if ep["Name"] == container:
            return str(ep["IPv4Address"]).split("/")[0]
    raise AssertionError(f"{container} has no endpoint on {network}: {out}")


def retry(cmd: str, tries: int = 10) -> str:
    """A shell loop retrying ``cmd`` (servers may still be starting)."""
    return f"for i in $(seq {tries}); do {cmd} && exit 0; sleep 0.3; done; exit 1"


def fetch(capsa: CapsaCli, url: str, *flags: str, tries: int = 10) -> str:
    """``wget -qO- url`` from a throw-away container; the body (fails the test on error)."""
    proc = capsa.sh(retry(f"wget -qO- {url}", tries), *flags)
    assert proc.returncode == 0, f"wget {url} {flags}: {proc.stdout} {proc.stderr}"
    return proc.stdout.strip()


def cannot_connect(capsa: CapsaCli, ip: str, port: int, *flags: str) -> bool:
    """No TCP connection to ip:port within 2 s from a container started with ``flags``."""
    proc = capsa.sh(f"nc -w 2 {ip} {port} </dev/null && echo CONNECTED", *flags)
    return "CONNECTED" not in proc.stdout


def short_id(capsa: CapsaCli, name: str) -> str:
    return capsa.full_id(name)[:12]


def curl(url: str, tries: int = 20) -> str:
    for _ in range(tries):
        proc = subprocess.run(
            ["curl", "-sS", "--max-time", "3", url], capture_output=True, text=True
        )
        if proc.returncode == 0:
            return proc.stdout.strip()
        time.sleep(0.2)
    raise AssertionError(f"curl {url}: {proc.stderr.strip()}")


def host_address() -> str:
    """The host's own address on its default route (the one other hosts would use)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        try:
            routes = ipr.route("get", dst="192.0.2.255")
        except Exception:
            routes = []
        for r in routes:
            src = r.get_attr("RTA_PREFSRC")
            if src and not src.startswith("127."):
                return str(src)
    pytest.skip("the host has no address on a default route")


def free_ports(count: int = 1, proto: int = socket.SOCK_STREAM) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(200):
        base = random.randint(20000, 60000)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, proto)
                socks.append(s)
                s.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free ports")


# -- a server outside capsa: a network namespace routed from the host ---------------------

SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("outside " + self.client_address[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), H)
print("ready", flush=True)
s.serve_forever()
"""


@dataclass
class Outside:
    ip: str  # the server, inside the namespace
    host_ip: str  # the host's end of the veth (what NAT'd clients appear as)
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}/"


@pytest.fixture
def outside(made: Made) -> Iterator[Outside]:
    """An HTTP server in a fresh netns, reachable from the host over a veth."""
    ns, link = unique_name(), f"capsa-test-{secrets.token_hex(2)}"
    net = ipaddress.IPv4Network(free_subnet(made))
    host_ip, ns_ip = str(net[1]), str(net[2])
    server: subprocess.Popen[str] | None = None
    try:
        for argv in (
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns],
            ["ip", "addr", "add", f"{host_ip}/24", "dev", link],
            ["ip", "link", "set", link, "up"],
            ["ip", "-n", ns, "addr", "add", f"{ns_ip}/24", "dev", "eth0"],
            ["ip", "-n", ns, "link", "set", "eth0", "up"],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, "8080"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield Outside(ns_ip, host_ip, 8080)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# -- user networks: names, aliases, round-robin, isolation, internal ------------------------


def test_containers_reach_each_other_by_name_and_alias(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    net = nets.create()
    srv = start(capsa, made, "--network", net, "--network-alias", "web")
    sid = short_id(capsa, srv)
    assert fetch(capsa, f"http://{srv}/hostname", "--network", net) == sid
    assert fetch(capsa, "http://web/hostname", "--network", net) == sid
    resolv = capsa.sh("cat /etc/resolv.conf", "--network", net).stdout
    assert f"nameserver {nets.gateway(net)}" in resolv


def test_alias_of_several_containers_answers_round_robin(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    net = nets.create()
    a = start(capsa, made, "--network", net, "--network-alias", "pool")
    b = start(capsa, made, "--network", net, "--network-alias", "pool")
    want = {ip_on(capsa, a, net), ip_on(capsa, b, net)}
    script = "for i in 1 2 3 4; do nslookup -type=a pool; done"
    out = capsa.sh(script, "--network", net).stdout
    answers = [line.split()[-1] for line in out.splitlines() if line.startswith("Address")]
    assert want <= set(answers), out
    firsts = [blk.split("Address:")[2].split()[0] for blk in out.split("Server:")[1:]]
    assert len(set(firsts)) == 2, f"the first answer never rotates: {firsts}"


def test_ipv6_network_addresses_and_reaches_containers(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    v6 = str(
        ipaddress.ip_network(
            f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}::/64"
        )
    )
    net = nets.create("--ipv6", "--subnet", v6)
    doc = nets.info(net)
    assert doc["EnableIPv6"] is True
    assert v6 in [c["Subnet"] for c in doc["IPAM"]["Config"]]
    srv = start(capsa, made, "--network", net)
    out = capsa.run("network", "inspect", "-f", "{{json .Containers}}", net).stdout
    (ep,) = [e for e in json.loads(out).values() if e["Name"] == srv]
    ip6 = str(ep["IPv6Address"]).split("/")[0]
    assert ipaddress.IPv6Address(ip6) in ipaddress.IPv6Network(v6)
    seen = capsa.sh("ip -6 addr show scope global", "--network", net)
    assert v6.split("::")[0] in seen.stdout, seen.stdout
    ping = capsa.sh(retry(f"ping -c 1 -W 2 {ip6}", 5), "--network", net)
    assert ping.returncode == 0, f"ping {ip6}: {ping.stdout} {ping.stderr}"


def test_two_user_networks_are_isolated(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    red, blue = nets.create(), nets.create()
    srv = start(capsa, made, "--network", red)
    ip = ip_on(capsa, srv, red)
    assert fetch(capsa, f"http://{ip}/hostname", "--network", red) == short_id(capsa, srv)
    assert cannot_connect(capsa, ip, 80, "--network", blue)
    assert cannot_connect(capsa, ip, 80, "--network", "bridge")
    missing = capsa.sh(f"nslookup {srv}", "--network", blue)
    assert ip not in missing.stdout


def test_internal_network_has_no_way_out(
    capsa: CapsaCli, nets: Nets, made: Made, outside: Outside
) -> None:
    net = nets.create("--internal")
    srv = start(capsa, made, "--network", net)
    routes = capsa.sh("ip route", "--network", net).stdout
    assert "default" not in routes, routes
    assert cannot_connect(capsa, outside.ip, outside.port, "--network", net)
    # still a network: its members reach each other
    assert fetch(capsa, f"http://{srv}/hostname", "--network", net) == short_id(capsa, srv)
    doc = nets.info(net)
    assert doc["Internal"] is True


def test_outbound_nat_reaches_a_server_in_another_netns(
    capsa: CapsaCli, nets: Nets, outside: Outside
) -> None:
    net = nets.create()
    for flags in (("--network", net), ("--network", "bridge"), ()):
        body = fetch(capsa, outside.url, *flags)
        # the namespace has no route back to the container subnet: only NAT makes it work
        assert body == f"outside {outside.host_ip}", flags


# -- published ports ------------------------------------------------------------------------


def test_published_port_answers_on_host_address_loopback_and_hairpin(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    host = host_address()
    port = free_ports()
    net, other = nets.create(), nets.create()
    srv = start(capsa, made, "--network", net, "-p", f"{port}:80")
    sid = short_id(capsa, srv)
    assert curl(f"http://{host}:{port}/hostname") == sid
    assert curl(f"http://127.0.0.1:{port}/hostname") == sid
    url = f"http://{host}:{port}/hostname"
    assert fetch(capsa, url, "--network", net) == sid  # hairpin, same bridge
    assert fetch(capsa, url, "--network", other) == sid  # from another network
    assert fetch(capsa, url, "--network", "bridge") == sid
    assert capsa.run("port", srv, "80").stdout.split() == [f"0.0.0.0:{port}"]


def test_publish_on_loopback_only_and_ranges(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    host = host_address()
    lo, rng = free_ports(), free_ports(2)
    net = nets.create()
    two = "httpd -p 80 -h /etc && httpd -f -p 81 -h /etc"
    srv = start(
        capsa,
        made,
        "--network",
        net,
        "-p",
        f"127.0.0.1:{lo}:80",
        "-p",
        f"{rng}-{rng + 1}:80-81",
        cmd=("sh", "-c", two),
    )
    sid = short_id(capsa, srv)
    assert curl(f"http://127.0.0.1:{lo}/hostname") == sid
    refused = subprocess.run(
        ["curl", "-sS", "--max-time", "2", f"http://{host}:{lo}/hostname"], capture_output=True
    )
    assert refused.returncode != 0, "a 127.0.0.1 binding answers on the host address"
    assert curl(f"http://{host}:{rng}/hostname") == sid
    assert curl(f"http://127.0.0.1:{rng + 1}/hostname") == sid
    ports = capsa.run("port", srv).stdout
    assert f"80/tcp -> 127.0.0.1:{lo}" in ports and f"81/tcp -> 0.0.0.0:{rng + 1}" in ports


UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo " + data, peer)
"""


def _udp_echo_in(capsa: CapsaCli, name: str, port: int) -> subprocess.Popen[str]:
    """A UDP echo server in the container's network namespace (busybox's nc has no -u)."""
    netns = f"--net=/proc/{capsa.pid(name)}/ns/net"
    proc = subprocess.Popen(
        ["nsenter", netns, sys.executable, "-c", UDP_ECHO, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _udp_ask(target: str, port: int, word: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        for _ in range(10):
            s.sendto(word, (target, port))
            with contextlib.suppress(TimeoutError):
                return s.recvfrom(2048)[0]
    return b""


def test_udp_publishing(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    host = host_address()
    net = nets.create()
    port = free_ports(proto=socket.SOCK_DGRAM)
    name = start(capsa, made, "--network", net, "-p", f"{port}:5353/udp", cmd=("sleep", "300"))
    echo = _udp_echo_in(capsa, name, 5353)
    try:
        for target in (host, "127.0.0.1"):
            assert _udp_ask(target, port, b"hello") == b"echo hello", f"udp via {target}"
    finally:
        echo.kill()
        echo.wait()
    assert capsa.run("port", name).stdout.split() == ["5353/udp", "->", f"0.0.0.0:{port}"]


def test_publish_all_with_expose(
    capsa: CapsaCli, nets: Nets, made: Made, busybox_tarball: Path
) -> None:
    capsa.run(
        "import", "-c", 'CMD ["/bin/sh"]', "-c", "EXPOSE 80", str(busybox_tarball), EXPOSE_IMAGE
    )
    try:
        name = capsa.name()
        made.containers.add(
            capsa.run("run", "-d", "--name", name, "-P", EXPOSE_IMAGE, *HTTPD).stdout.strip()
        )
        mapped = capsa.run("port", name, "80/tcp").stdout.split()
        assert len(mapped) == 1 and mapped[0].startswith("0.0.0.0:"), mapped
        port = int(mapped[0].rsplit(":", 1)[1])
        assert curl(f"http://127.0.0.1:{port}/hostname") == short_id(capsa, name)
    finally:
        capsa.cleanup()
        capsa.run("rmi", EXPOSE_IMAGE, check=False)


def test_ps_and_inspect_show_published_ports(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    port = free_ports()
    net = nets.create()
    srv = start(capsa, made, "--network", net, "-p", f"{port}:80")
    ports = capsa.run("ps", "--filter", f"name={srv}", "--format", "{{.Ports}}").stdout
    assert f"0.0.0.0:{port}->80/tcp" in ports, f"ps PORTS: {ports!r}"
    doc = capsa.inspect(srv)
    bindings = doc["NetworkSettings"]["Ports"].get("80/tcp")
    assert bindings == [{"HostIp": "0.0.0.0", "HostPort": str(port)}], doc["NetworkSettings"]


def test_inspect_shows_addresses_per_network(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    net = nets.create()
    srv = start(capsa, made, "--network", net)
    ip = ip_on(capsa, srv, net)
    settings = capsa.inspect(srv)["NetworkSettings"]
    entry = settings["Networks"].get(net) or {}
    assert entry.get("IPAddress") == ip, settings
    assert entry.get("Gateway") == nets.gateway(net), settings
    assert entry.get("MacAddress"), settings


# -- connect / disconnect -------------------------------------------------------------------


def _addresses(capsa: CapsaCli, name: str) -> dict[str, str]:
    out = capsa.run("exec", name, "ip", "-o", "-4", "addr").stdout
    return {line.split()[1]: line.split()[3] for line in out.splitlines() if "inet" in line}


def test_connect_and_disconnect_while_running(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    first, second = nets.create(), nets.create()
    app = start(capsa, made, "--network", first)
    assert set(_addresses(capsa, app)) == {"lo", "eth0"}
    capsa.run("network", "connect", "--alias", "late", second, app)
    addrs = _addresses(capsa, app)
    assert set(addrs) == {"lo", "eth0", "eth1"}, addrs
    second_ip = ip_on(capsa, app, second)
    assert addrs["eth1"] == f"{second_ip}/24"
    sid = short_id(capsa, app)
    assert fetch(capsa, f"http://{app}/hostname", "--network", second) == sid
    assert fetch(capsa, "http://late/hostname", "--network", second) == sid
    capsa.run("network", "disconnect", second, app)
    assert set(_addresses(capsa, app)) == {"lo", "eth0"}
    gone = capsa.sh(f"wget -T 2 -qO- http://{app}/hostname", "--network", second)
    assert sid not in gone.stdout
    assert cannot_connect(capsa, second_ip, 80, "--network", second)
    assert fetch(capsa, f"http://{app}/hostname", "--network", first) == sid


def test_connected_container_resolves_names_on_its_new_network(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    first, second = nets.create(), nets.create()
    app = start(capsa, made, "--network", first)
    db = start(capsa, made, "--network", second)
    capsa.run("network", "connect", second, app)
    proc = capsa.run("exec", app, "sh", "-c", retry(f"wget -qO- http://{db}/hostname", 3))
    assert proc.stdout.strip() == short_id(capsa, db)


def test_a_connected_network_is_joined_again_at_every_start(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    """``network connect --alias --ip`` is kept with the container: after a restart it
    is on that network again, with that address and that alias (and only there)."""
    first = nets.create()
    subnet = ipaddress.IPv4Network(free_subnet(made))
    second = nets.create(subnet=str(subnet))
    asked = str(subnet.network_address + 77)
    app = start(capsa, made, "--network", first)
    capsa.run("network", "connect", "--alias", "kept", "--ip", asked, second, app)
    capsa.run("stop", "-t", "1", app)
    stopped = capsa.inspect(app)["NetworkSettings"]["Networks"]
    assert stopped[second]["IPAMConfig"] == {"IPv4Address": asked}
    assert stopped[first]["IPAMConfig"] is None
    capsa.run("start", app)
    assert ip_on(capsa, app, second) == asked
    assert _addresses(capsa, app)["eth1"] == f"{asked}/24"
    sid = short_id(capsa, app)
    assert fetch(capsa, "http://kept/hostname", "--network", second) == sid
    elsewhere = capsa.sh("wget -qO- http://kept/hostname", "--network", first)
    assert sid not in elsewhere.stdout  # the alias belongs to the network it was given on
    capsa.run("network", "disconnect", second, app)
    capsa.run("restart", "-t", "1", app)
    assert set(_addresses(capsa, app)) == {"lo", "eth0"}


# -- bandwidth ----------------------------------------------------------------------------


def _serve_download(size: int) -> tuple[int, dict[str, float]]:
    """An HTTP/1.0 server on the host sending ``size`` bytes once; the rate it measured
    (first byte sent -> the client closed, i.e. everything was received)."""
    srv = socket.create_server(("0.0.0.0", 0))
    result: dict[str, float] = {}

    def run() -> None:
        with srv:
            srv.settimeout(60)
            conn, _ = srv.accept()
            with conn:
                while b"\r\n\r\n" not in conn.recv(4096):
                    pass
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                began, chunk, left = time.monotonic(), b"\0" * 65536, size
                while left:
                    left -= conn.send(chunk[: min(left, len(chunk))])
                conn.settimeout(60)
                while conn.recv(65536):
                    pass
                result["bps"] = size * 8 / (time.monotonic() - began)

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1], result


def _receive_upload(size: int) -> tuple[int, dict[str, float]]:
    """A TCP sink on the host timing ``size`` bytes from the first to the last byte."""
    srv = socket.create_server(("0.0.0.0", 0))
    result: dict[str, float] = {}

    def run() -> None:
        with srv:
            srv.settimeout(60)
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(60)
                got = len(conn.recv(65536))
                began = time.monotonic()
                while got < size:
                    data = conn.recv(65536)
                    if not data:
                        break
                    got += len(data)
                result["bps"] = got * 8 / (time.monotonic() - began)

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1], result


def test_rate_limits_in_both_directions(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    net = nets.create()
    gw = nets.gateway(net)
    flags = ("--network", net, "--network-rate-in", "10mbit", "--network-rate-out", "10mbit")
    size = RATE * RATE_SECONDS // 8
    port, down = _serve_download(size)
    proc = capsa.sh(f"wget -qO /dev/null http://{gw}:{port}/blob", *flags)
    assert proc.returncode == 0 and "bps" in down, proc.stderr
    blocks = size // 65536
    port, up = _receive_upload(blocks * 65536)
    proc = capsa.sh(f"dd if=/dev/zero bs=65536 count={blocks} 2>/dev/null | nc {gw} {port}", *flags)
    deadline = time.monotonic() + 10
    while "bps" not in up and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "bps" in up, proc.stderr
    measured = {"in": down["bps"], "out": up["bps"]}
    print(f"measured bit/s: {measured}")
    for direction, bps in measured.items():
        assert 0.8 * RATE <= bps <= 1.2 * RATE, f"{direction}: {bps / 1e6:.2f} mbit/s ({measured})"


def test_stats_show_network_bytes(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    srv = start(capsa, made)
    ip = ip_on(capsa, srv, "bridge")
    for _ in range(20):
        curl(f"http://{ip}/passwd")
    out = capsa.run("stats", "--no-stream", "--format", "{{.NetIO}}", srv).stdout
    rx, _, tx = out.strip().partition(" / ")
    assert rx[:1] not in ("", "0") and tx[:1] not in ("", "0"), out


# -- IPAM -----------------------------------------------------------------------------------


def _leases(capsa: CapsaCli) -> list[tuple[str, str, str]]:
    from capsa.engine.network.store import NetworkStore

    store = NetworkStore(str(capsa.root))
    try:
        return store.leases()
    finally:
        store.close()


def test_fifty_parallel_runs_get_distinct_addresses(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    net = nets.create()
    names = [capsa.name() for _ in range(50)]
    procs = [
        capsa.popen("run", "-d", "--name", n, "--network", net, IMAGE, "sleep", "300")
        for n in names
    ]
    errors = []
    for n, p in zip(names, procs, strict=True):
        out, err = p.communicate(timeout=300)
        if p.returncode == 0:
            made.containers.add(out.strip().splitlines()[-1])
            capsa.ids.add(out.strip().splitlines()[-1])
        else:
            errors.append(f"{n}: {err.strip()}")
    assert not errors, "\n".join(errors)
    out = capsa.run("network", "inspect", "-f", "{{json .Containers}}", net).stdout
    ips = [ep["IPv4Address"] for ep in json.loads(out).values()]
    assert len(ips) == 50 and len(set(ips)) == 50, sorted(ips)
    net_id = nets.info(net)["Id"]
    assert len([lease for lease in _leases(capsa) if lease[0] == net_id]) == 50
    assert not capsa.cleanup()
    assert [lease for lease in _leases(capsa) if lease[0] == net_id] == []


def test_ip_and_mac_address_flags(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    net = nets.create()
    subnet = ipaddress.IPv4Network(nets.info(net)["IPAM"]["Config"][0]["Subnet"])
    ip, mac = str(subnet[77]), "02:42:ac:11:00:99"
    name = start(capsa, made, "--network", net, "--ip", ip, "--mac-address", mac)
    out = capsa.run("exec", name, "ip", "addr", "show", "eth0").stdout
    assert f"inet {ip}/24" in out and mac in out, out
    taken = capsa.run("run", "-d", "--network", net, "--ip", ip, IMAGE, "true", check=False)
    assert taken.returncode != 0 and "Traceback" not in taken.stderr


# -- the default bridge, none, host, container: ---------------------------------------------


def test_default_bridge_reaches_by_ip_but_not_by_name(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    srv = start(capsa, made)
    ip = ip_on(capsa, srv, "bridge")
    assert fetch(capsa, f"http://{ip}/hostname") == short_id(capsa, srv)
    by_name = capsa.sh(f"wget -T 2 -qO- http://{srv}/hostname")
    assert by_name.returncode != 0 and short_id(capsa, srv) not in by_name.stdout


def test_network_modes_none_and_host(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    none = capsa.sh("ls /sys/class/net", "--network", "none").stdout.split()
    assert none == ["lo"]
    host = capsa.sh("ls /sys/class/net", "--network", "host").stdout.split()
    assert "lo" in host and (set(host) - {"lo"}) & _links(), host


def test_network_container_mode_shares_the_namespace(
    capsa: CapsaCli, nets: Nets, made: Made
) -> None:
    srv = start(capsa, made)
    sid = short_id(capsa, srv)
    body = fetch(capsa, "http://127.0.0.1/hostname", "--network", f"container:{srv}", tries=3)
    assert body == sid


@pytest.fixture
def other_root(busybox_tarball: Path) -> Iterator[CapsaCli]:
    """A second capsa with its own roots on the same machine (as a second user/service)."""
    base = Path(tempfile.mkdtemp(prefix="ct", dir="/tmp"))
    cli = CapsaCli(base / "root", base / "r", network=None)
    try:
        cli.run("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tarball), IMAGE, timeout=120)
        yield cli
    finally:
        problems = cli.cleanup()
        if not cli.mounts():
            shutil.rmtree(base, ignore_errors=True)
        assert not problems, problems


def test_two_roots_share_the_default_bridge_safely(
    capsa: CapsaCli, nets: Nets, made: Made, other_root: CapsaCli
) -> None:
    mine = start(capsa, made)
    theirs = other_root.name()
    made.containers.add(other_root.detached("--name", theirs, cmd=HTTPD))
    a, b = ip_on(capsa, mine, "bridge"), ip_on(other_root, theirs, "bridge")
    assert a != b, f"both roots leased {a} on the shared default bridge"
    capsa.run("rm", "-f", mine)
    assert fetch(other_root, f"http://{b}/hostname", tries=3) == short_id(other_root, theirs)


# -- resolv.conf and /etc/hosts -------------------------------------------------------------


def test_dns_flags_and_add_host(capsa: CapsaCli, nets: Nets) -> None:
    out = capsa.sh(
        "cat /etc/resolv.conf /etc/hosts",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:3",
        "--add-host",
        "db.example.test:10.1.2.3",
    ).stdout
    lines = out.splitlines()
    assert "nameserver 10.0.0.53" in lines and "search example.test" in lines
    assert "options ndots:3" in lines
    assert any(line.split() == ["10.1.2.3", "db.example.test"] for line in lines), out


def _resolv_with_host_files(capsa: CapsaCli, tmp: Path, etc: str, systemd: str) -> str:
    """The container's resolv.conf when the host's files are ``etc`` and (if not empty) the
    systemd-resolved upstream file ``systemd`` (private mount namespace: the host's own
    files are never touched)."""
    tmp.mkdir()
    (tmp / "resolv.conf").write_text(etc)
    mounts = f"mount --bind {tmp}/resolv.conf /etc/resolv.conf"
    if systemd:
        (tmp / "systemd" / "resolve").mkdir(parents=True)
        (tmp / "systemd" / "resolve" / "resolv.conf").write_text(systemd)
        os.makedirs("/run/systemd", exist_ok=True)
        mounts += f" && mount --bind {tmp}/systemd /run/systemd"
    argv = " ".join(capsa.argv("run", "--rm", IMAGE, "cat", "/etc/resolv.conf"))
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"{mounts} && {argv}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_resolv_conf_with_a_stub_resolver_on_the_host(
    capsa: CapsaCli, nets: Nets, tmp_path: Path
) -> None:
    stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.test\n"
    upstream = "nameserver 10.9.8.7\nsearch corp.test\n"
    with_upstream = _resolv_with_host_files(capsa, tmp_path / "a", stub, upstream)
    assert "nameserver 10.9.8.7" in with_upstream.splitlines(), with_upstream
    stub_only = _resolv_with_host_files(capsa, tmp_path / "b", stub, "")
    servers = [ln.split()[1] for ln in stub_only.splitlines() if ln.startswith("nameserver")]
    assert servers and not any(s.startswith("127.") for s in servers), stub_only
    default = capsa.sh("cat /etc/resolv.conf").stdout
    assert "nameserver 127." not in default


# -- network commands -----------------------------------------------------------------------


def test_network_create_options_and_rm_in_use(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    bridge = f"capsa-test-{secrets.token_hex(2)}"
    net = nets.create("--label", "team=qa", "-o", f"com.docker.network.bridge.name={bridge}")
    doc = nets.info(net)
    assert doc["Labels"] == {"team": "qa"} and doc["Driver"] == "bridge"
    listed = capsa.run("network", "ls", "--filter", "label=team=qa", "-q").stdout.split()
    assert listed == [str(doc["Id"])[:12]]
    srv = start(capsa, made, "--network", net)
    assert Path("/sys/class/net", bridge, "brif").is_dir()
    busy = capsa.run("network", "rm", net, check=False)
    assert busy.returncode != 0 and "active endpoints" in busy.stderr
    capsa.run("rm", "-f", srv)
    assert not Path("/sys/class/net", bridge).exists(), "the bridge outlives its last endpoint"
    clash = capsa.run(
        "network",
        "create",
        "--subnet",
        doc["IPAM"]["Config"][0]["Subnet"],
        capsa.name(),
        check=False,
    )
    assert clash.returncode != 0 and "Traceback" not in clash.stderr


def test_system_prune_removes_unused_networks(capsa: CapsaCli, nets: Nets, made: Made) -> None:
    used, unused = nets.create(), nets.create()
    start(capsa, made, "--network", used)
    out = capsa.run("system", "prune", "-f").stdout
    names = capsa.run("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert unused not in names and unused in out
    assert used in names and "bridge" in names
    nets.names.remove(unused)


# -- at the end: everything this module made is gone ----------------------------------------


def test_zz_everything_is_removed(capsa: CapsaCli, made: Made) -> None:
    assert not capsa.cleanup()
    capsa.run("network", "prune", "-f")
    assert capsa.run("network", "ls", "--format", "{{.Name}}").stdout.split() == ["bridge"]
    assert _leases(capsa) == []
    from capsa.engine.network.store import NetworkStore

    store = NetworkStore(str(capsa.root))
    try:
        assert store.endpoints() == []
    finally:
        store.close()
    links = _links()
    mine = set(made.bridges.values()) | made.veths()
    left = sorted((links & mine) - made.links_at_start)
    # capsa0 may serve other roots on this machine: only an idle one counts
    fresh = "capsa0" in links and "capsa0" not in made.links_at_start
    if fresh and not os.listdir("/sys/class/net/capsa0/brif"):
        left.append("capsa0")
    assert not left, f"links left behind: {left}"
    # the root's own table goes with its last network (other roots have tables of theirs)
    assert _ruleset(capsa) is None, f"nftables table left: {json.dumps(_ruleset(capsa))}"


def test_connect_refused_for_none_and_shared_namespaces(capsa: CapsaCli, nets: Nets) -> None:
    """As dockerd: a container without a network of its own (none, host, another
    container's) cannot join one; nothing is recorded."""
    net = nets.create()
    lone = capsa.name()
    capsa.run("create", "--network", "none", "--name", lone, IMAGE, "true")
    refused = capsa.run("network", "connect", net, lone, check=False)
    assert refused.returncode == 1
    assert "private (none) mode" in refused.stderr and "Traceback" not in refused.stderr
    shared = capsa.name()
    capsa.run("create", "--network", "host", "--name", shared, IMAGE, "true")
    refused = capsa.run("network", "connect", net, shared, check=False)
    assert "cannot be connected to any other network" in refused.stderr
    networks = capsa.json("inspect", lone)[0]["NetworkSettings"]["Networks"]
    assert list(networks) == ["none"]
