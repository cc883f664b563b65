"""Overlay snapshots: one directory per layer chain id, and containers' rw layers.

Layout under the store root::

    snapshots.db              chain id -> snapshot number, parent, diff id, size; rw keys
    snapshots/<n>/fs          one layer's diff in overlayfs form (an overlay lower dir)
    snapshots/tmp/<hex>-<r>   unpacks in progress (renamed to <n> once verified)
    snapshots/locks/<hex>     flock per chain id: two unpacks of one layer, one waits
    overlay-rw/<key>/{upper,work}

A snapshot becomes visible only by the transaction that records it and renames its
directory into place, so a crash leaves at most a leftover under ``tmp/`` (removed on
next use). Directories are 0700: layers hold setuid binaries.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import threading
import time

from capsa.errors import Conflict, InvalidArgument, NotFound
from capsa.progress import NullProgress, ProgressEvent
from capsa.record import record
from capsa.store.db import Transaction, connect
from capsa.store.space import check_room, is_full_error, is_low, no_space

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator

    from capsa.linux.mount import Mount
    from capsa.oci.image_spec import Descriptor, ImageConfig, Manifest
    from capsa.progress import ProgressSink
    from capsa.store.content import ContentStore

_MIGRATIONS = [
    """
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chain_id TEXT NOT NULL UNIQUE,
        parent TEXT,
        diff_id TEXT NOT NULL,
        size INTEGER NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX snapshots_parent ON snapshots(parent);
    CREATE TABLE rw (key TEXT PRIMARY KEY, chain_id TEXT, created REAL NOT NULL);
    CREATE INDEX rw_chain ON rw(chain_id)
    """,
]
_PROGRESS_STEP = 1 << 20


@record(frozen=True)
class SnapshotUsage:
    chain_id: str  # for an rw layer: the chain it sits on ("" for an image without layers)
    size: int  # bytes on disk
    kind: str  # "layer" or "rw"
    key: str = ""  # the rw layer's key


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chain ids: chain(L0) = diff(L0), chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            raw = f"{chains[-1]} {diff_id}".encode()
            chains.append("sha256:" + hashlib.sha256(raw).hexdigest())
    return chains


class SnapshotStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.dir = os.path.join(root, "snapshots")
        self.tmp_dir = os.path.join(self.dir, "tmp")
        self.lock_dir = os.path.join(self.dir, "locks")
        self.rw_dir = os.path.join(root, "overlay-rw")
        self._conn: sqlite3.Connection | None = None
        self._mutex = threading.RLock()  # one connection: one transaction at a time

    @property
    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None and getattr(conn, "degraded", False) and not is_low(self.root):
            conn.close()  # there is room again: back to the real database
            conn = self._conn = None
        if conn is None:
            for d in (self.dir, self.tmp_dir, self.lock_dir, self.rw_dir):
                os.makedirs(d, mode=0o700, exist_ok=True)
            conn = self._conn = connect(os.path.join(self.root, "snapshots.db"), _MIGRATIONS)
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- image layers -----------------------------------------------------------------

    def ensure(
        self,
        content: ContentStore,
        manifest: Manifest,
        config: ImageConfig,
        progress: ProgressSink | None = None,
    ) -> list[str]:
        """The image's chain ids, unpacking (and verifying) the layers not yet here."""
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise InvalidArgument(
                f"image config lists {len(diff_ids)} diff ids for {len(manifest.layers)} layers"
            )
        chains = chain_ids(diff_ids)
        sink = progress or NullProgress()
        self.cleanup()
        for i, chain in enumerate(chains):
            if self._lookup(chain) is not None:
                continue
            with _ChainLock(self.lock_dir, chain):
                if self._lookup(chain) is None:
                    parent = chains[i - 1] if i else None
                    self._unpack(
                        content,
                        manifest.layers[i],
                        diff_ids[i],
                        chain,
                        parent,
                        self.layer_dirs(chains[:i])[::-1],
                        sink,
                    )
        return chains

    def layer_dirs(self, chain_ids: list[str]) -> list[str]:
        """The lower directories of ``chain_ids``, lowest layer first."""
        dirs = []
        for chain in chain_ids:
            sid = self._lookup(chain)
            if sid is None:
                raise NotFound(f"snapshot {_short(chain)} not found")
            dirs.append(self._fs(sid))
        return dirs

    def exists(self, chain_id: str) -> bool:
        return self._lookup(chain_id) is not None

    def remove(self, chain_id: str) -> int:
        """Delete one layer snapshot; bytes freed. Conflict while something builds on it.

        Its directory moves to ``tmp/`` inside the transaction that drops its record and
        is deleted after the COMMIT; a COMMIT that fails (a full disk) puts it back."""
        moved: tuple[str, str] | None = None
        try:
            with (
                _ChainLock(self.lock_dir, chain_id) as lock,
                self._mutex,
                Transaction(self._db) as db,
            ):
                row = self._removable(db, chain_id, lock)
                db.execute("DELETE FROM snapshots WHERE id = ?", (row["id"],))
                path, trash = os.path.join(self.dir, str(row["id"])), self._tmp_path(chain_id)
                if os.path.lexists(path):  # else lost already: only the record goes
                    os.rename(path, trash)
                    moved = (trash, path)
                lock.unlink()
        except BaseException:
            if moved is not None:
                os.rename(*moved)
            raise
        if moved is not None:
            shutil.rmtree(moved[0], ignore_errors=True)
        return int(row["size"])

    def _removable(self, db: sqlite3.Connection, chain_id: str, lock: _ChainLock) -> sqlite3.Row:
        row: sqlite3.Row | None = db.execute(
            "SELECT id, size FROM snapshots WHERE chain_id = ?", (chain_id,)
        ).fetchone()
        if row is None:
            lock.unlink()  # made by this call
            raise NotFound(f"snapshot {_short(chain_id)} not found")
        child = db.execute(
            "SELECT chain_id FROM snapshots WHERE parent = ? LIMIT 1", (chain_id,)
        ).fetchone()
        if child is not None:
            raise Conflict(f"snapshot {_short(chain_id)} is the parent of {_short(child[0])}")
        user = db.execute("SELECT key FROM rw WHERE chain_id = ? LIMIT 1", (chain_id,)).fetchone()
        if user is not None:
            raise Conflict(f"snapshot {_short(chain_id)} is in use by {user[0]}")
        return row

    # -- container rw layers -------------------------------------------------------------

    def prepare(self, key: str, chain_ids: list[str], readonly: bool = False) -> list[Mount]:
        """A container root: ``chain_ids`` read-only below a fresh upper dir for ``key``."""
        from capsa.linux.mount import Mount, lowerdir_option

        _check_key(key)
        check_room(self.root)  # a new layer must not eat the room kept for cleaning up
        lowers = self.layer_dirs(chain_ids)[::-1] or [self._empty_dir()]
        top = chain_ids[-1] if chain_ids else ""
        base = os.path.join(self.rw_dir, key)
        upper, work = os.path.join(base, "upper"), os.path.join(base, "work")
        try:
            with self._mutex, Transaction(self._db) as db:
                if db.execute("SELECT 1 FROM rw WHERE key = ?", (key,)).fetchone():
                    raise Conflict(f"rw layer {key} already exists")
                db.execute(
                    "INSERT INTO rw(key, chain_id, created) VALUES (?, ?, ?)",
                    (key, top, time.time()),
                )
                if readonly:
                    return [_readonly_mount(lowers)]
                shutil.rmtree(base, ignore_errors=True)  # a crash's leftover
                os.makedirs(work, mode=0o700)
                _mkdir_like(upper, lowers[0])
        except Conflict:
            raise
        except BaseException as e:  # not recorded: no directories either
            shutil.rmtree(base, ignore_errors=True)
            if is_full_error(e):
                raise no_space(self.root) from e
            raise
        return [
            Mount(
                "overlay",
                "overlay",
                [lowerdir_option(lowers), f"upperdir={upper}", f"workdir={work}"],
            )
        ]

    def remove_rw(self, key: str) -> None:
        """Delete the layer's files, then its record: on a full disk the space comes
        back before anything is written, and a removal cut short can be done again."""
        _check_key(key)
        base = os.path.join(self.rw_dir, key)
        existed = os.path.lexists(base)
        shutil.rmtree(base, ignore_errors=True)
        with self._mutex, Transaction(self._db) as db:
            gone = db.execute("DELETE FROM rw WHERE key = ?", (key,)).rowcount
        if not gone and not existed:
            raise NotFound(f"rw layer {key} not found")

    def rw_dir_of(self, key: str) -> str:
        """``overlay-rw/<key>``: holds ``upper`` (the container's changes) and ``work``."""
        _check_key(key)
        return os.path.join(self.rw_dir, key)

    def usage(self) -> list[SnapshotUsage]:
        with self._mutex:
            layers = self._db.execute("SELECT chain_id, size FROM snapshots ORDER BY id").fetchall()
            rws = self._db.execute("SELECT key, chain_id FROM rw ORDER BY created").fetchall()
        result = [SnapshotUsage(r["chain_id"], r["size"], "layer") for r in layers]
        for r in rws:
            size = disk_usage(os.path.join(self.rw_dir, r["key"], "upper"))
            result.append(SnapshotUsage(r["chain_id"] or "", size, "rw", r["key"]))
        return result

    def cleanup(self) -> int:
        """Remove leftovers of crashed unpacks and removals; bytes freed."""
        freed = 0
        for name in _listdir(self.tmp_dir):
            chain = "sha256:" + name.partition("-")[0]
            lock = _ChainLock(self.lock_dir, chain, blocking=False)
            if lock.acquire():  # nobody is unpacking that chain now
                try:
                    path = os.path.join(self.tmp_dir, name)
                    freed += disk_usage(path)
                    shutil.rmtree(path, ignore_errors=True)
                    if not self.exists(chain):
                        lock.unlink()
                finally:
                    lock.release()
        return freed

    # -- internals ------------------------------------------------------------------------

    def _unpack(
        self,
        content: ContentStore,
        layer: Descriptor,
        diff_id: str,
        chain: str,
        parent: str | None,
        parents: list[str],
        sink: ProgressSink,
    ) -> None:
        check_room(self.root)
        tmp = self._tmp_path(chain)
        fs = os.path.join(tmp, "fs")
        progress = _Extracting(sink, layer)
        try:
            os.makedirs(fs, mode=0o755)
            os.chmod(tmp, 0o700)
            from capsa.store.unpack import apply_layer, open_layer  # only unpacking pays

            with open_layer(content, layer, on_read=progress.read) as stream:
                stats = apply_layer(stream, fs, parents)
            if stats.diff_id != diff_id:
                raise InvalidArgument(
                    f"layer {layer.digest}: diff id {stats.diff_id} does "
                    f"not match {diff_id} from the image config"
                )
            self._commit(tmp, chain, parent, diff_id, content_size(fs))
        except InvalidArgument as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_full_error(err.__cause__):  # an entry the disk had no room for
                raise no_space(self.root) from err
            if layer.digest in err.message:
                raise
            raise InvalidArgument(f"layer {layer.digest}: {err.message}") from err
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_full_error(e):
                raise no_space(self.root) from e
            raise
        progress.complete()

    def _commit(self, tmp: str, chain: str, parent: str | None, diff_id: str, size: int) -> None:
        with self._mutex, Transaction(self._db) as db:
            db.execute("DELETE FROM snapshots WHERE chain_id = ?", (chain,))  # dir lost
            cur = db.execute(
                "INSERT INTO snapshots(chain_id, parent, diff_id, size, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (chain, parent, diff_id, size, time.time()),
            )
            target = os.path.join(self.dir, str(cur.lastrowid))
            if os.path.lexists(target):  # renamed by a transaction a crash rolled back
                shutil.rmtree(target)
            os.rename(tmp, target)

    def _lookup(self, chain: str) -> int | None:
        with self._mutex:
            row = self._db.execute(
                "SELECT id FROM snapshots WHERE chain_id = ?", (chain,)
            ).fetchone()
        if row is None or not os.path.isdir(self._fs(row[0])):
            return None
        return int(row[0])

    def _fs(self, sid: int) -> str:
        return os.path.join(self.dir, str(sid), "fs")

    def _tmp_path(self, chain: str) -> str:
        return os.path.join(self.tmp_dir, f"{_hex(chain)}-{os.urandom(4).hex()}")

    def _empty_dir(self) -> str:
        path = os.path.join(self.dir, "empty")
        os.makedirs(path, mode=0o755, exist_ok=True)
        return path


class _ChainLock:
    """An exclusive flock on ``locks/<hex>``, re-checked after locking so that the
    holder may unlink the file (``remove``) without two processes ever both holding it."""

    def __init__(self, lock_dir: str, chain: str, blocking: bool = True) -> None:
        self.lock_dir = lock_dir
        self.path = os.path.join(lock_dir, _hex(chain))
        self.blocking = blocking
        self.fd = -1

    def acquire(self) -> bool:
        os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
        mode = fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, mode)
                current = os.stat(self.path).st_ino
            except BlockingIOError:
                os.close(fd)
                return False
            except FileNotFoundError:
                current = -1
            except BaseException:
                os.close(fd)
                raise
            if os.fstat(fd).st_ino == current:
                self.fd = fd
                return True
            os.close(fd)  # unlinked by a remove() while we waited: lock the new file

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def unlink(self) -> None:
        """Remove the lock file while holding it (the snapshot is going away)."""
        os.unlink(self.path)

    def __enter__(self) -> _ChainLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Extracting:
    """Turns compressed bytes read into throttled "Extracting" progress events."""

    def __init__(self, sink: ProgressSink, layer: Descriptor) -> None:
        self.sink = sink
        self.id = _hex(layer.digest)[:12]
        self.total = layer.size or None
        self.current = self.reported = 0

    def read(self, n: int) -> None:
        self.current += n
        if self.current - self.reported >= _PROGRESS_STEP or (n == 0 and self.current):
            self.reported = self.current
            self.sink.emit(ProgressEvent(self.id, "Extracting", self.current, self.total))

    def complete(self) -> None:
        self.sink.emit(ProgressEvent(self.id, "Pull complete", self.current, self.total, True))


def _readonly_mount(lowers: list[str]) -> Mount:
    from capsa.linux.mount import Mount, lowerdir_option

    if len(lowers) == 1:  # overlay wants two lower dirs when it has no upper
        return Mount("bind", lowers[0], ["ro", "rbind"])
    return Mount("overlay", "overlay", [lowerdir_option(lowers)])


def _mkdir_like(path: str, model: str) -> None:
    """An upper dir with the top layer root's mode and owner (overlay shows the upper's)."""
    st = os.stat(model)
    os.mkdir(path, 0o700)
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, st.st_mode & 0o7777)


def disk_usage(path: str) -> int:
    """Bytes allocated below ``path`` (hard links counted once); 0 if it is missing."""
    return sum(st.st_blocks * 512 for st, _ in _tree(path))


def content_size(path: str) -> int:
    """Bytes of the files below ``path`` as their sizes say (hard links once, directories
    not counted): Docker's ``directory.Size``, what its ``SizeRw`` reports; 0 if missing."""
    return sum(st.st_size for st, is_dir in _tree(path) if not is_dir)


def _tree(path: str) -> Iterator[tuple[os.stat_result, bool]]:
    """The stat of every entry below ``path`` (each hard-linked inode once) and whether
    it is a directory; entries removed meanwhile (a running container writes) skipped."""
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir:
                stack.append(entry.path)
            elif st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            yield st, is_dir


def _check_key(key: str) -> None:
    if not key or key in (".", "..") or "/" in key or "\0" in key or len(key) > 255:
        raise InvalidArgument(f"invalid rw layer key {key!r}")


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _hex(digest: str) -> str:
    return digest.partition(":")[2] or digest


def _short(digest: str) -> str:
    return _hex(digest)[:12]
