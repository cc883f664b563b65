"""Address plans: next free address, requested addresses, MACs, network definitions."""

from __future__ import annotations

import pytest

from capsa.engine.network import ipam
from capsa.engine.network.types import Network, NetworkCreateOptions
from capsa.errors import Conflict, InvalidArgument

ID = "ab" * 32


def test_next_free_skips_network_gateway_and_taken() -> None:
    assert ipam.next_free("10.1.2.0/24", "10.1.2.1", set()) == "10.1.2.2"
    assert ipam.next_free("10.1.2.0/24", "10.1.2.1", {"10.1.2.2", "10.1.2.3"}) == "10.1.2.4"
    assert ipam.next_free("10.1.2.0/24", "10.1.2.254", set()) == "10.1.2.1"


def test_next_free_honours_ip_range_and_never_gives_broadcast() -> None:
    assert ipam.next_free("10.1.2.0/24", "10.1.2.1", set(), "10.1.2.128/25") == "10.1.2.128"
    taken = {f"10.1.2.{i}" for i in range(128, 255)}
    with pytest.raises(Conflict, match="no available ip"):
        ipam.next_free("10.1.2.0/24", "10.1.2.1", taken, "10.1.2.128/25")


def test_next_free_ipv6() -> None:
    assert ipam.next_free("fd00:1::/64", "fd00:1::1", set()) == "fd00:1::2"


def test_exhausted_subnet() -> None:
    with pytest.raises(Conflict):
        ipam.next_free("10.1.2.0/30", "10.1.2.1", {"10.1.2.2"})


@pytest.mark.parametrize(
    ("ip", "error"),
    [
        ("10.9.9.9", InvalidArgument),  # outside
        ("10.1.2.1", InvalidArgument),  # the gateway
        ("10.1.2.255", InvalidArgument),  # broadcast
        ("10.1.2.7", Conflict),  # leased
        ("nonsense", InvalidArgument),
    ],
)
def test_requested_address_refused(ip: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        ipam.check_requested("10.1.2.0/24", "10.1.2.1", {"10.1.2.7"}, ip)


def test_requested_address_accepted() -> None:
    assert ipam.check_requested("10.1.2.0/24", "10.1.2.1", {"10.1.2.7"}, "10.1.2.8") == "10.1.2.8"


def test_mac_like_docker() -> None:
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert ipam.check_mac("02:42:AC:11:00:02") == "02:42:ac:11:00:02"
    for bad in ("01:00:5e:00:00:01", "02:42:ac", "zz:42:ac:11:00:02"):
        with pytest.raises(InvalidArgument):
            ipam.check_mac(bad)


def test_gateway_and_range_validation() -> None:
    subnet = ipam.parse_subnet("10.1.2.0/24")
    assert ipam.default_gateway(subnet) == "10.1.2.1"
    assert ipam.check_gateway(subnet, "10.1.2.254") == "10.1.2.254"
    with pytest.raises(InvalidArgument):
        ipam.check_gateway(subnet, "10.1.3.1")
    with pytest.raises(InvalidArgument):
        ipam.check_range(subnet, "10.1.0.0/16")
    with pytest.raises(InvalidArgument, match="invalid subnet"):
        ipam.parse_subnet("10.1.2.3/24")


def test_new_network_defaults() -> None:
    net = ipam.new_network(NetworkCreateOptions(name="web"), ID, "now")
    assert net.bridge == "capsa-" + ID[:9] and len(net.bridge) <= 15
    assert (net.subnet, net.gateway, net.mtu) == ("", "", 1500)  # chosen later from pools


def test_new_network_full() -> None:
    opts = NetworkCreateOptions(
        name="web",
        subnet="10.5.0.0/16",
        gateway="10.5.255.254",
        ip_range="10.5.1.0/24",
        internal=True,
        ipv6=True,
        options={
            "com.docker.network.bridge.name": "br-web",
            "com.docker.network.driver.mtu": "1400",
        },
    )
    net = ipam.new_network(opts, ID, "now")
    assert (net.subnet, net.gateway, net.ip_range) == ("10.5.0.0/16", "10.5.255.254", "10.5.1.0/24")
    assert (net.bridge, net.mtu, net.internal, net.prefix_len) == ("br-web", 1400, True, 16)
    assert net.subnet6 == ipam.ula_subnet(ID) and net.gateway6.endswith("::1")


@pytest.mark.parametrize(
    "opts",
    [
        NetworkCreateOptions(name="x", gateway="10.0.0.1"),
        NetworkCreateOptions(name="x", subnet="fd00::/64"),
        NetworkCreateOptions(name="x", options={"com.docker.network.driver.mtu": "big"}),
        NetworkCreateOptions(name="x", options={"com.docker.network.bridge.name": "a" * 16}),
        NetworkCreateOptions(name="x", ipv6=True, subnet6="10.0.0.0/24"),
    ],
)
def test_new_network_rejects(opts: NetworkCreateOptions) -> None:
    with pytest.raises(InvalidArgument):
        ipam.new_network(opts, ID, "now")


def test_names() -> None:
    ipam.check_name("my-net_1.x")
    for bad in ("", "-x", "a b", "a/b"):
        with pytest.raises(InvalidArgument):
            ipam.check_name(bad)


def test_conflicts() -> None:
    mine = Network(id=ID, name="a", bridge="br-a", subnet="10.5.0.0/24")
    ipam.check_conflicts(
        mine, [Network(id="c" * 64, name="b", bridge="br-b", subnet="10.6.0.0/24")]
    )
    with pytest.raises(Conflict, match="overlaps"):
        ipam.check_conflicts(
            mine, [Network(id="c" * 64, name="b", bridge="br-b", subnet="10.5.0.0/16")]
        )
    with pytest.raises(Conflict, match="bridge"):
        ipam.check_conflicts(
            mine, [Network(id="c" * 64, name="b", bridge="br-a", subnet="10.7.0.0/24")]
        )
