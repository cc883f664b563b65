"""A full disk, simulated: the reserve, SQLite on a full disk, events, blobs, rw layers.

SQLite answers SQLITE_FULL for real once a database reaches ``PRAGMA max_page_count``;
``/dev/full`` (or a patched ``os.write``) answers ENOSPC; the free space is faked where
only the figure matters. tests/integration/test_full_disk.py fills a real tmpfs.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsa.config import Settings
from capsa.engine.system.events import EventLog
from capsa.engine.volumes.service import VolumeService
from capsa.engine.volumes.types import VolumeCreateOptions
from capsa.errors import NotFound
from capsa.store import db, space
from capsa.store.content import ContentStore
from capsa.store.snapshots import SnapshotStore
from capsa.store.space import LOW_SPACE, RESERVE_SIZE, NoSpace, Reserve

SCHEMA = ["CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL)"]


def _full(code: int = sqlite3.SQLITE_FULL) -> sqlite3.OperationalError:
    err = sqlite3.OperationalError("database or disk is full")
    err.sqlite_errorcode = code  # type: ignore[attr-defined]
    return err


@pytest.fixture
def store(tmp_path: Path) -> Iterator[db.Database]:
    database = db.Database(str(tmp_path / "t.db"), SCHEMA)
    with db.Transaction(database.conn) as c:
        c.execute("INSERT INTO t VALUES ('a', 'kept')")
    yield database
    database.close()


def _no_room(monkeypatch: pytest.MonkeyPatch, free: int = 0) -> None:
    monkeypatch.setattr(space, "free_bytes", lambda path: free)


# -- the reserve -----------------------------------------------------------------------


def test_the_reserve_is_made_when_there_is_room_and_given_back(tmp_path: Path) -> None:
    reserve = Reserve(str(tmp_path))
    reserve.ensure()
    st = os.stat(tmp_path / space.RESERVE_NAME)
    assert st.st_size == RESERVE_SIZE and st.st_blocks * 512 >= RESERVE_SIZE  # allocated
    assert reserve.release() and not reserve.exists()
    assert not reserve.release()


def test_no_reserve_is_made_on_a_disk_without_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_room(monkeypatch, RESERVE_SIZE + LOW_SPACE - 1)
    Reserve(str(tmp_path)).ensure()
    assert os.listdir(tmp_path) == []


def test_new_objects_must_leave_room_for_the_reserve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Reserve(str(tmp_path)).ensure()
    _no_room(monkeypatch, LOW_SPACE + 1)
    space.check_room(str(tmp_path))
    Reserve(str(tmp_path)).release()  # released: it is wanted back before anything new
    with pytest.raises(NoSpace, match="no space left on device"):
        space.check_room(str(tmp_path))
    _no_room(monkeypatch, LOW_SPACE - 1)
    Reserve(str(tmp_path)).ensure()
    with pytest.raises(NoSpace):
        space.check_room(str(tmp_path))


# -- SQLite ----------------------------------------------------------------------------


def test_a_database_that_cannot_be_opened_for_want_of_space_is_read_as_it_stands(
    store: db.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.close()
    Reserve(str(tmp_path)).ensure()

    def full(path: str, migrations: object) -> db.Connection:
        raise _full(getattr(sqlite3, "SQLITE_IOERR_SHMSIZE", 4874))  # no room for -shm

    monkeypatch.setattr(db, "open_db", full)
    monkeypatch.setattr(db, "is_low", lambda path: True)
    conn = store.conn
    assert conn.degraded
    assert not Reserve(str(tmp_path)).exists()  # given back to try again first
    assert [tuple(r) for r in conn.execute("SELECT * FROM t")] == [("a", "kept")]
    with pytest.raises(NoSpace):
        store.conn.execute("DELETE FROM t")
    with pytest.raises(NoSpace), db.Transaction(store.conn) as c:
        c.execute("INSERT INTO t VALUES ('b', 'lost')")
    monkeypatch.undo()  # room again: the next use is the real database
    assert not store.conn.degraded
    with db.Transaction(store.conn) as c:
        c.execute("INSERT INTO t VALUES ('b', 'written')")
    assert store.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def test_a_database_not_made_yet_reads_as_empty_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: str, migrations: object) -> db.Connection:
        raise _full()

    monkeypatch.setattr(db, "open_db", full)
    database = db.Database(str(tmp_path / "new.db"), SCHEMA)
    assert database.conn.execute("SELECT * FROM t").fetchall() == []
    database.close()
    assert not (tmp_path / "new.db").exists()


def test_a_database_whose_making_a_full_disk_cut_short_reads_as_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file exists (WAL mode set, its header written) but no migration ran."""
    path = tmp_path / "half.db"
    half = sqlite3.connect(path)
    half.execute("PRAGMA journal_mode=WAL")
    half.close()
    assert path.stat().st_size > 0

    def full(path: str, migrations: object) -> db.Connection:
        raise _full()

    monkeypatch.setattr(db, "open_db", full)
    database = db.Database(str(path), SCHEMA)
    assert database.conn.execute("SELECT * FROM t").fetchall() == []
    database.close()


def test_a_write_that_does_not_fit_raises_no_space_and_changes_nothing(
    store: db.Database, tmp_path: Path
) -> None:
    conn = store.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")  # SQLite: SQLITE_FULL past this
    big = "x" * 65536
    with pytest.raises(NoSpace, match="no space left on device"), db.Transaction(conn) as c:
        c.execute("UPDATE t SET v = 'changed'")
        c.execute("INSERT INTO t VALUES ('b', ?)", (big,))
    assert not conn.in_transaction
    assert [tuple(r) for r in conn.execute("SELECT * FROM t")] == [("a", "kept")]
    Reserve(str(tmp_path)).ensure()
    with pytest.raises(NoSpace):  # outside a transaction: tried again without the reserve
        conn.execute("INSERT INTO t VALUES ('c', ?)", (big,))
    assert not Reserve(str(tmp_path)).exists()
    conn.execute("UPDATE t SET v = 'small'")  # what fits still goes
    assert conn.execute("SELECT v FROM t").fetchone()[0] == "small"
    with pytest.raises(sqlite3.IntegrityError):  # other errors stay what they are
        conn.execute("INSERT INTO t VALUES ('a', 'twice')")


# -- events, blobs, rw layers, volumes -------------------------------------------------


def test_an_event_the_disk_has_no_room_for_is_dropped(tmp_path: Path) -> None:
    log = EventLog(str(tmp_path))
    os.symlink("/dev/full", log.path)  # every write: ENOSPC
    Reserve(str(tmp_path)).ensure()
    log.emit("container", "die", "abc", {"name": "x"})
    assert not Reserve(str(tmp_path)).exists()  # it was given back for a second try
    log.emit("container", "destroy", "abc", {"name": "x"})


def test_a_torn_event_line_is_skipped(tmp_path: Path) -> None:
    log = EventLog(str(tmp_path))
    log.emit("container", "create", "a1")
    with open(log.path, "ab") as f:
        f.write(b'{"Type":"container","Act')  # the disk filled up mid-line
    log.emit("container", "start", "a2")
    log.emit("container", "die", "a3")
    assert [e["id"] for e in log.read()] == ["a1", "a3"]
    assert all(json.dumps(e) for e in log.read())


def test_a_log_line_the_disk_filled_up_under_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capsa.engine.containers.logs import LogConfig, LogWriter, read_logs

    path = str(tmp_path / "json.log")
    writer = LogWriter(path, LogConfig())
    writer.write("stdout", b"before\n")
    write = os.write

    def full(fd: int, data: bytes) -> int:
        if fd != writer._fd:
            return write(fd, data)
        if len(data) > 10:  # room for a few bytes only, then none
            return write(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    writer.write("stdout", b"lost one\nlost two\n")
    monkeypatch.undo()
    assert writer.dropped == 2 and "no space left on device" in writer.last_error
    writer.write("stderr", b"after\n")
    writer.close()
    assert [e.text for e in read_logs(path)] == ["before\n", "after\n"]


def test_a_blob_the_disk_has_no_room_for_leaves_no_partial_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = ContentStore(str(tmp_path))
    write = os.write
    with content.writer(key="layer") as writer:
        writer.write(b"first part")

        def full(fd: int, data: bytes) -> int:
            if fd == writer._fd:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(fd, data)

        monkeypatch.setattr(os, "write", full)
        with pytest.raises(NoSpace):
            writer.write(b"the rest")
        monkeypatch.undo()
    assert os.listdir(content.ingest_dir) == []


def test_no_new_blob_on_a_disk_low_on_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = ContentStore(str(tmp_path))
    digest = content.put(b"there already")
    _no_room(monkeypatch)
    assert content.put(b"there already") == digest
    with pytest.raises(NoSpace):
        content.put(b"new")


def test_an_rw_layer_loses_its_files_before_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots = SnapshotStore(str(tmp_path))
    snapshots.prepare("c1", [])
    upper = Path(snapshots.rw_dir_of("c1")) / "upper"
    (upper / "big").write_bytes(b"x" * 4096)

    class NoRoom(db.Transaction):
        def __enter__(self) -> sqlite3.Connection:
            raise space.no_space(str(tmp_path))

    monkeypatch.setattr("capsa.store.snapshots.Transaction", NoRoom)
    with pytest.raises(NoSpace):
        snapshots.remove_rw("c1")
    assert not upper.exists()  # the space came back first
    assert [u.key for u in snapshots.usage() if u.kind == "rw"] == ["c1"]
    monkeypatch.undo()
    snapshots.remove_rw("c1")  # the removal can be done again
    assert [u for u in snapshots.usage() if u.kind == "rw"] == []
    with pytest.raises(NotFound):
        snapshots.remove_rw("c1")
    snapshots.close()


def _layer(snapshots: SnapshotStore, chain: str) -> Path:
    tmp = snapshots._tmp_path(chain)
    os.makedirs(os.path.join(tmp, "fs"))
    snapshots._commit(tmp, chain, None, chain, 4096)
    return Path(snapshots.layer_dirs([chain])[0])


def test_a_layer_stays_whole_when_its_removal_cannot_be_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots = SnapshotStore(str(tmp_path))
    chain = "sha256:" + "a" * 64
    fs = _layer(snapshots, chain)
    (fs / "file").write_text("kept")

    class CommitFails(db.Transaction):
        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            self.conn.execute("ROLLBACK")
            if exc_type is None:
                raise space.no_space(str(tmp_path))

    monkeypatch.setattr("capsa.store.snapshots.Transaction", CommitFails)
    with pytest.raises(NoSpace):
        snapshots.remove(chain)
    monkeypatch.undo()
    assert (fs / "file").read_text() == "kept" and snapshots.exists(chain)
    assert os.listdir(snapshots.tmp_dir) == []
    assert snapshots.remove(chain) == 4096 and not fs.exists()
    snapshots.close()


def test_a_layer_whose_directory_is_gone_can_still_be_removed(tmp_path: Path) -> None:
    snapshots = SnapshotStore(str(tmp_path))
    chain = "sha256:" + "b" * 64
    fs = _layer(snapshots, chain)
    os.rename(fs.parent, tmp_path / "elsewhere")  # a removal cut short, a crash
    assert snapshots.remove(chain) == 4096
    assert [u for u in snapshots.usage() if u.kind == "layer"] == []
    snapshots.close()


def test_no_rw_layer_on_a_disk_low_on_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots = SnapshotStore(str(tmp_path))
    _no_room(monkeypatch)
    with pytest.raises(NoSpace):
        snapshots.prepare("c1", [])
    monkeypatch.undo()
    assert snapshots.usage() == []
    assert os.listdir(snapshots.rw_dir) == []
    snapshots.close()


def test_no_new_volume_on_a_disk_low_on_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volumes = VolumeService(Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "r")))
    volumes.create(VolumeCreateOptions(name="old"))
    _no_room(monkeypatch)
    assert volumes.create(VolumeCreateOptions(name="old")).name == "old"  # it exists
    with pytest.raises(NoSpace):
        volumes.create(VolumeCreateOptions(name="new"))
    assert [v.name for v in volumes.list()] == ["old"]
    assert os.listdir(tmp_path / "root" / "volumes") == ["old"]
    volumes.close()
