"""Containers stored before ports and networks were typed fields read back typed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from capsa.engine.containers.metadata import MIGRATIONS, ContainerStore
from capsa.engine.containers.types import NetworkAttachment
from capsa.engine.network.types import PortMapping

OLD_SPEC = {
    "image": "busybox",
    "networkMode": "front",
    "ports": [
        {"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"},
        {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53, "protocol": "udp"},
    ],
    "networks": ["back", "admin"],
}


def _old_database(root: Path, spec: dict[str, object]) -> None:
    """containers.db as the first schema left it, with one container."""
    root.mkdir()
    conn = sqlite3.connect(root / "containers.db")
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version=1")
    conn.execute(
        "INSERT INTO containers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("c" * 64, "web", "i" * 64, "busybox", "now", json.dumps(spec), "exited", "{}"),
    )
    conn.commit()
    conn.close()


def test_old_ports_and_networks_read_typed(tmp_path: Path) -> None:
    _old_database(tmp_path / "root", OLD_SPEC)
    store = ContainerStore(str(tmp_path / "root"))
    try:
        spec = store.get("c" * 64).spec
    finally:
        store.close()
    assert spec.ports == [
        PortMapping(host_port=8080, container_port=80, protocol="tcp", host_ip=""),
        PortMapping(host_port=5353, container_port=53, protocol="udp", host_ip="127.0.0.1"),
    ]
    assert spec.networks == [NetworkAttachment("back"), NetworkAttachment("admin")]
    assert spec.network_mode == "front"


def test_new_records_round_trip(tmp_path: Path) -> None:
    """What the engine writes now reads back the same (the migration ran once)."""
    from capsa.engine.containers.types import ContainerSpec
    from capsa.oci.codec import from_dict, to_dict

    spec = ContainerSpec(
        image="busybox",
        ports=[PortMapping(8080, 80, "tcp", "")],
        networks=[NetworkAttachment("back", ["db"], "10.9.0.5")],
    )
    stored = json.loads(json.dumps(to_dict(spec)))
    assert stored["ports"] == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIp": ""}
    ]
    assert from_dict(ContainerSpec, stored) == spec


def test_a_spec_without_networks_is_left_alone(tmp_path: Path) -> None:
    _old_database(tmp_path / "root", {"image": "busybox"})
    store = ContainerStore(str(tmp_path / "root"))
    try:
        spec = store.get("c" * 64).spec
    finally:
        store.close()
    assert spec.networks == [] and spec.ports == []
