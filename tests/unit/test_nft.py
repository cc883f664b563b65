"""nftables JSON batches for capsa's table, built without a kernel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from capsa.engine.network import firewall as fw
from capsa.engine.network import nft
from capsa.engine.network.nft import Nft, Table
from capsa.engine.network.types import Endpoint, Network, PortMapping
from capsa.errors import InvalidArgument, Unavailable
from capsa.record import replace

T = Table("inet", "capsa_test")
NET = Network(
    id="a" * 64,
    name="front",
    bridge="capsa-aaaaaaaaaaaa",
    subnet="10.89.0.0/24",
    gateway="10.89.0.1",
)
EP = Endpoint(
    network_id="a" * 64,
    network_name="front",
    container_id="c" * 64,
    container_name="web",
    ifname="eth0",
    host_ifname="veth1",
    mac="",
    ip="10.89.0.2",
    prefix_len=24,
    gateway="10.89.0.1",
)


def _rules(batch: list[dict[str, Any]], chain: str) -> list[list[dict[str, Any]]]:
    return [
        c["add"]["rule"]["expr"]
        for c in batch
        if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain
    ]


def _verbs(batch: list[dict[str, Any]], verb: str, kind: str) -> list[str]:
    return [c[verb][kind].get("name", "") for c in batch if kind in c.get(verb, {})]


def test_batches_are_json_and_address_only_our_table() -> None:
    batch = fw.network_batch(T, NET)
    json.dumps({"nftables": batch})
    for command in batch:
        (body,) = command.values()
        (obj,) = body.values()
        assert obj["family"] == "inet"
        assert obj.get("table", obj.get("name")) == "capsa_test"


def test_skeleton_creates_chains_before_maps() -> None:
    batch = fw.skeleton_batch(T)
    kinds = [next(iter(c["add"])) for c in batch]
    assert kinds.index("map") > max(i for i, k in enumerate(kinds) if k == "chain")
    hooks = {
        c["add"]["chain"]["name"]: c["add"]["chain"].get("hook")
        for c in batch
        if "chain" in c["add"]
    }
    assert hooks == {
        "ports": None,
        "forward": "forward",
        "prerouting": "prerouting",
        "output": "output",
        "postrouting": "postrouting",
    }


def test_network_batch_declares_every_chain_before_the_maps() -> None:
    kinds = [next(iter(c["add"])) for c in fw.network_batch(T, NET) if "add" in c]
    last_chain = max(i for i, k in enumerate(kinds) if k == "chain")
    assert kinds[0] == "table"
    assert min(i for i, k in enumerate(kinds) if k == "map") > last_chain


def test_base_rules_dispatch_to_maps_and_masquerade_loopback() -> None:
    batch = fw.base_batch(T)
    assert set(_verbs(batch, "flush", "chain")) == {
        "forward",
        "prerouting",
        "output",
        "postrouting",
    }
    forward = _rules(batch, "forward")
    assert forward[0] == [nft.match(nft.ct("state"), ["established", "related"], "in"), nft.ACCEPT]
    assert forward[1] == [nft.vmap(nft.meta("iifname"), "from-bridge")]
    assert forward[2] == [nft.vmap(nft.meta("oifname"), "to-bridge")]
    local = nft.match(nft.fib_daddr_type(), "local")
    assert _rules(batch, "prerouting") == [[local, nft.jump("ports")]]
    assert _rules(batch, "output") == [[local, nft.jump("ports")]]
    post = _rules(batch, "postrouting")
    assert post[0][0] == nft.match(nft.payload("ip", "saddr"), nft.prefix("127.0.0.0/8"))
    assert post[0][-1] == nft.MASQUERADE


def test_network_rules_isolate_and_masquerade() -> None:
    batch = fw.network_batch(T, NET)
    from_chain, to_chain, nat_chain = fw.net_chains(NET.id)
    assert from_chain == "net-aaaaaaaaaaaa-from"
    dnat = nft.match(nft.ct("status"), "dnat", op="in")
    assert _rules(batch, from_chain) == [
        [nft.match(nft.meta("oifname"), NET.bridge), nft.ACCEPT],
        [dnat, nft.ACCEPT],
        [nft.match(nft.meta("oifname"), "@bridges"), nft.DROP],
        [nft.ACCEPT],
    ]
    assert _rules(batch, to_chain) == [[dnat, nft.ACCEPT], [nft.DROP]]
    assert _rules(batch, nat_chain) == [
        [nft.match(nft.meta("oifname"), NET.bridge, op="!="), nft.MASQUERADE],
        [dnat, nft.MASQUERADE],
    ]
    elements = {
        c["add"]["element"]["name"]: c["add"]["element"]["elem"]
        for c in batch
        if "element" in c.get("add", {})
    }
    assert elements == {
        "bridges": [NET.bridge],
        "from-bridge": [[NET.bridge, nft.jump(from_chain)]],
        "to-bridge": [[NET.bridge, nft.jump(to_chain)]],
        "nat-src4": [[nft.prefix("10.89.0.0/24"), nft.jump(nat_chain)]],
    }


def test_internal_network_drops_everything_leaving_the_bridge() -> None:
    internal = Network(
        id="b" * 64, name="back", bridge="br-b", subnet="10.90.0.0/24", internal=True
    )
    batch = fw.network_batch(T, internal)
    from_chain, to_chain, nat_chain = fw.net_chains(internal.id)
    assert _rules(batch, from_chain) == [
        [nft.match(nft.meta("oifname"), "br-b"), nft.ACCEPT],
        [nft.DROP],
    ]
    assert _rules(batch, to_chain) == [[nft.DROP]]
    assert nat_chain not in _verbs(batch, "add", "chain")
    names = [c["add"]["element"]["name"] for c in batch if "element" in c.get("add", {})]
    assert "nat-src4" not in names


def test_ipv6_network_masquerades_its_v6_subnet() -> None:
    net6 = Network(
        id="d" * 64,
        name="six",
        bridge="br6",
        subnet="10.91.0.0/24",
        ipv6=True,
        subnet6="fd00:1::/64",
    )
    elems = dict(fw.network_elements(net6))
    assert elems["nat-src6"] == [nft.prefix("fd00:1::/64"), nft.jump(fw.net_chains(net6.id)[2])]


def test_publish_dnats_each_port_and_jumps_from_ports() -> None:
    ports = [
        PortMapping(8080, 80),
        PortMapping(5353, 53, "udp", "127.0.0.1"),
    ]
    batch = fw.publish_batch(T, EP, ports, stale_handles=[7])
    chain = fw.ports_chain(EP)
    assert chain == "ports-cccccccccccc-aaaaaaaaaaaa"
    assert {"delete": {"rule": T.ref(chain="ports", handle=7)}} in batch
    assert _rules(batch, chain) == [
        [
            nft.match(nft.meta("nfproto"), "ipv4"),
            nft.match(nft.payload("tcp", "dport"), 8080),
            nft.dnat("ip", "10.89.0.2", 80),
        ],
        [
            nft.match(nft.payload("ip", "daddr"), "127.0.0.1"),
            nft.match(nft.payload("udp", "dport"), 5353),
            nft.dnat("ip", "10.89.0.2", 53),
        ],
    ]
    assert _rules(batch, "ports") == [[nft.jump(chain)]]
    assert _verbs(batch, "flush", "chain") == [chain]


def test_publish_ipv6_when_the_endpoint_has_an_address() -> None:
    ep6 = replace(EP, ip6="fd00::2")
    rules = fw.port_rules(T, "c", ep6, PortMapping(8080, 80))
    assert [r["add"]["rule"]["expr"][-1] for r in rules] == [
        nft.dnat("ip", "10.89.0.2", 80),
        nft.dnat("ip6", "fd00::2", 80),
    ]
    only6 = fw.port_rules(T, "c", ep6, PortMapping(8080, 80, host_ip="::1"))
    assert only6[0]["add"]["rule"]["expr"][0] == nft.match(nft.payload("ip6", "daddr"), "::1")
    with pytest.raises(InvalidArgument):
        fw.port_rules(T, "c", EP, PortMapping(8080, 80, host_ip="::1"))


@pytest.mark.parametrize(
    "pm", [PortMapping(0, 80), PortMapping(80, 70000), PortMapping(80, 80, "icmp")]
)
def test_publish_rejects_bad_mappings(pm: PortMapping) -> None:
    with pytest.raises(InvalidArgument):
        fw.publish_batch(T, EP, [pm], [])


def test_unpublish_deletes_jumps_and_the_chain() -> None:
    batch = fw.unpublish_batch(T, EP, [3, 9], exists=True)
    chain = fw.ports_chain(EP)
    assert batch == [
        T.delete_rule("ports", 3),
        T.delete_rule("ports", 9),
        T.chain("flush", chain),
        T.chain("delete", chain),
    ]
    assert fw.unpublish_batch(T, EP, [], exists=False) == []


def test_remove_all_is_safe_when_the_table_is_missing() -> None:
    assert fw.remove_all_batch(T) == [T.table("add"), T.table("delete")]


LISTING: list[dict[str, Any]] = [
    {"table": {"family": "inet", "name": "capsa_test", "handle": 1}},
    {
        "set": {
            "family": "inet",
            "table": "capsa_test",
            "name": "bridges",
            "type": "ifname",
            "elem": [NET.bridge, "br-other"],
        }
    },
    {
        "map": {
            "family": "inet",
            "table": "capsa_test",
            "name": "from-bridge",
            "type": "ifname",
            "map": "verdict",
            "elem": [[NET.bridge, {"jump": {"target": "net-old-from"}}]],
        }
    },
    {"chain": {"family": "inet", "table": "capsa_test", "name": "ports", "handle": 2}},
    {"chain": {"family": "inet", "table": "capsa_test", "name": fw.ports_chain(EP), "handle": 3}},
    {
        "rule": {
            "family": "inet",
            "table": "capsa_test",
            "chain": "ports",
            "handle": 11,
            "expr": [{"jump": {"target": fw.ports_chain(EP)}}],
        }
    },
    {
        "rule": {
            "family": "inet",
            "table": "capsa_test",
            "chain": "ports",
            "handle": 12,
            "expr": [{"jump": {"target": "ports-dddddddddddd-eeeeeeeeeeee"}}],
        }
    },
]


def test_table_state_finds_jumps_and_elements() -> None:
    state = fw.TableState(LISTING)
    assert state.jumps("ports", target=fw.ports_chain(EP)) == {11: fw.ports_chain(EP)}
    assert list(state.jumps("ports", suffix="-aaaaaaaaaaaa")) == [11]
    assert state.element("bridges", "br-other") == "br-other"
    assert state.element("from-bridge", "nope") is None


def test_stale_elements_of_a_reused_bridge_are_replaced() -> None:
    stale = fw._stale(T, fw.TableState(LISTING), NET)
    assert stale == [T.element("delete", "from-bridge", [NET.bridge])]


def test_removal_takes_the_network_and_its_published_ports() -> None:
    batch = fw._removal(T, fw.TableState(LISTING), NET)
    assert T.element("delete", "bridges", [NET.bridge]) in batch
    assert T.delete_rule("ports", 11) in batch
    assert T.chain("delete", fw.ports_chain(EP)) in batch
    assert T.delete_rule("ports", 12) not in batch
    # from-bridge points to another chain: not ours to delete
    assert T.element("delete", "from-bridge", [NET.bridge]) not in batch


def test_table_is_unused_after_its_last_network() -> None:
    state = fw.TableState(LISTING)
    assert not fw._unused(state, NET)  # br-other and another container's ports remain
    alone = fw.TableState([o for o in LISTING if "set" not in o and "rule" not in o])
    assert fw._unused(alone, NET)


def test_nft_errors_name_the_operation() -> None:
    text = "internal:0:0-0: Error: Could not process rule: No such file or directory\n\n"
    assert str(nft._error("publish ports of web", text)) == (
        "nftables: publish ports of web: could not process rule: No such file or directory"
    )
    assert str(nft._error("x", "")) == "nftables: x: failed"


def test_missing_library_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="libnftables"):
        Nft("libnftables-does-not-exist.so.1")
