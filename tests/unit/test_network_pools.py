"""Subnet selection from address pools, skipping host routes and used subnets."""

from __future__ import annotations

import pytest

from capsa.engine.network import pools
from capsa.engine.network.pools import AddressPool
from capsa.errors import Unavailable


def test_default_bridge_prefers_dockers_172_17() -> None:
    assert pools.choose(pools.DEFAULT_BRIDGE_POOLS, [], []) == "172.17.0.0/16"
    # Docker's docker0 up (or another capsa root's claim): podman's choice, then /24s
    assert pools.choose(pools.DEFAULT_BRIDGE_POOLS, [], ["172.17.0.1/16"]) == "10.88.0.0/16"
    busy = ["172.17.0.0/16", "10.88.0.0/16"]
    assert pools.choose(pools.DEFAULT_BRIDGE_POOLS, [], busy) == "10.87.0.0/24"


def test_user_networks_take_24s_in_order() -> None:
    assert pools.choose(pools.USER_POOLS, [], []) == "10.89.0.0/24"
    assert pools.choose(pools.USER_POOLS, ["10.89.0.0/24"], []) == "10.89.1.0/24"


def test_routes_are_skipped() -> None:
    # a VPN route covering the first half of 10.89 and a LAN address in the next /24
    routes = ["10.89.0.0/17", "10.89.128.5/24"]
    assert pools.choose(pools.USER_POOLS, [], routes) == "10.89.129.0/24"
    assert pools.choose(pools.DEFAULT_BRIDGE_POOLS, [], ["172.16.0.0/12"]) == "10.88.0.0/16"


def test_ipv6_routes_are_ignored() -> None:
    assert pools.choose(pools.USER_POOLS, ["fd00::/8"], ["::/0"]) == "10.89.0.0/24"


def test_exhausted() -> None:
    with pytest.raises(Unavailable):
        pools.choose([AddressPool("10.1.0.0/23", 24)], [], ["10.1.0.0/24", "10.1.1.0/24"])


def test_pools_from_settings() -> None:
    assert pools.pools_from(None) is None
    got = pools.pools_from([{"base": "10.10.0.0/16", "size": 24}])
    assert got == (AddressPool("10.10.0.0/16", 24),)
    assert pools.choose(got, [], []) == "10.10.0.0/24"
