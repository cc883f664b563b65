"""SQLite databases with WAL and ``PRAGMA user_version`` migrations.

On a full disk (see ``capsa.store.space``) a database still answers reads: when SQLite
cannot make its WAL index (``-shm``) or journal, the store's reserve is released and
the open tried again, and failing that the database is read from a read-only snapshot
(the file as it stands, or its empty schema if it does not exist yet) until there is
room again. Writes that find the disk full release the reserve too; one that still
cannot be made raises ``NoSpace`` with nothing half-written (SQLite rolls it back).
"""

from __future__ import annotations

import os

from capsa.store.space import Reserve, is_low, no_space

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence
    from typing import Any
else:
    try:
        # the C module that ``sqlite3`` wraps: the package only adds datetime adapters,
        # which capsa does not use, and importing datetime costs a cold ``ps`` ~1 ms
        import _sqlite3 as sqlite3
    except ImportError:
        import sqlite3

_FULL = sqlite3.SQLITE_FULL
_MAYBE_FULL = frozenset({sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN})


class Connection(sqlite3.Connection):
    """A connection that knows its directory: a statement failing for want of space
    raises ``NoSpace``; one outside a transaction is tried again after the directory's
    reserve is released. ``degraded``: a read-only stand-in opened on a full disk."""

    directory = ""  # set once the database is open (errors while opening stay raw)
    degraded = False

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        outside = not self.in_transaction
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as e:
            if not self.directory or not self._out_of_space(e):
                raise
            if outside and not self.degraded and Reserve(self.directory).release():
                try:
                    return super().execute(sql, parameters)
                except sqlite3.Error as again:
                    if not self._out_of_space(again):
                        raise
            raise no_space(self.directory) from e

    def _out_of_space(self, err: sqlite3.Error) -> bool:
        if self.degraded:
            return _code(err) == sqlite3.SQLITE_READONLY
        return is_full(err, self.directory)


def _code(err: sqlite3.Error) -> int:
    return int(getattr(err, "sqlite_errorcode", 0) or 0) & 0xFF


def is_unique_violation(err: BaseException) -> bool:
    """A UNIQUE constraint refused the row (not the primary key: another constraint)."""
    return (
        isinstance(err, sqlite3.Error)
        and getattr(err, "sqlite_errorcode", 0) == sqlite3.SQLITE_CONSTRAINT_UNIQUE
    )


def is_full(err: BaseException, directory: str) -> bool:
    """SQLite could not write for want of space: SQLITE_FULL, or an I/O error (the WAL
    index could not grow) while ``directory`` is low on space."""
    if not isinstance(err, sqlite3.Error):
        return False
    code = _code(err)
    return code == _FULL or (code in _MAYBE_FULL and is_low(directory))


def open_db(path: str, migrations: Sequence[str]) -> Connection:
    """Open (creating) ``path`` and apply the migrations it has not seen yet.

    ``migrations[i]`` moves the schema from version ``i`` to ``i + 1``; each runs in
    its own transaction together with the version bump.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=30, isolation_level=None, check_same_thread=False, factory=Connection
    )
    try:
        conn.row_factory = sqlite3.Row
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            _retry(conn, "PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn, migrations)
    except BaseException:
        conn.close()
        raise
    conn.directory = os.path.dirname(path)
    return conn


def _migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for target in range(version, len(migrations)):
        with Transaction(conn):
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current == target:  # another process may have migrated meanwhile
                _apply(conn, migrations[target])
                conn.execute(f"PRAGMA user_version={target + 1}")


def _apply(conn: sqlite3.Connection, migration: str) -> None:
    for statement in migration.split(";"):
        if statement.strip():
            conn.execute(statement)


def connect(path: str, migrations: Sequence[str]) -> Connection:
    """``open_db`` that survives a full disk: the reserve is released and the open
    tried again, else a read-only stand-in is returned (``degraded``)."""
    directory = os.path.dirname(path)
    try:
        conn = open_db(path, migrations)
    except sqlite3.Error as e:
        if not is_full(e, directory):
            raise
        conn = _open_after_release(path, migrations) or read_only(path, migrations)
    if not conn.degraded:
        Reserve(directory).ensure()
    return conn


def _open_after_release(path: str, migrations: Sequence[str]) -> Connection | None:
    directory = os.path.dirname(path)
    if not Reserve(directory).release():
        return None
    try:
        return open_db(path, migrations)
    except sqlite3.Error as e:
        if not is_full(e, directory):
            raise
        return None


def read_only(path: str, migrations: Sequence[str]) -> Connection:
    """The database as it stands on disk, for reading only, with nothing written: no
    WAL index, no journal (``immutable``). A database not made yet (no file, or a file
    whose first migration the full disk cut short: nothing stored) reads as empty."""
    conn = None
    if os.path.exists(path) and os.path.getsize(path) > 0:
        uri = "file:" + path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
        conn = sqlite3.connect(
            uri + "?immutable=1", uri=True, isolation_level=None,
            check_same_thread=False, factory=Connection,
        )  # fmt: skip
        if migrations and conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            conn.close()
            conn = None
    if conn is None:
        conn = sqlite3.connect(
            ":memory:", isolation_level=None, check_same_thread=False, factory=Connection
        )
        _migrate(conn, migrations)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA query_only=1")
    conn.directory = os.path.dirname(path)
    conn.degraded = True
    return conn


def _retry(conn: sqlite3.Connection, sql: str) -> None:
    """WAL set-up can answer SQLITE_PROTOCOL ("locking protocol") while many processes
    open the database at once; it is transient."""
    import time

    for attempt in range(50):
        try:
            conn.execute(sql)
            return
        except sqlite3.OperationalError as e:
            transient = _code(e) in (sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_BUSY)
            if not transient or attempt == 49:
                raise
            time.sleep(0.01 * (attempt + 1))


class Transaction:
    """``with Transaction(conn):`` -- BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error.

    On a disk low on space the directory's reserve is released first, so that the
    change can be recorded; a COMMIT that still fails raises ``NoSpace`` (SQLite has
    rolled the transaction back)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        directory = getattr(self.conn, "directory", "")
        if directory and is_low(directory):
            Reserve(directory).release()
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:  # a failed COMMIT or statement may have ended it
            self.conn.execute("ROLLBACK")


class Database:
    """A SQLite database opened on first use (after its migrations) and closed on
    demand: the base of every store that keeps its state in one file."""

    def __init__(self, path: str, migrations: Sequence[str]) -> None:
        self.path = path
        self._migrations = migrations
        self._conn: Connection | None = None

    @property
    def conn(self) -> Connection:
        conn = self._conn
        if conn is not None and conn.degraded and not is_low(conn.directory):
            conn.close()  # there is room again: back to the real database
            conn = self._conn = None
        if conn is None:
            conn = self._conn = connect(self.path, self._migrations)
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Pins:
    """One idle connection to each database in a directory, held by a long-lived process
    (the monitor host). While one is open, a short-lived process (a command, a monitor)
    closing its own connection is not the last one: it does not checkpoint and delete
    the WAL (two fdatasyncs and an unlink per database), and the next one does not make
    it again. Measured here: an open, a write and a close take 0.15 ms instead of 1.1 ms.
    The WAL is still checkpointed as it grows (SQLite's auto-checkpoint) and when the
    pins close."""

    def __init__(self) -> None:
        self._conns: dict[str, sqlite3.Connection] = {}

    def pin(self, directory: str) -> None:
        """Hold the databases (``*.db``) now in ``directory``; already held ones stay."""
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            path = os.path.join(directory, name)
            if not name.endswith(".db") or path in self._conns:
                continue
            try:
                conn = sqlite3.connect(path, timeout=5)
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the WAL
            except sqlite3.Error:
                continue
            self._conns[path] = conn

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
