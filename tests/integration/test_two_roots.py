"""Two capsa data roots on one host at once (root, issue 12): each default bridge gets a
subnet of its own even when both were chosen while neither was up, each root keeps its
rules in an nftables table of its own, both networks work side by side, and taking one
root's networks down leaves the other's rules alone."""
# ruff: noqa: F811  (pytest fixtures imported from tests.helpers.capsa_cli)

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.capsa_cli import (  # noqa: F401  (fixtures)
    IMAGE,
    CapsaCli,
    busybox_tarball,
    capsa,
    capsa_module,
)

pytestmark = pytest.mark.root


@pytest.fixture
def other(busybox_tarball: Path) -> Iterator[CapsaCli]:
    """A second root of its own (the module's is the first), with the busybox image."""
    base = Path(tempfile.mkdtemp(prefix="ct2", dir="/tmp"))
    cli = CapsaCli(base / "root", base / "r", network=None)
    cli.run("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tarball), IMAGE, timeout=120)
    yield cli
    problems = cli.cleanup()
    cli.run("network", "prune", "-f", check=False)
    if not cli.mounts():
        shutil.rmtree(base, ignore_errors=True)
    assert not problems, "the second root left:\n  " + "\n  ".join(problems)


def _table_name(cli: CapsaCli) -> str:
    from capsa.engine.network.service import root_firewall_table

    return root_firewall_table(str(cli.root))


def _table(cli: CapsaCli) -> dict[str, Any] | None:
    """The root's own table as libnftables JSON objects (only read: never changed here)."""
    proc = subprocess.run(
        ["nft", "-j", "list", "table", "inet", _table_name(cli)], capture_output=True, text=True
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _bridges_in(table: dict[str, Any] | None) -> list[str]:
    if table is None:
        return []
    sets = [o["set"] for o in table["nftables"] if "set" in o]
    return [e for s in sets if s["name"] == "bridges" for e in s.get("elem", [])]


def _default_network(cli: CapsaCli) -> tuple[ipaddress.IPv4Network, str, str]:
    """(subnet, gateway, bridge) of the root's default network."""
    (doc,) = cli.json("network", "inspect", "bridge")
    config = doc["IPAM"]["Config"][0]
    bridge = doc["Options"]["com.docker.network.bridge.name"]
    return ipaddress.IPv4Network(config["Subnet"]), config["Gateway"], bridge


def _reaches(cli: CapsaCli, name: str, address: str) -> bool:
    proc = cli.run("exec", name, "ping", "-c", "1", "-W", "3", address, check=False)
    return proc.returncode == 0


def test_two_roots_side_by_side(capsa: CapsaCli, other: CapsaCli) -> None:
    capsa.network = None  # the default bridge (the module's root has --network none)
    try:
        _side_by_side(capsa, other)
    finally:
        capsa.network = "none"


def _side_by_side(first: CapsaCli, second: CapsaCli) -> None:
    # both default networks chosen while neither is up: no route tells them apart
    first.run("network", "ls")
    second.run("network", "ls")
    subnet1, gateway1, bridge1 = _default_network(first)
    subnet2, gateway2, bridge2 = _default_network(second)
    assert not subnet1.overlaps(subnet2), (subnet1, subnet2)
    assert bridge1 != bridge2
    assert _table_name(first) != _table_name(second)

    name1, name2 = first.name(), second.name()
    first.detached("--name", name1, "--init")
    second.detached("--name", name2, "--init")
    assert _bridges_in(_table(first)) == [bridge1]  # each table holds its own root's only
    assert _bridges_in(_table(second)) == [bridge2]
    assert _reaches(first, name1, gateway1)
    assert _reaches(second, name2, gateway2)

    # the first root's networks go down: the second's rules stay and still work
    first.run("rm", "-f", name1)
    first.run("network", "prune", "-f")
    assert _table(first) is None
    assert _bridges_in(_table(second)) == [bridge2]
    assert _reaches(second, name2, gateway2)
    assert _default_network(first)[0] == subnet1  # recorded: the same subnet next time

    second.run("rm", "-f", name2)
    second.run("network", "prune", "-f")
    assert _table(second) is None
