"""Pinned databases: a short-lived connection's close does not checkpoint while pinned."""

from __future__ import annotations

from pathlib import Path

from capsa.store.db import Pins, open_db

SCHEMA = ["CREATE TABLE t (x INTEGER)"]


def _write(path: Path, value: int) -> None:
    conn = open_db(str(path), SCHEMA)
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    conn.close()


def test_pinned_database_keeps_its_wal_until_the_pins_close(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _write(db, 1)
    wal = tmp_path / "a.db-wal"
    assert not wal.exists()  # the last close checkpointed and removed it
    (tmp_path / "notes.txt").write_text("not a database")
    pins = Pins()
    pins.pin(str(tmp_path))
    pins.pin(str(tmp_path))  # idempotent
    _write(db, 2)
    assert wal.exists(), "the close checkpointed although the database was pinned"
    pins.close()
    assert not wal.exists()
    conn = open_db(str(db), SCHEMA)
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2]
    conn.close()


def test_pinning_a_missing_directory_is_harmless(tmp_path: Path) -> None:
    pins = Pins()
    pins.pin(str(tmp_path / "nope"))
    pins.close()
