"""Persistent networks, endpoints and leases; concurrent leasing from many processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from capsa.engine.network.store import NetworkStore
from capsa.engine.network.types import Endpoint, Network
from capsa.errors import AlreadyExists, Conflict, InvalidArgument

NET = Network(id="ab" * 32, name="web", bridge="br-web", subnet="10.1.2.0/24", gateway="10.1.2.1")


@pytest.fixture
def store(tmp_path: Path) -> NetworkStore:
    s = NetworkStore(str(tmp_path))
    s.add_network(NET)
    return s


def _endpoint(container_id: str, network: Network = NET, ifname: str = "eth0") -> Endpoint:
    return Endpoint(
        network.id,
        network.name,
        container_id,
        "c-" + container_id,
        ifname,
        "veth0",
        "02:42:0a:01:02:02",
        "10.1.2.2",
        24,
        "10.1.2.1",
        aliases=["a"],
    )


def test_networks_found_by_name_id_and_prefix(store: NetworkStore) -> None:
    other = Network(id="ac" * 32, name="db", subnet="10.1.3.0/24")
    store.add_network(other)
    assert store.find_network("web") == NET
    assert store.find_network(NET.id) == NET
    assert store.find_network("abab") == NET
    assert store.find_network("nope") is None
    with pytest.raises(Conflict, match="ambiguous"):
        store.find_network("a")
    with pytest.raises(AlreadyExists):
        store.add_network(Network(id="cd" * 32, name="web"))
    assert [n.name for n in store.networks()] == ["db", "web"]


def test_add_network_check_runs_in_the_transaction(store: NetworkStore) -> None:
    seen: list[list[str]] = []
    store.add_network(
        Network(id="cd" * 32, name="x"), lambda nets: seen.append([n.name for n in nets])
    )
    assert seen == [["web"]]


def test_lease_release_and_reuse(store: NetworkStore) -> None:
    assert store.lease(NET, "c1") == "10.1.2.2"
    assert store.lease(NET, "c1") == "10.1.2.2"  # idempotent per container
    assert store.lease(NET, "c2") == "10.1.2.3"
    store.release(NET.id, "c1")
    assert store.lease(NET, "c3") == "10.1.2.2"
    assert store.leases(NET.id) == [(NET.id, "10.1.2.2", "c3"), (NET.id, "10.1.2.3", "c2")]


def test_requested_address(store: NetworkStore) -> None:
    assert store.lease(NET, "c1", "10.1.2.50") == "10.1.2.50"
    with pytest.raises(Conflict):
        store.lease(NET, "c2", "10.1.2.50")
    with pytest.raises(InvalidArgument):
        store.lease(NET, "c2", "10.1.2.1")
    # the holder is gone: its lease is reclaimed
    assert store.lease(NET, "c2", "10.1.2.50", is_live=lambda cid: cid != "c1") == "10.1.2.50"


def test_full_subnet_reclaims_dead_containers(tmp_path: Path) -> None:
    s = NetworkStore(str(tmp_path))
    tiny = Network(id="ef" * 32, name="tiny", subnet="10.9.0.0/29", gateway="10.9.0.1")
    s.add_network(tiny)
    for i in range(5):
        s.lease(tiny, f"c{i}")
    with pytest.raises(Conflict, match="no available"):
        s.lease(tiny, "new")
    assert s.lease(tiny, "new", is_live=lambda cid: cid != "c3") == "10.9.0.5"


def test_endpoints(store: NetworkStore) -> None:
    store.put_endpoint(_endpoint("c1"))
    store.put_endpoint(_endpoint("c2"))
    assert [e.container_id for e in store.endpoints()] == ["c1", "c2"]
    assert store.endpoints("c1") == [_endpoint("c1")]
    assert store.endpoints(network_id=NET.id)[1].aliases == ["a"]
    with pytest.raises(Conflict, match="has active endpoints"):
        store.remove_network(NET)
    store.lease(NET, "c9")
    assert store.holders() == {"c1", "c2", "c9"}
    store.forget_container("c9")
    store.remove_endpoint("c1", NET.id)
    store.remove_endpoint("c2", NET.id)
    store.remove_network(NET)
    assert store.find_network("web") is None


def _lease_one(
    root: str,
    container_id: str,
    go: multiprocessing.synchronize.Event,
    out: multiprocessing.Queue[str],
) -> None:
    go.wait()
    out.put(NetworkStore(root).lease(NET, container_id))


def test_fifty_processes_get_fifty_addresses(store: NetworkStore, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_lease_one, args=(str(tmp_path), f"c{i}", go, out)) for i in range(50)
    ]
    for p in procs:
        p.start()
    go.set()
    ips = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(ips)) == 50
    assert len(store.leases(NET.id)) == 50
