"""NetworkService without a kernel: network records, filters, hooks, resolv.conf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from capsa.config import Settings
from capsa.engine.network import service as service_mod
from capsa.engine.network.service import NetworkService
from capsa.engine.network.types import AttachRequest, Endpoint, NetworkCreateOptions
from capsa.errors import AlreadyExists, Conflict, InvalidArgument, NotFound


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record H20's hooks and bridge removal instead of touching the kernel."""
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(service_mod, "_call", lambda *a, **kw: seen.append(a[:2]))
    monkeypatch.setattr(service_mod, "_remove_bridge", lambda name: seen.append(("rm", name)))
    monkeypatch.setattr(NetworkService, "_routes", staticmethod(lambda: ["10.89.0.0/24"]))
    return seen


@pytest.fixture
def svc(tmp_path: Path, calls: list[tuple[Any, ...]]) -> NetworkService:
    return NetworkService(Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run")))


def test_default_network(svc: NetworkService) -> None:
    net = svc.default()
    assert (net.name, net.subnet, net.gateway, net.default) == (
        "bridge",
        "10.88.0.0/16",
        "10.88.0.1",
        True,
    )
    # a private root gets a bridge of its own (capsa0 belongs to /var/lib/capsa)
    assert net.bridge.startswith("capsa") and net.bridge != "capsa0" and len(net.bridge) <= 15
    assert svc.default() == net == svc.get("bridge") == svc.get(net.id[:12])


def test_create_picks_a_free_subnet(svc: NetworkService) -> None:
    a = svc.create(NetworkCreateOptions(name="a"))
    b = svc.create(NetworkCreateOptions(name="b"))
    assert (a.subnet, a.gateway) == ("10.89.1.0/24", "10.89.1.1")  # 10.89.0.0/24 is routed
    assert b.subnet == "10.89.2.0/24"
    with pytest.raises(AlreadyExists):
        svc.create(NetworkCreateOptions(name="a"))
    with pytest.raises(Conflict, match="overlaps"):
        svc.create(NetworkCreateOptions(name="c", subnet="10.89.0.0/16"))


@pytest.mark.parametrize("name", ["bridge", "host", "none"])
def test_reserved_names(svc: NetworkService, name: str) -> None:
    with pytest.raises(Conflict):
        svc.create(NetworkCreateOptions(name=name))


def test_unknown_driver(svc: NetworkService) -> None:
    with pytest.raises(InvalidArgument):
        svc.create(NetworkCreateOptions(name="x", driver="overlay"))


def test_filters(svc: NetworkService) -> None:
    svc.create(NetworkCreateOptions(name="front", labels={"tier": "web"}))
    svc.create(NetworkCreateOptions(name="back", labels={"tier": "db"}, internal=True))

    def names(filters: dict[str, list[str]]) -> list[str]:
        return [n.name for n in svc.list(filters)]

    assert names({}) == ["back", "bridge", "front"]
    assert names({"label": ["tier=web"]}) == ["front"]
    assert names({"label": ["tier"]}) == ["back", "front"]
    assert names({"name": ["ro"]}) == ["front"]
    assert names({"type": ["builtin"]}) == ["bridge"]
    assert names({"dangling": ["true"]}) == ["back", "front"]
    assert names({"driver": ["bridge"], "name": ["back", "front"]}) == ["back", "front"]
    with pytest.raises(InvalidArgument):
        svc.list({"colour": ["red"]})


def test_remove_and_prune(svc: NetworkService, calls: list[tuple[Any, ...]]) -> None:
    net = svc.create(NetworkCreateOptions(name="alpha"))
    svc.create(NetworkCreateOptions(name="beta"))
    svc.remove("beta")
    assert calls == []  # never set up: nothing to tear down
    svc.create(NetworkCreateOptions(name="beta"))
    for kind in ("owned", "up"):  # as the first attach leaves them
        service_mod._touch(svc._marker(net, kind))
    svc.remove("alpha")
    assert ("rm", net.bridge) in calls and ("firewall", "remove_network") in calls
    assert ("dns", "stop_dns") in calls
    with pytest.raises(NotFound):
        svc.get("alpha")  # not hex: no id prefix can match it
    with pytest.raises(Conflict, match="pre-defined"):
        svc.remove("bridge")
    assert svc.prune() == ["beta"]
    assert [n.name for n in svc.list()] == ["bridge"]


def test_remove_refuses_active_endpoints(svc: NetworkService) -> None:
    net = svc.create(NetworkCreateOptions(name="a"))
    ep = service_mod._endpoint(
        net, AttachRequest("c" * 64, "web", 1, "a", aliases=["w"]), "10.89.1.2", ""
    )
    svc.store.put_endpoint(ep)
    with pytest.raises(
        Conflict, match="error while removing network: network a has active endpoints"
    ):
        svc.remove("a")
    assert svc.prune() == []


def test_remove_drops_endpoints_of_dead_containers(
    tmp_path: Path, calls: list[tuple[Any, ...]]
) -> None:
    settings = Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))
    svc = NetworkService(settings, container_exists=lambda cid: False)
    net = svc.create(NetworkCreateOptions(name="a"))
    ep = service_mod._endpoint(net, AttachRequest("c" * 64, "web", 1, "a"), "10.89.1.2", "")
    svc.store.put_endpoint(ep)
    svc.store.lease(net, ep.container_id)
    svc.remove("a")
    assert svc.store.leases() == []


def test_endpoint_record() -> None:
    net = service_mod.ipam.new_network(
        NetworkCreateOptions(name="a", subnet="10.7.0.0/24"), "d" * 64, "now"
    )
    req = AttachRequest("c" * 64, "web", 42, "a", aliases=["api", "web"], rate_in_bps=5)
    ep = service_mod._endpoint(net, req, "10.7.0.2", "")
    assert ep.mac == "02:42:0a:07:00:02" and ep.prefix_len == 24 and ep.gateway == "10.7.0.1"
    assert ep.dns_names == ["web", "c" * 12, "api"]
    assert ep.host_ifname.startswith("veth") and len(ep.host_ifname) == 15
    assert ep.pid == 42 and ep.rate_in_bps == 5 and len(ep.id) == 64


def test_detach_unknown_container_is_a_no_op(svc: NetworkService) -> None:
    svc.detach("f" * 64)


def test_resolv_conf(svc: NetworkService) -> None:
    user = svc.create(NetworkCreateOptions(name="a"))
    assert svc.resolv_conf([svc.default()]) is None
    conf = svc.resolv_conf(["bridge", user])
    assert conf is not None and conf["nameservers"] == [user.gateway]
    ep = Endpoint(user.id, "a", "c", "c", "eth0", "veth", "m", "10.89.1.2", 24, user.gateway)
    assert svc.resolv_conf([ep]) == conf
