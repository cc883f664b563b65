"""NetworkService without a kernel: network records, filters, hooks, resolv.conf."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from capsa.config import Settings
from capsa.engine.network import claims
from capsa.engine.network import service as service_mod
from capsa.engine.network.service import NetworkService
from capsa.engine.network.types import AttachRequest, Endpoint, NetworkCreateOptions
from capsa.errors import AlreadyExists, Conflict, InvalidArgument, NotFound


@pytest.fixture
def lost() -> set[str]:
    """Interfaces the kernel lost (a reboot, an exited container): every other exists."""
    return set()


class Recorder:
    """A fake collaborator (firewall or dns): each call is noted as (kind, method)."""

    def __init__(self, kind: str, seen: list[tuple[Any, ...]], **attrs: Any) -> None:
        self.kind, self.seen = kind, seen
        self.__dict__.update(attrs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.seen.append((self.kind, name))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, lost: set[str]) -> list[tuple[Any, ...]]:
    """Record the firewall's and the DNS's calls and bridge removal instead of touching
    the kernel: every service made in the test gets recording fakes."""
    from capsa.engine.network import dns as dns_mod
    from capsa.engine.network import firewall as firewall_mod

    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        firewall_mod, "NftFirewall", lambda table: Recorder("firewall", seen, table=table)
    )
    monkeypatch.setattr(
        dns_mod, "EmbeddedDns", lambda settings: Recorder("dns", seen, domain="dns.capsa")
    )
    monkeypatch.setattr(service_mod, "_remove_bridge", lambda name: seen.append(("rm", name)))
    monkeypatch.setattr(
        service_mod,
        "_existing_links",
        lambda names: {n for n in names if n not in lost},
        raising=False,
    )
    monkeypatch.setattr(service_mod, "_delete_veth", lambda name: seen.append(("veth", name)))
    monkeypatch.setattr(NetworkService, "_routes", staticmethod(lambda: ["10.89.0.0/24"]))
    return seen


@pytest.fixture(autouse=True)
def claims_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host's subnet claims (claims.py), private to the test."""
    path = tmp_path / "claims"
    monkeypatch.setattr(claims, "CLAIMS_DIR", str(path))
    return path


@pytest.fixture
def svc(tmp_path: Path, calls: list[tuple[Any, ...]]) -> NetworkService:
    return NetworkService(Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run")))


def test_default_network(svc: NetworkService) -> None:
    net = svc.default()
    assert (net.name, net.subnet, net.gateway, net.default) == (
        "bridge",
        "172.17.0.0/16",
        "172.17.0.1",
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
    beta = svc.create(NetworkCreateOptions(name="beta"))
    svc.remove("beta")
    # no record of a set-up (never set up, or the run root was emptied): whatever is
    # left of it in the kernel goes all the same, the bridge too (capsa named it)
    assert ("firewall", "remove_network") in calls and ("dns", "stop") in calls
    assert ("rm", beta.bridge) in calls
    calls.clear()
    svc.create(NetworkCreateOptions(name="beta"))
    for kind in ("owned", "up"):  # as the first attach leaves them
        service_mod._touch(svc._marker(net, kind))
    svc.remove("alpha")
    assert ("rm", net.bridge) in calls and ("firewall", "remove_network") in calls
    assert ("dns", "stop") in calls
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


def test_a_bridge_named_by_the_user_goes_only_if_capsa_made_it(
    svc: NetworkService, calls: list[tuple[Any, ...]]
) -> None:
    options = {"com.docker.network.bridge.name": "br-users"}
    net = svc.create(NetworkCreateOptions(name="a", options=options))
    svc.remove("a")  # no marker: the bridge may be the user's
    assert ("firewall", "remove_network") in calls and ("rm", "br-users") not in calls
    net = svc.create(NetworkCreateOptions(name="a", options=options))
    service_mod._touch(svc._marker(net, "owned"))
    svc.remove("a")
    assert ("rm", "br-users") in calls


def _stale_endpoint(svc: NetworkService, lost: set[str], name: str = "a") -> Any:
    """An endpoint (and lease) on network ``name`` whose veth the kernel lost."""
    net = svc.get(name)
    cid = secrets.token_hex(32)
    ip = svc.store.lease(net, cid)
    ep = service_mod._endpoint(net, AttachRequest(cid, "web", 1, name), ip, "")
    svc.store.put_endpoint(ep)
    lost.add(ep.host_ifname)
    return ep


def test_prune_drops_stale_endpoints_and_takes_idle_networks_down(
    svc: NetworkService, calls: list[tuple[Any, ...]], lost: set[str]
) -> None:
    svc.create(NetworkCreateOptions(name="a"))
    stale = _stale_endpoint(svc, lost)
    default = _stale_endpoint(svc, lost, "bridge")
    live = _stale_endpoint(svc, lost, "bridge")
    lost.discard(live.host_ifname)  # this one's veth is still there
    assert svc.prune() == ["a"]
    assert [ep.container_id for ep in svc.store.endpoints()] == [live.container_id]
    holders = {holder for _, _, holder in svc.store.leases()}
    assert holders == {live.container_id}
    assert ("firewall", "unpublish") in calls
    assert stale.container_id not in svc.store.holders()
    assert default.container_id not in svc.store.holders()
    assert ("rm", svc.default().bridge) not in calls  # still used by the live one
    svc.store.remove_endpoint(live.container_id, live.network_id)
    calls.clear()
    svc.prune()  # the default network stays, its kernel objects go
    assert ("rm", svc.default().bridge) in calls
    assert ("firewall", "remove_network") in calls
    assert [n.name for n in svc.list()] == ["bridge"]


def test_start_after_a_reboot_replaces_the_stale_endpoint(
    svc: NetworkService, calls: list[tuple[Any, ...]], lost: set[str], monkeypatch: Any
) -> None:
    """The endpoint of a container that was running when the host went down does not
    refuse its next start ("endpoint with name r1 already exists")."""
    svc.create(NetworkCreateOptions(name="a"))
    ep = _stale_endpoint(svc, lost)
    reached: list[str] = []

    def setup(*_: Any) -> int:
        reached.append("setup")
        raise service_mod.Internal("stop here")

    monkeypatch.setattr(NetworkService, "_setup", setup)
    monkeypatch.setattr(service_mod.bridge, "open_iproute", contextlib.nullcontext)
    with pytest.raises(service_mod.Internal, match="stop here"):
        svc.attach(AttachRequest(ep.container_id, "web", 2, "a"))
    assert reached == ["setup"]
    lost.discard(ep.host_ifname)  # a live endpoint still refuses a second attach
    svc.store.put_endpoint(ep)
    with pytest.raises(AlreadyExists, match="endpoint with name web already exists"):
        svc.attach(AttachRequest(ep.container_id, "web", 2, "a"))


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


# -- two data roots on one host ------------------------------------------------------------


def _root(tmp_path: Path, name: str) -> NetworkService:
    return NetworkService(Settings(root=str(tmp_path / name), runroot=str(tmp_path / f"{name}-r")))


def test_two_roots_never_choose_one_subnet(
    tmp_path: Path, calls: list[tuple[Any, ...]], claims_dir: Path
) -> None:
    """Neither network is up (no route shows it): the claims keep the choices apart."""
    a, b = _root(tmp_path, "a"), _root(tmp_path, "b")
    assert a.default().subnet == "172.17.0.0/16"
    assert b.default().subnet == "10.88.0.0/16"
    assert a.create(NetworkCreateOptions(name="n")).subnet == "10.89.1.0/24"
    assert b.create(NetworkCreateOptions(name="n")).subnet == "10.89.2.0/24"
    assert a.default().subnet == "172.17.0.0/16"  # recorded: stable
    assert len(list(claims_dir.glob("*.json"))) == 2
    a.remove("n")  # its claim goes with it: the next choice may take it again
    c = _root(tmp_path, "c")
    assert c.create(NetworkCreateOptions(name="n")).subnet == "10.89.1.0/24"


def test_a_deleted_roots_claims_go(
    tmp_path: Path, calls: list[tuple[Any, ...]], claims_dir: Path
) -> None:
    a = _root(tmp_path, "a")
    assert a.default().subnet == "172.17.0.0/16"
    a.close()
    shutil.rmtree(tmp_path / "a")
    b = _root(tmp_path, "b")
    assert b.default().subnet == "172.17.0.0/16"
    left = [json.loads(p.read_text())["root"] for p in claims_dir.glob("*.json")]
    assert left == [str(tmp_path / "b")]


def test_an_explicit_subnet_is_claimed(
    tmp_path: Path, calls: list[tuple[Any, ...]], claims_dir: Path
) -> None:
    a, b = _root(tmp_path, "a"), _root(tmp_path, "b")
    a.create(NetworkCreateOptions(name="mine", subnet="172.17.0.0/16"))
    assert b.default().subnet == "10.88.0.0/16"


def test_each_root_has_its_own_table_and_bridge(
    tmp_path: Path, calls: list[tuple[Any, ...]]
) -> None:
    from capsa.config import DEFAULT_ROOT

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert service_mod.root_firewall_table(DEFAULT_ROOT) == "capsa"  # as before
    tables = {service_mod.root_firewall_table(r) for r in (a, b, DEFAULT_ROOT)}
    assert len(tables) == 3 and all(t.startswith("capsa") for t in tables)
    nets = [_root(tmp_path, n).default() for n in ("a", "b")]
    assert nets[0].bridge != nets[1].bridge
    assert service_mod.root_firewall_table(a) == "capsa-" + nets[0].bridge[len("capsa") :]


def test_the_firewall_works_in_the_roots_table(
    tmp_path: Path, calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = _root(tmp_path, "a")
    net = svc.default()
    calls.clear()
    svc._teardown(net)
    table = service_mod.root_firewall_table(str(tmp_path / "a"))
    assert ("firewall", "remove_network") in calls
    assert svc.firewall.table == table  # type: ignore[attr-defined]


def test_collaborators_handed_in_are_used(tmp_path: Path, calls: list[tuple[Any, ...]]) -> None:
    """The firewall and the DNS are the service's collaborators: given, they are the
    ones called; a failing one fails the step (nothing is skipped)."""
    seen: list[tuple[Any, ...]] = []
    firewall, dns = Recorder("firewall", seen), Recorder("dns", seen, domain="example")
    settings = Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))
    svc = NetworkService(settings, firewall=firewall, dns=dns)
    assert svc.firewall is firewall and svc.dns is dns
    net = svc.create(NetworkCreateOptions(name="a"))
    assert svc.resolv_conf([net]) == {
        "nameservers": [net.gateway],
        "search": ["example"],
        "options": [],
    }

    class Broken:
        def remove_network(self, net: Any) -> None:
            raise service_mod.Internal("nft is gone")

    svc = NetworkService(settings, firewall=Broken(), dns=dns)  # type: ignore[arg-type]
    with pytest.raises(service_mod.Internal, match="nft is gone"):
        svc._teardown(net)
    assert ("dns", "stop") in seen and ("rm", net.bridge) in calls  # the rest ran
