"""Persistent network state: networks, endpoints and IP leases in ``root/networks.db``.

Leases are taken inside ``BEGIN IMMEDIATE`` transactions: concurrent processes
serialize on SQLite's write lock, so two containers never get the same address.
"""

from __future__ import annotations

import json
import os

from capsa.engine.network import ipam
from capsa.engine.network.types import Endpoint, Network
from capsa.errors import AlreadyExists, Conflict, no_such_network
from capsa.oci.codec import from_dict, to_dict
from capsa.store.db import Database, Transaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

MIGRATIONS = (
    """
    CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
    CREATE TABLE endpoints (
        container_id TEXT NOT NULL, network_id TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (container_id, network_id));
    CREATE TABLE leases (
        network_id TEXT NOT NULL, ip TEXT NOT NULL, container_id TEXT NOT NULL,
        PRIMARY KEY (network_id, ip));
    CREATE INDEX leases_container ON leases (container_id)
    """,
)


def _dumps(obj: object) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"), sort_keys=True)


class NetworkStore(Database):
    def __init__(self, root: str) -> None:
        super().__init__(os.path.join(root, "networks.db"), MIGRATIONS)

    # networks

    def add_network(
        self, net: Network, check: Callable[[list[Network]], None] | None = None
    ) -> None:
        """Insert ``net``; ``check`` sees the existing networks inside the transaction."""
        with Transaction(self.conn) as c:
            if check is not None:
                check(self._networks(c))
            if c.execute("SELECT 1 FROM networks WHERE name = ?", (net.name,)).fetchone():
                raise AlreadyExists(f"network with name {net.name} already exists")
            c.execute("INSERT INTO networks VALUES (?, ?, ?)", (net.id, net.name, _dumps(net)))

    def networks(self) -> list[Network]:
        return self._networks(self.conn)

    def _networks(self, c: sqlite3.Connection) -> list[Network]:
        rows = c.execute("SELECT data FROM networks ORDER BY name").fetchall()
        return [from_dict(Network, json.loads(r["data"]), "network") for r in rows]

    def find_network(self, ref: str) -> Network | None:
        """By exact name, exact id, then unique id prefix (docker's order)."""
        row = self.conn.execute(
            "SELECT data FROM networks WHERE name = ? OR id = ?", (ref, ref)
        ).fetchone()
        if row is None and ref and all(ch in "0123456789abcdef" for ch in ref):
            rows = self.conn.execute(
                "SELECT data FROM networks WHERE id LIKE ?", (ref + "%",)
            ).fetchall()
            if len(rows) > 1:
                raise Conflict(f"network {ref} is ambiguous ({len(rows)} matches found)")
            row = rows[0] if rows else None
        return None if row is None else from_dict(Network, json.loads(row["data"]), "network")

    def remove_network(self, net: Network) -> None:
        with Transaction(self.conn) as c:
            if c.execute("SELECT 1 FROM endpoints WHERE network_id = ?", (net.id,)).fetchone():
                raise Conflict(
                    f"error while removing network: network {net.name} has active endpoints"
                )
            c.execute("DELETE FROM leases WHERE network_id = ?", (net.id,))
            c.execute("DELETE FROM networks WHERE id = ?", (net.id,))

    # leases

    def lease(
        self,
        net: Network,
        container_id: str,
        requested: str = "",
        version: int = 4,
        is_live: Callable[[str], bool] | None = None,
    ) -> str:
        """An address of ``net`` for the container (its existing lease if it has one)."""
        subnet, gateway = (net.subnet, net.gateway) if version == 4 else (net.subnet6, net.gateway6)
        ip_range = net.ip_range if version == 4 else ""
        with Transaction(self.conn) as c:
            rows = c.execute(
                "SELECT ip, container_id FROM leases WHERE network_id = ?", (net.id,)
            ).fetchall()
            mine = [r["ip"] for r in rows if r["container_id"] == container_id]
            mine = [ip for ip in mine if (":" in ip) == (version == 6)]
            if mine and (not requested or requested in mine):
                return mine[0]
            taken = {r["ip"]: r["container_id"] for r in rows}
            ip = self._pick(c, net, taken, requested, (subnet, gateway, ip_range), is_live)
            c.execute("INSERT INTO leases VALUES (?, ?, ?)", (net.id, ip, container_id))
            return ip

    def _pick(
        self,
        c: sqlite3.Connection,
        net: Network,
        taken: dict[str, str],
        requested: str,
        where: tuple[str, str, str],
        is_live: Callable[[str], bool] | None,
    ) -> str:
        subnet, gateway, ip_range = where
        if requested:
            holder = taken.get(requested)
            if holder is not None and is_live is not None and not is_live(holder):
                self._forget(c, holder)
                del taken[requested]
            return ipam.check_requested(subnet, gateway, taken, requested)
        try:
            return ipam.next_free(subnet, gateway, taken, ip_range)
        except Conflict:
            if is_live is None:
                raise
            stale = {cid for cid in taken.values() if not is_live(cid)}
            for cid in stale:
                self._forget(c, cid)
            alive = {ip: cid for ip, cid in taken.items() if cid not in stale}
            return ipam.next_free(subnet, gateway, alive, ip_range)

    @staticmethod
    def _forget(c: sqlite3.Connection, container_id: str) -> None:
        c.execute("DELETE FROM leases WHERE container_id = ?", (container_id,))
        c.execute("DELETE FROM endpoints WHERE container_id = ?", (container_id,))

    def release(self, network_id: str, container_id: str) -> None:
        with Transaction(self.conn) as c:
            c.execute(
                "DELETE FROM leases WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            )

    def leases(self, network_id: str | None = None) -> list[tuple[str, str, str]]:
        """(network id, ip, container id) rows."""
        sql, args = "SELECT * FROM leases", []
        if network_id is not None:
            sql, args = sql + " WHERE network_id = ?", [network_id]
        rows = self.conn.execute(sql + " ORDER BY network_id, ip", args).fetchall()
        return [(r["network_id"], r["ip"], r["container_id"]) for r in rows]

    # endpoints

    def put_endpoint(self, ep: Endpoint) -> None:
        with Transaction(self.conn) as c:
            c.execute(
                "INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?)",
                (ep.container_id, ep.network_id, _dumps(ep)),
            )

    def remove_endpoint(self, container_id: str, network_id: str) -> None:
        with Transaction(self.conn) as c:
            c.execute(
                "DELETE FROM endpoints WHERE container_id = ? AND network_id = ?",
                (container_id, network_id),
            )

    def endpoints(
        self, container_id: str | None = None, network_id: str | None = None
    ) -> list[Endpoint]:
        clauses, args = [], []
        if container_id is not None:
            clauses.append("container_id = ?")
            args.append(container_id)
        if network_id is not None:
            clauses.append("network_id = ?")
            args.append(network_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(f"SELECT data FROM endpoints{where}", args).fetchall()
        eps = [from_dict(Endpoint, json.loads(r["data"]), "endpoint") for r in rows]
        return sorted(eps, key=lambda e: (e.container_id, _if_index(e.ifname)))

    def holders(self) -> set[str]:
        """Every container id with a lease or an endpoint."""
        rows = self.conn.execute(
            "SELECT container_id FROM leases UNION SELECT container_id FROM endpoints"
        ).fetchall()
        return {r[0] for r in rows}

    def forget_container(self, container_id: str) -> None:
        with Transaction(self.conn) as c:
            self._forget(c, container_id)

    def get_network_by_id(self, network_id: str) -> Network:
        net = self.find_network(network_id)
        if net is None:
            raise no_such_network(network_id)
        return net


def _if_index(ifname: str) -> int:
    digits = ifname[3:] if ifname.startswith("eth") else ""
    return int(digits) if digits.isdigit() else 1 << 30
