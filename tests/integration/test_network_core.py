"""Network core on a real kernel: bridges, veths in namespaces, IPAM, tc, the CLI.

"Containers" are throwaway network namespaces (``unshare --net sleep``); commands run
inside them with nsenter and this venv's python.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.helpers.host import free_subnet

from capsa.config import Settings
from capsa.engine.network import firewall, veth
from capsa.engine.network.service import NetworkService
from capsa.engine.network.types import AttachRequest, Network, NetworkCreateOptions
from capsa.errors import CapsaError, InvalidArgument, NotFound

pytestmark = pytest.mark.root

MBIT10 = 10_000_000

RECEIVER = r"""
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
total, start = 0, None
while True:
    b = c.recv(65536)
    if not b:
        break
    if start is None:
        start = time.monotonic()
    else:
        total += len(b)
print(total * 8 / (time.monotonic() - start), flush=True)
"""

SENDER = r"""
import socket, sys, time
start = time.monotonic()
while True:  # right after a storm of namespace teardowns the first SYNs can be slow
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        break
    except OSError:
        if time.monotonic() - start > 60:
            raise
print(time.monotonic() - start, file=sys.stderr)
c.settimeout(60)
buf, end = b"x" * 65536, time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    c.sendall(buf)
c.close()
"""

ECHO = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.sendall(c.recv(100))
"""

CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
c.sendall(b"hello")
print(c.recv(100).decode())
"""


def in_netns(pid: int, script: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    cmd = ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", script, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def link_names() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.fixture
def netns() -> Iterator[Callable[[], int]]:
    """``netns() -> pid`` of a sleeping process in a new network namespace."""
    procs: list[subprocess.Popen[bytes]] = []

    def make() -> int:
        proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        procs.append(proc)
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{proc.pid}/ns/net") == own:  # unshare has not run yet
            assert time.monotonic() < deadline, "unshare --net did not make a namespace"
            time.sleep(0.005)
        return proc.pid

    yield make
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture
def svc(tmp_path: Path, test_token: str) -> Iterator[NetworkService]:
    settings = Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))
    service = NetworkService(settings, firewall_table=test_token)
    yield service
    errors: list[BaseException] = []
    for container_id in service.store.holders():
        try:
            service.detach(container_id)
        except CapsaError as e:
            errors.append(e)
    for net in service.store.networks():
        if not net.default:
            try:
                service.remove(net.id)
            except CapsaError as e:
                errors.append(e)
    firewall.remove_all(test_token)
    service.close()
    assert not errors, errors


@pytest.fixture
def make_net(svc: NetworkService) -> Callable[..., Network]:
    def make(**kw: object) -> Network:
        name = "capsa-test-" + secrets.token_hex(4)
        opts = NetworkCreateOptions(name=name, subnet=free_subnet(), **kw)  # type: ignore[arg-type]
        opts.options.setdefault("com.docker.network.bridge.name", "capsa-t" + secrets.token_hex(4))
        return svc.create(opts)

    return make


def _cid() -> str:
    return secrets.token_hex(32)


def _can_connect(src_pid: int, dst_pid: int, dst_ip: str) -> bool:
    port = str(random.randint(20000, 30000))
    server = in_netns(dst_pid, ECHO, port)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = in_netns(src_pid, CLIENT, dst_ip, port)
        out, _ = client.communicate(timeout=20)
        return client.returncode == 0 and out.strip() == "hello"
    finally:
        server.kill()
        server.wait()


def _container_view(pid: int, ifname: str) -> tuple[dict[str, object], list[tuple[str, str]]]:
    with veth.netns_iproute(pid) as ns:
        index = ns.link_lookup(ifname=ifname)[0]
        link = ns.get_links(index)[0]
        info = {"mac": link.get("address"), "mtu": link.get("mtu"), "up": link.get("operstate")}
        info["addrs"] = [a.get("address") for a in ns.get_addr(index=index, family=socket.AF_INET)]
        routes = [
            (str(r.get("dst") or "default"), str(r.get("gateway") or ""))
            for r in ns.get_routes(family=socket.AF_INET, table=254)
        ]
    return info, routes


def test_two_namespaces_reach_each_other(
    svc: NetworkService, make_net: Callable[..., Network], netns: Callable[[], int]
) -> None:
    net = make_net(options={"com.docker.network.driver.mtu": "1400"})
    a, b = netns(), netns()
    ep_a = svc.attach(AttachRequest(_cid(), "a", a, net.name, aliases=["web"]))
    ep_b = svc.attach(AttachRequest(_cid(), "b", b, net.id[:12], mac="02:00:00:00:00:0b"))
    assert ep_a.ip != ep_b.ip and ep_a.ifname == ep_b.ifname == "eth0"
    info, routes = _container_view(a, "eth0")
    assert info["mac"] == ep_a.mac and info["mtu"] == 1400 and info["addrs"] == [ep_a.ip]
    assert ("default", net.gateway) in routes
    assert _container_view(b, "eth0")[0]["mac"] == "02:00:00:00:00:0b"
    assert _can_connect(a, b, ep_b.ip)
    assert _can_connect(b, a, ep_a.ip)
    stats = svc.interface_stats(ep_a.container_id)
    assert stats["eth0"]["rx_bytes"] > 0 and stats["eth0"]["tx_packets"] > 0


def test_internal_network_has_no_default_route(
    svc: NetworkService, make_net: Callable[..., Network], netns: Callable[[], int]
) -> None:
    net = make_net(internal=True)
    pid = netns()
    ep = svc.attach(AttachRequest(_cid(), "a", pid, net.name))
    _, routes = _container_view(pid, ep.ifname)
    assert all(dst != "default" for dst, _gw in routes)


def test_detach_removes_links_and_leases(
    svc: NetworkService,
    make_net: Callable[..., Network],
    netns: Callable[[], int],
    test_token: str,
) -> None:
    net = make_net()
    a, b = netns(), netns()
    ep_a = svc.attach(AttachRequest(_cid(), "a", a, net.name))
    ep_b = svc.attach(AttachRequest(_cid(), "b", b, net.name))
    ours = {net.bridge, ep_a.host_ifname, ep_b.host_ifname}
    assert ours <= link_names()
    svc.detach(ep_a.container_id)
    svc.detach(ep_a.container_id)  # idempotent
    assert ep_a.host_ifname not in link_names() and net.bridge in link_names()
    os.kill(b, signal.SIGKILL)  # the namespace goes away before the detach
    svc.detach(ep_b.container_id)
    assert not ours & link_names()
    assert svc.store.leases() == [] and svc.endpoints(ep_b.container_id) == []
    assert firewall.list_rules(test_token) == []


def test_attach_failure_leaves_nothing(
    svc: NetworkService,
    make_net: Callable[..., Network],
    netns: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = make_net()
    pid = netns()
    cids = [_cid() for _ in range(3)]
    with pytest.raises(InvalidArgument):
        svc.attach(AttachRequest(cids[0], "a", pid, net.name, ip="192.0.2.99"))
    with pytest.raises(NotFound):
        svc.attach(AttachRequest(cids[1], "a", 2**22 + 7, net.name))

    def broken(*_a: object, **_kw: object) -> None:
        raise InvalidArgument("port already allocated")

    monkeypatch.setattr(firewall, "publish", broken)
    with pytest.raises(InvalidArgument, match="port already allocated"):
        svc.attach(AttachRequest(cids[2], "a", pid, net.name))
    ours = {net.bridge, *(veth.host_ifname(cid, net.id) for cid in cids)}
    assert not ours & link_names()
    with veth.netns_iproute(pid) as ns:
        assert ns.link_lookup(ifname="eth0") == []
    assert svc.store.leases() == [] and svc.store.endpoints() == []


def test_connect_and_disconnect_a_second_network(
    svc: NetworkService, make_net: Callable[..., Network], netns: Callable[[], int]
) -> None:
    first, second = make_net(), make_net()
    a, b = netns(), netns()
    cid = _cid()
    svc.attach(AttachRequest(cid, "a", a, first.name))
    peer = svc.attach(AttachRequest(_cid(), "b", b, second.name))
    ep = svc.connect(
        second.name, cid, "a", a, aliases=["x"], ip=str(ipaddress.ip_network(second.subnet)[77])
    )
    assert ep.ifname == "eth1" and ep.ip.endswith(".77")
    assert [e.ifname for e in svc.endpoints(cid)] == ["eth0", "eth1"]
    assert _can_connect(a, b, peer.ip)
    svc.disconnect(second.name, cid, a)
    with veth.netns_iproute(a) as ns:
        assert ns.link_lookup(ifname="eth1") == [] and ns.link_lookup(ifname="eth0")
    with pytest.raises(NotFound):
        svc.disconnect(second.name, cid, a)


def test_ipv6_addresses(
    svc: NetworkService, make_net: Callable[..., Network], netns: Callable[[], int]
) -> None:
    net = make_net(ipv6=True)
    pid = netns()
    ep = svc.attach(AttachRequest(_cid(), "a", pid, net.name))
    assert ep.ip6 and ipaddress.ip_address(ep.ip6) in ipaddress.ip_network(net.subnet6)
    with veth.netns_iproute(pid) as ns:
        index = ns.link_lookup(ifname="eth0")[0]
        assert ep.ip6 in [
            a.get("address") for a in ns.get_addr(index=index, family=socket.AF_INET6)
        ]


def test_cleanup_stale_releases_dead_containers(
    svc: NetworkService, make_net: Callable[..., Network], netns: Callable[[], int]
) -> None:
    net = make_net()
    live, dead = _cid(), _cid()
    svc.attach(AttachRequest(live, "live", netns(), net.name))
    ep = svc.attach(AttachRequest(dead, "dead", netns(), net.name))
    svc.store.lease(net, "crashed-before-endpoint")
    svc.cleanup_stale({live})
    assert svc.store.holders() == {live}
    assert ep.host_ifname not in link_names()


def _attach_in_child(
    root: str, runroot: str, table: str, net: str, pid: int, go: object, out: object
) -> None:
    go.wait()  # type: ignore[attr-defined]
    service = NetworkService(Settings(root=root, runroot=runroot), firewall_table=table)
    cid = secrets.token_hex(32)
    try:
        out.put(service.attach(AttachRequest(cid, f"c{pid}", pid, net)).ip)  # type: ignore[attr-defined]
    except BaseException as e:
        out.put(f"error: {e}")  # type: ignore[attr-defined]


def test_fifty_concurrent_attaches_get_distinct_addresses(
    svc: NetworkService, make_net: Callable[..., Network], netns: Callable[[], int], test_token: str
) -> None:
    net = make_net()
    pids = [netns() for _ in range(50)]
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    settings = svc.settings
    args = (settings.root, settings.runroot, test_token, net.name)
    procs = [ctx.Process(target=_attach_in_child, args=(*args, pid, go, out)) for pid in pids]
    for p in procs:
        p.start()
    go.set()
    ips = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert not [ip for ip in ips if ip.startswith("error")], ips
    assert len(set(ips)) == 50
    assert len(svc.store.endpoints(network_id=net.id)) == 50


def _measure(src: int, dst: int, dst_ip: str, seconds: float = 4) -> float:
    port = str(random.randint(30000, 40000))
    receiver = in_netns(dst, RECEIVER, port)
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        sender = in_netns(src, SENDER, dst_ip, port, str(seconds))
        _, err = sender.communicate(timeout=seconds + 90)
        assert sender.returncode == 0, err
        out, _ = receiver.communicate(timeout=30)
        return float(out.strip())
    finally:
        receiver.kill()
        receiver.wait()


def test_rate_limits_in_both_directions(
    svc: NetworkService, make_net: Callable[..., Network], netns: Callable[[], int]
) -> None:
    net = make_net()
    a, b = netns(), netns()
    ep_a = svc.attach(AttachRequest(_cid(), "a", a, net.name))
    ep_b = svc.attach(AttachRequest(_cid(), "b", b, net.name, rate_in_bps=MBIT10))
    into_b = _measure(a, b, ep_b.ip)
    assert abs(into_b - MBIT10) <= 0.2 * MBIT10, into_b
    svc.set_rate(ep_b.container_id, 0, MBIT10)
    out_of_b = _measure(b, a, ep_a.ip)
    assert abs(out_of_b - MBIT10) <= 0.2 * MBIT10, out_of_b
    assert _measure(a, b, ep_b.ip, 1) > 3 * MBIT10  # the inbound limit is gone
    assert svc.endpoints(ep_b.container_id)[0].rate_out_bps == MBIT10


def test_network_cli(tmp_path: Path, test_token: str) -> None:
    from click.testing import CliRunner

    from capsa.cli import networks
    from capsa.cli.main import cli

    if "network" not in cli.commands:
        networks.register(cli)
    base = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "network"]
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, [*base, *args], input="y\n")
        assert result.exit_code == code, result.output
        return result.output

    name = test_token
    subnet = free_subnet()
    net_id = run("create", name, "--subnet", subnet, "--label", "k=v", "--internal").strip()
    assert len(net_id) == 64
    run("create", name, code=1)
    lines = run("ls").splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert any(line.split()[:2] == [net_id[:12], name] for line in lines)
    assert run("ls", "-q", "--no-trunc", "--filter", "label=k=v").split() == [net_id]
    assert (
        run("ls", "--format", "{{.Name}}/{{.Internal}}", "-f", f"name={name}").strip()
        == f"{name}/true"
    )
    assert run("inspect", "-f", "{{.Id}} {{(index .IPAM.Config 0).Subnet}}", name).split() == [
        net_id,
        subnet,
    ]
    assert "No such network: nope" in run("inspect", name, "nope", code=1)
    assert "pre-defined" in run("rm", "bridge", code=1)
    assert run("rm", name).strip() == name
    run("create", name + "-b", "--subnet", free_subnet())
    assert run("prune").splitlines()[-3:] == ["Deleted Networks:", name + "-b", ""]
    assert run("ls", "-q").split() == [run("inspect", "-f", "{{.Id}}", "bridge").strip()[:12]]
