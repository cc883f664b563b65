"""Container metadata in SQLite (``<root>/containers.db``).

The CLI, the API server and every container's monitor read and write it
concurrently; each change is one ``BEGIN IMMEDIATE`` transaction (which, on a full
disk, may use the data root's reserve: see ``capsa.store.space``). The spec is
written once at create; the state fields change over the container's life.
"""

from __future__ import annotations

import os

from capsa import fastjson  # json's C parts without ``re``: ps starts faster
from capsa.engine.containers.types import ContainerRecord, ContainerSpec, State
from capsa.errors import AlreadyExists, Conflict, no_such_container
from capsa.oci.codec import from_dict, to_dict
from capsa.store.db import Database, Transaction, is_unique_violation

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

MIGRATIONS = (
    """
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        image_name TEXT NOT NULL,
        created TEXT NOT NULL,
        spec TEXT NOT NULL,
        state TEXT NOT NULL,
        status TEXT NOT NULL
    );
    CREATE INDEX containers_image ON containers(image_id);
    """,
    # 2: published ports and connected networks were free dicts and names in the spec's
    # untyped ``extra`` (stored flat); now they are records: ``PortMapping`` (its JSON
    # keys camelCase, as every record's) and ``NetworkAttachment`` (name, aliases, ip)
    """
    UPDATE containers SET spec = json_set(spec, '$.ports', (
        SELECT json_group_array(json_object(
            'hostPort', json_extract(value, '$.host_port'),
            'containerPort', json_extract(value, '$.container_port'),
            'protocol', coalesce(json_extract(value, '$.protocol'), 'tcp'),
            'hostIp', coalesce(json_extract(value, '$.host_ip'), '')
        )) FROM json_each(containers.spec, '$.ports')
    )) WHERE json_type(spec, '$.ports') = 'array';
    UPDATE containers SET spec = json_set(spec, '$.networks', (
        SELECT json_group_array(
            CASE WHEN type = 'text' THEN json_object('name', value) ELSE json(value) END
        ) FROM json_each(containers.spec, '$.networks')
    )) WHERE json_type(spec, '$.networks') = 'array'
    """,
)

# the fields of ContainerRecord kept in the `status` JSON column
_STATUS_FIELDS = (
    "pid",
    "pid_start",
    "exit_code",
    "started_at",
    "finished_at",
    "oom_killed",
    "error",
    "restart_count",
    "health",
    "monitor_pid",
    "monitor_start",
    "stopped_by_user",
    "restarting",
    "rootfs_key",
    "chain_ids",
)


def _status_json(rec: ContainerRecord) -> str:
    return fastjson.dumps({f: getattr(rec, f) for f in _STATUS_FIELDS}, separators=(",", ":"))


class ContainerStore(Database):
    def __init__(self, root: str) -> None:
        super().__init__(os.path.join(root, "containers.db"), MIGRATIONS)

    def _record(self, row: sqlite3.Row) -> ContainerRecord:
        spec = from_dict(ContainerSpec, fastjson.loads(row["spec"]), "spec")
        rec = ContainerRecord(
            id=row["id"],
            name=row["name"],
            image_id=row["image_id"],
            image_name=row["image_name"],
            created=row["created"],
            spec=spec,
            state=State(row["state"]),
        )
        for key, value in fastjson.loads(row["status"]).items():
            if key in _STATUS_FIELDS:
                setattr(rec, key, value)
        return rec

    def add(self, rec: ContainerRecord) -> None:
        try:
            with Transaction(self.conn) as c:
                c.execute(
                    "INSERT INTO containers(id, name, image_id, image_name, created, spec,"
                    " state, status) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        rec.id,
                        rec.name,
                        rec.image_id,
                        rec.image_name,
                        rec.created,
                        fastjson.dumps(to_dict(rec.spec), separators=(",", ":")),
                        rec.state.value,
                        _status_json(rec),
                    ),
                )
        except Exception as e:
            if is_unique_violation(e):  # the name (the id is the primary key)
                raise AlreadyExists(f'the container name "/{rec.name}" is already in use') from None
            raise

    def get(self, container_id: str) -> ContainerRecord:
        row = self.conn.execute("SELECT * FROM containers WHERE id=?", (container_id,)).fetchone()
        if row is None:
            raise no_such_container(container_id)
        return self._record(row)

    def find(self, text: str) -> ContainerRecord:
        """By full id, name (with or without a leading /) or unique id prefix."""
        name = text.removeprefix("/")
        row = self.conn.execute(
            "SELECT * FROM containers WHERE id=? OR name=?", (text, name)
        ).fetchone()
        if row is None and text and all(c in "0123456789abcdef" for c in text):
            rows = self.conn.execute(
                "SELECT * FROM containers WHERE id LIKE ?", (f"{text}%",)
            ).fetchall()
            if len(rows) > 1:
                raise Conflict(f"multiple containers match the prefix {text}")
            row = rows[0] if rows else None
        if row is None:
            raise no_such_container(text)
        return self._record(row)

    def list(self) -> list[ContainerRecord]:
        rows = self.conn.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()
        return [self._record(r) for r in rows]

    def update(
        self, container_id: str, state: State | None = None, **fields: Any
    ) -> ContainerRecord:
        """Change state fields in one transaction; return the new record."""
        with Transaction(self.conn) as c:
            row = c.execute("SELECT * FROM containers WHERE id=?", (container_id,)).fetchone()
            if row is None:
                raise no_such_container(container_id)
            rec = self._record(row)
            for key, value in fields.items():
                if key not in _STATUS_FIELDS:
                    raise KeyError(key)
                setattr(rec, key, value)
            if state is not None:
                rec.state = state
            c.execute(
                "UPDATE containers SET state=?, status=? WHERE id=?",
                (rec.state.value, _status_json(rec), container_id),
            )
            return rec

    def update_spec(self, container_id: str, spec: ContainerSpec) -> None:
        with Transaction(self.conn) as c:
            c.execute(
                "UPDATE containers SET spec=? WHERE id=?",
                (fastjson.dumps(to_dict(spec), separators=(",", ":")), container_id),
            )

    def rename(self, container_id: str, name: str) -> None:
        try:
            with Transaction(self.conn) as c:
                c.execute("UPDATE containers SET name=? WHERE id=?", (name, container_id))
        except Exception as e:
            if is_unique_violation(e):
                raise AlreadyExists(f'the container name "/{name}" is already in use') from None
            raise

    def remove(self, container_id: str) -> None:
        with Transaction(self.conn) as c:
            c.execute("DELETE FROM containers WHERE id=?", (container_id,))

    def names(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM containers")}
