"""Named volumes with Docker's local driver: create, list, remove, prune, mount.

Data lives in ``root/volumes/<name>/_data`` (the volume's mountpoint, as Docker lays
it out); metadata and the containers using each volume in ``root/volumes.db``
(SQLite, so the CLI and the API server can share it). Operations that mount, populate
or delete one volume hold an ``flock`` on its directory, so two containers starting
with the same new volume populate it once, and ``rm`` cannot race a mount.

Volumes made with ``-o type=... -o device=...`` (tmpfs, bind, block devices) are
mounted on their mountpoint when the first container uses them and unmounted when
the last one releases them. An empty volume is populated from the image the first
time a container mounts it (Docker's copy-up, unless the mount says ``nocopy``).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import os
import stat
import time

from capsa import fastjson
from capsa.engine.volumes.types import (
    ANONYMOUS_LABEL,
    Volume,
    VolumeCreateOptions,
    VolumeFilters,
    VolumePruneReport,
    check_filters,
    match_labels,
    split_mount_options,
    truthy,
    validate_driver,
    validate_name,
    validate_options,
)
from capsa.errors import (
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    no_such_volume,
    os_reason,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator

    from capsa.config import Settings
    from capsa.engine.system.reports import ItemReport
    from capsa.engine.system.types import VolumeUsage
    from capsa.store.db import Database

_MIGRATIONS = [
    """
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        created_at TEXT NOT NULL,
        labels TEXT NOT NULL,
        options TEXT NOT NULL,
        needs_copy INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE volume_users (
        name TEXT NOT NULL REFERENCES volumes(name) ON DELETE CASCADE,
        container_id TEXT NOT NULL,
        PRIMARY KEY (name, container_id)
    );
    CREATE INDEX volume_users_by_container ON volume_users(container_id)
    """,
]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class VolumeService:
    """The local volume driver. Thread-compatible; safe across processes."""

    def __init__(
        self,
        settings: Settings,
        references: Callable[[], dict[str, builtins.list[str]]] | None = None,
    ) -> None:
        """``references``: volume name -> ids of the containers, running or not, that
        mount it (a stopped container's volumes are in use for prune and df, as Docker's)."""
        self.settings = settings
        self.base = os.path.join(settings.root, "volumes")
        self._store: Database | None = None
        self._references = references or dict

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def _db(self) -> sqlite3.Connection:
        if self._store is None:
            from capsa.store.db import Database

            self._store = Database(os.path.join(self.settings.root, "volumes.db"), _MIGRATIONS)
        return self._store.conn

    def mountpoint(self, name: str) -> str:
        return os.path.join(self.base, name, "_data")

    # -- create / read -------------------------------------------------------------

    def create(self, opts: VolumeCreateOptions) -> Volume:
        """A new volume, or the existing one of that name (Docker is idempotent)."""
        validate_driver(opts.driver)
        validate_options(opts.driver_opts)
        name = opts.name or _random_name()
        validate_name(name)
        labels = dict(opts.labels)
        if opts.anonymous or not opts.name:  # as dockerd marks a volume it names itself
            labels.setdefault(ANONYMOUS_LABEL, "")
        row = self._create_row(name, opts.driver, labels, opts.driver_opts)
        volume = self._volume(row)
        labels_differ = bool(opts.labels) and volume.labels != labels
        options_differ = bool(opts.driver_opts) and volume.options != opts.driver_opts
        if labels_differ or options_differ:
            raise Conflict(f"volume {name} already exists with different options")
        self._make_dirs(name)
        return volume

    def _create_row(
        self, name: str, driver: str, labels: dict[str, str], options: dict[str, str]
    ) -> sqlite3.Row:
        """The volume's record, inserted with its directories if it is new: on a full
        disk neither is left without the other."""
        from capsa.store.db import Transaction
        from capsa.store.space import check_room, is_full_error, no_space

        if not self._exists(name):  # checked first: a transaction may take the reserve
            check_room(self.settings.root)
        created = False
        try:
            with Transaction(self._db()) as conn:
                row = conn.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
                if row is None:
                    created = True
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    conn.execute(
                        "INSERT INTO volumes (name, driver, created_at, labels, options)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (name, driver, stamp, fastjson.dumps(labels), fastjson.dumps(options)),
                    )
                    self._make_dirs(name)
                    row = conn.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        except BaseException as e:
            if created:  # not recorded: its (empty) directories go too
                for path in (self.mountpoint(name), os.path.join(self.base, name)):
                    with contextlib.suppress(OSError):
                        os.rmdir(path)
            if is_full_error(e):
                raise no_space(self.settings.root) from e
            raise
        return row

    def _make_dirs(self, name: str) -> None:
        os.makedirs(self.base, mode=0o701, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.join(self.base, name), 0o755)
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.mountpoint(name), 0o755)

    def _volume(self, row: sqlite3.Row) -> Volume:
        return Volume(
            name=row["name"],
            driver=row["driver"],
            mountpoint=self.mountpoint(row["name"]),
            created_at=row["created_at"],
            labels=fastjson.loads(row["labels"]),
            options=fastjson.loads(row["options"]),
        )

    def get(self, name: str) -> Volume:
        row = self._db().execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise no_such_volume(name)
        return self._volume(row)

    def inspect_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[Volume]]:
        """``get`` for several names, a report per name (``capsa.engine.system.reports``)."""
        from capsa.engine.system.reports import each

        return each(names, self.get)

    def remove_each(
        self, names: builtins.list[str], force: bool = False
    ) -> builtins.list[ItemReport[None]]:
        from capsa.engine.system.reports import each

        return each(names, lambda name: self.remove(name, force))

    def list(self, filters: VolumeFilters | None = None) -> list[Volume]:
        """Volumes sorted by name; ``name``/``driver`` are regexps, as Docker's filters."""
        filters = filters or {}
        check_filters(filters)
        rows = self._db().execute("SELECT * FROM volumes ORDER BY name").fetchall()
        used = {r[0] for r in self._db().execute("SELECT DISTINCT name FROM volume_users")}
        if "dangling" in filters:  # a stopped container's volumes are not dangling either
            used |= set(self._references())
        out = []
        for row in rows:
            v = self._volume(row)
            if "name" in filters and not _match_any(filters["name"], v.name):
                continue
            if "driver" in filters and not _match_any(filters["driver"], v.driver):
                continue
            if not match_labels(v.labels, filters.get("label", [])):
                continue
            if any(truthy(d) == (v.name in used) for d in filters.get("dangling", [])):
                continue
            out.append(v)
        return out

    def users(self, name: str) -> builtins.list[str]:
        rows = self._db().execute(
            "SELECT container_id FROM volume_users WHERE name = ? ORDER BY container_id", (name,)
        )
        return [r[0] for r in rows]

    def volumes_of(self, container_id: str) -> builtins.list[str]:
        rows = self._db().execute(
            "SELECT name FROM volume_users WHERE container_id = ? ORDER BY name", (container_id,)
        )
        return [r[0] for r in rows]

    def size(self, name: str) -> int:
        """Bytes in the volume (hard links once); -1 for mounted types, as Docker's df."""
        volume = self.get(name)
        if volume.needs_mount:
            return -1
        return _tree_size(volume.mountpoint)

    def disk_usage(self) -> builtins.list[VolumeUsage]:
        """``system df``'s volumes, sized: as dockerd, those with mount options (tmpfs,
        bind, devices) are not local data and are left out."""
        from capsa.engine.system.types import VolumeUsage

        referenced = self._references()
        return [
            VolumeUsage(v, _tree_size(v.mountpoint), len(self._holders(v.name, referenced)))
            for v in self.list()
            if not v.options
        ]

    def _holders(self, name: str, referenced: dict[str, builtins.list[str]]) -> set[str]:
        return set(referenced.get(name, [])) | set(self.users(name))

    # -- remove / prune ------------------------------------------------------------

    def remove(self, name: str, force: bool = False, leaving: str = "") -> None:
        """Delete a volume and its data; refused while a container mounts it or has it in
        its spec (a stopped one too, as Docker), even forced: the container ``leaving``
        (being removed with ``rm -v``) does not count.

        ``force`` ignores a missing volume and purges the record when the data cannot be
        deleted.
        """
        try:
            volume = self.get(name)
        except NotFound:
            if force:
                return
            raise
        with self._locked(name):
            known = self._references().get(name, [])
            users = sorted({*self.users(name), *known} - {leaving})
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
            try:
                self._delete_data(volume)
            except (OSError, Internal) as e:
                if not force:
                    reason = os_reason(e) if isinstance(e, OSError) else str(e)
                    raise Internal(f"remove {name}: {reason}") from e
            self._db().execute("DELETE FROM volumes WHERE name = ?", (name,))

    def _delete_data(self, volume: Volume) -> None:
        path = volume.mountpoint
        if _is_mountpoint(path):
            self._unmount(path)
        if volume.needs_mount:
            # never recurse into what may be a host directory: _data must be empty now
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(path)
        import shutil

        shutil.rmtree(os.path.dirname(path), ignore_errors=False, onerror=_missing_ok)

    def prune(
        self, filters: VolumeFilters | None = None, all_volumes: bool = False
    ) -> VolumePruneReport:
        """Remove unused anonymous volumes (Docker 23+), or all unused ones with
        ``all_volumes`` (or the ``all=true`` filter). As dockerd, volumes with mount
        options (tmpfs, bind, devices) are left alone: removing them frees nothing."""
        from capsa.engine.system.filters import VOLUME_PRUNE, parse_prune

        parsed = parse_prune(filters, VOLUME_PRUNE)
        all_volumes = all_volumes or bool(parsed.all)
        referenced = self._references()
        report = VolumePruneReport()
        for volume in self.list():
            if not (all_volumes or volume.anonymous) or volume.options:
                continue
            if not parsed.matches(volume.labels) or volume.name in referenced:
                continue
            if self.users(volume.name):
                continue
            size = self.size(volume.name)
            try:
                self.remove(volume.name)
            except (Conflict, NotFound):
                continue  # a container took it meanwhile, or someone else removed it
            report.deleted.append(volume.name)
            report.space_reclaimed += max(size, 0)
        return report

    # -- use by containers ---------------------------------------------------------

    def mount_source(
        self, name: str, container_id: str, image_rootfs: str | None, dest: str
    ) -> str:
        """The host directory to bind-mount at ``dest`` for ``container_id``.

        Creates the volume when missing, records the container as a user, mounts
        tmpfs/bind/device volumes, and on first use copies ``dest`` of the image (resolved
        inside ``image_rootfs``) into an empty volume. ``image_rootfs=None``: no copy.
        """
        if not container_id:
            raise InvalidArgument(f"mount {name}: missing container id")
        for _ in range(8):  # a concurrent remove may delete the volume under us
            if not self._exists(name):
                self.create(VolumeCreateOptions(name=name))
            with self._locked(name):
                row = self._db().execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
                if row is None:
                    continue
                self._use(self._volume(row), container_id, row["needs_copy"], image_rootfs, dest)
                return self.mountpoint(name)
        raise Conflict(f"mount {name}: volume keeps being removed")

    def _exists(self, name: str) -> bool:
        row = self._db().execute("SELECT 1 FROM volumes WHERE name = ?", (name,)).fetchone()
        return row is not None

    def _use(
        self, volume: Volume, container_id: str, needs_copy: int, rootfs: str | None, dest: str
    ) -> None:
        """Called with the volume's lock held."""
        conn = self._db()
        added = conn.execute(
            "INSERT OR IGNORE INTO volume_users (name, container_id) VALUES (?, ?)",
            (volume.name, container_id),
        ).rowcount
        mounted = False
        try:
            if volume.needs_mount and not _is_mountpoint(volume.mountpoint):
                _mount(volume)
                mounted = True
            if rootfs is not None and needs_copy:
                populate(rootfs, dest, volume.mountpoint)
                conn.execute("UPDATE volumes SET needs_copy = 0 WHERE name = ?", (volume.name,))
        except BaseException:
            if mounted:
                self._unmount(volume.mountpoint)
            if added:
                conn.execute(
                    "DELETE FROM volume_users WHERE name = ? AND container_id = ?",
                    (volume.name, container_id),
                )
            raise

    def release(self, name: str, container_id: str) -> None:
        """``container_id`` no longer uses the volume; the last user unmounts it."""
        if not self._exists(name):
            return
        with self._locked(name):
            self._db().execute(
                "DELETE FROM volume_users WHERE name = ? AND container_id = ?",
                (name, container_id),
            )
            row = self._db().execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
            if row is None or self.users(name):
                return
            volume = self._volume(row)
            if volume.needs_mount and _is_mountpoint(volume.mountpoint):
                self._unmount(volume.mountpoint)

    def release_all(self, container_id: str) -> builtins.list[str]:
        """Release every volume ``container_id`` uses (container removal); their names."""
        names = self.volumes_of(container_id)
        for name in names:
            self.release(name, container_id)
        return names

    # -- helpers -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Hold an exclusive flock on ``volumes/<name>`` (re-created if missing)."""
        path = os.path.join(self.base, name)
        for _ in range(8):
            self._make_dirs(name)
            fd = os.open(path, _DIR_FLAGS)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while we waited: lock the new one
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (current.st_dev, current.st_ino):
                    continue
                yield
                return
            finally:
                os.close(fd)
        raise Conflict(f"lock volume {name}: directory keeps being replaced")

    def _unmount(self, path: str) -> None:
        from capsa.linux.mount import unmount

        try:
            unmount(path)
        except Conflict:  # busy: let the kernel finish when the last user goes
            unmount(path, detach=True)


def _random_name() -> str:
    """A new anonymous volume's name: 64 random hex digits (``secrets`` is imported
    here, not at start: listing volumes does not need it)."""
    import secrets

    return secrets.token_hex(32)


def _mount(volume: Volume) -> None:
    from capsa.linux.mount import Mount, mount_all

    opts = volume.options
    options = split_mount_options(opts.get("o", ""))
    try:
        mount_all(
            [Mount(type=opts.get("type", "none"), source=opts["device"], options=options)],
            volume.mountpoint,
        )
    except KeyError:
        raise InvalidArgument(f"mount {volume.name}: missing device in volume options") from None


def _is_mountpoint(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ", 5)
            if len(fields) > 4 and _unescape(fields[4]) == real:
                return True
    return False


def _unescape(text: str) -> str:
    """mountinfo's octal escapes (``\\040`` for a space)."""
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _match_any(patterns: list[str], value: str) -> bool:
    import re

    for pattern in patterns:
        if pattern == value:
            return True
        try:
            if re.search(pattern, value):
                return True
        except re.error:
            continue
    return False


def _tree_size(top: str) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue  # removed meanwhile
            if not stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _missing_ok(func: object, path: str, exc_info: tuple[type, BaseException, object]) -> None:
    err = exc_info[1]
    if isinstance(err, OSError) and err.errno == errno.ENOENT:
        return
    raise err


# -- populate from the image (Docker's copy-up) ----------------------------------------

_COPY_FALLBACK = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)
_XATTR_SKIP = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES)


def populate(rootfs: str, dest: str, target: str) -> bool:
    """Copy directory ``dest`` of the image at ``rootfs`` into ``target`` if it is empty.

    ``dest`` is resolved inside ``rootfs`` (symlinks re-rooted, ``..`` clamped); below
    it nothing is followed: symlinks are copied as symlinks. Modes, owners, times,
    xattrs, hard links, devices and FIFOs are kept; the volume's root takes the owner
    and mode of ``dest``. Returns whether anything was copied.
    """
    from capsa.linux import safepath

    root_fd = safepath.open_root(rootfs)
    try:
        # mode 0: safepath tests O_TMPFILE's bits loosely and would pass 0o644 to openat2
        src = safepath.open_in_root(root_fd, dest, os.O_RDONLY | os.O_DIRECTORY, 0)
    except (NotFound, InvalidArgument):
        return False  # missing, or not a directory: Docker copies directories only
    finally:
        os.close(root_fd)
    try:
        dst = os.open(target, _DIR_FLAGS)
        try:
            if os.listdir(dst):
                return False
            _TreeCopy(dst).copy_dir(src, dst, "")
            _copy_meta(src, dst, os.fstat(src))
            return True
        finally:
            os.close(dst)
    finally:
        os.close(src)


class _TreeCopy:
    """A recursive copy between two directory fds; never follows a symlink."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd  # the destination root: hard links are made relative to it
        self.links: dict[tuple[int, int], str] = {}

    def copy_dir(self, src_fd: int, dst_fd: int, rel: str) -> None:
        for name in sorted(os.listdir(src_fd)):
            st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
            path = f"{rel}/{name}" if rel else name
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                self._dir(src_fd, dst_fd, name, path, st)
            elif stat.S_ISREG(mode):
                if not self._link(dst_fd, name, path, st):
                    _copy_file(src_fd, dst_fd, name, st)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
                _set_owner(dst_fd, name, st)
                os.utime(name, ns=_times(st), dir_fd=dst_fd, follow_symlinks=False)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                _copy_node(dst_fd, name, st)
            # sockets are not content: skipped, as Docker does

    def _dir(self, src_fd: int, dst_fd: int, name: str, path: str, st: os.stat_result) -> None:
        sub_src = os.open(name, _DIR_FLAGS, dir_fd=src_fd)
        try:
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            sub_dst = os.open(name, _DIR_FLAGS, dir_fd=dst_fd)
            try:
                self.copy_dir(sub_src, sub_dst, path)
                _copy_meta(sub_src, sub_dst, st)  # last: the mode may forbid writing
            finally:
                os.close(sub_dst)
        finally:
            os.close(sub_src)

    def _link(self, dst_fd: int, name: str, path: str, st: os.stat_result) -> bool:
        """Make ``name`` a hard link to an earlier copy of the same inode, if any."""
        if st.st_nlink < 2:
            return False
        key = (st.st_dev, st.st_ino)
        first = self.links.get(key)
        if first is None:
            self.links[key] = path
            return False
        os.link(first, name, src_dir_fd=self.root_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        return True


def _copy_file(src_dir: int, dst_dir: int, name: str, st: os.stat_result) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dst = os.open(name, flags, 0o600, dir_fd=dst_dir)
        try:
            _copy_data(src, dst)
            _copy_meta(src, dst, st)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_data(src: int, dst: int) -> None:
    try:
        while os.copy_file_range(src, dst, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in _COPY_FALLBACK:
            raise
    while os.sendfile(dst, src, None, 1 << 30):
        pass


def _copy_node(dst_dir: int, name: str, st: os.stat_result) -> None:
    try:
        os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst_dir)
    except PermissionError:
        if os.geteuid() == 0:
            raise
        return  # devices need CAP_MKNOD: skipped when rootless
    _set_owner(dst_dir, name, st)
    os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
    os.utime(name, ns=_times(st), dir_fd=dst_dir, follow_symlinks=False)


def _copy_meta(src: int, dst: int, st: os.stat_result) -> None:
    """Owner, then xattrs (chown clears security.capability), then mode, then times."""
    try:
        os.fchown(dst, st.st_uid, st.st_gid)
    except PermissionError:
        if os.geteuid() == 0:
            raise
    _copy_xattrs(src, dst)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=_times(st))


def _set_owner(dir_fd: int, name: str, st: os.stat_result) -> None:
    try:
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
    except PermissionError:
        if os.geteuid() == 0:
            raise


def _copy_xattrs(src: int, dst: int) -> None:
    try:
        keys = os.listxattr(src)
    except OSError as e:
        if e.errno in _XATTR_SKIP:
            return
        raise
    for key in keys:
        try:
            os.setxattr(dst, key, os.getxattr(src, key))
        except OSError as e:
            if e.errno not in _XATTR_SKIP:  # trusted.* when rootless, fs without xattrs
                raise


def _times(st: os.stat_result) -> tuple[int, int]:
    return (st.st_atime_ns, st.st_mtime_ns)
