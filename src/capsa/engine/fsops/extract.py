"""Apply tar entries below a directory of a ``View`` (``cp`` into a container or out).

Each entry's parent directory is resolved inside the view (so an archive's symlink,
or the container's, can only lead elsewhere in the container) and created when
missing; the entry itself is created with ``*at`` calls on that directory's fd and
never followed. Like Docker's untar for ``cp``: a directory is never replaced by a
non-directory or the reverse, other existing entries are replaced, and directory
times are set last.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile

from capsa.engine.fsops.view import Location, View, join
from capsa.errors import Conflict, InvalidArgument
from capsa.linux.safepath import proc_fd_path
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import BinaryIO

    from capsa.engine.fsops.tar import Data, Entry

_PAX_XATTR = "SCHILY.xattr."
_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_NODES = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: 0}


@record(frozen=True)
class Ownership:
    """Owners of extracted entries: the archive's (``keep``) or ``uid``/``gid``
    (-1: left to whoever creates them)."""

    keep: bool = False
    uid: int = -1
    gid: int = -1


def member_name(name: str) -> str:
    """An archive member's path relative to the extraction directory ("" for itself)."""
    norm = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if norm == ".." or norm.startswith("../"):
        raise InvalidArgument(f"invalid archive member {name!r}: it leaves the destination")
    return "" if norm == "." else norm


class Extractor:
    def __init__(self, view: View, dest: str, owner: Ownership) -> None:
        self.view = view
        self.dest = dest  # canonical path of an existing directory of the view
        self.owner = owner
        self.dir_times: list[tuple[Location, int]] = []

    def extract(self, entries: Iterable[Entry]) -> None:
        for info, data in entries:
            self.apply(info, data)
        self.finish()

    def extract_stream(self, stream: BinaryIO) -> None:
        """A tar stream (plain or compressed) as ``docker cp -`` accepts it."""
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                for member in tar:
                    self.apply(member, tar.extractfile(member) if member.isreg() else None)
        except tarfile.TarError as e:
            raise InvalidArgument(f"invalid tar archive: {e}") from None
        self.finish()

    def apply(self, info: tarfile.TarInfo, data: Data | None) -> None:
        name = member_name(info.name)
        if not name:
            return  # the destination itself: left as it is
        path = join(self.dest, name)
        parent = self.view.resolve(posixpath.dirname(path))
        loc = self.view.locate(join(parent.path, posixpath.basename(path)))
        self.view.check_writable(loc)
        if loc.mount_root and not loc.rel:
            if info.isdir():
                return
            raise Conflict(f"cannot overwrite directory {loc.path} with non-directory")
        dfd, leaf = self.view.parent_fd(loc, create=True)
        try:
            if loc.mount_root:  # a bind-mounted file: rewrite it in place
                self._rewrite(dfd, leaf, info, data, loc)
            elif self._make_room(dfd, leaf, info, loc):
                self._create(dfd, leaf, info, data, loc)
            if not info.islnk():
                self._meta(dfd, leaf, info, loc)
        finally:
            os.close(dfd)

    def finish(self) -> None:
        for loc, mtime in reversed(self.dir_times):
            try:
                fd = self.view.open(loc, _O_PATH_NOFOLLOW)
            except Exception:
                continue
            try:
                os.utime(proc_fd_path(fd), (mtime, mtime))
            finally:
                os.close(fd)
        self.dir_times.clear()

    # -- steps ------------------------------------------------------------------------

    def _make_room(self, dfd: int, leaf: str, info: tarfile.TarInfo, loc: Location) -> bool:
        """Remove what ``info`` replaces; False when an existing directory is kept."""
        try:
            st = os.stat(leaf, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return True
        if stat.S_ISDIR(st.st_mode):
            if info.isdir():
                return False
            raise Conflict(f"cannot overwrite directory {loc.path} with non-directory")
        if info.isdir():
            raise Conflict(f"cannot overwrite non-directory {loc.path} with directory")
        os.unlink(leaf, dir_fd=dfd)
        return True

    def _create(
        self, dfd: int, leaf: str, info: tarfile.TarInfo, data: Data | None, loc: Location
    ) -> None:
        if info.isdir():
            os.mkdir(leaf, 0o700, dir_fd=dfd)
        elif info.isreg():
            fd = os.open(leaf, _O_NEW_FILE, 0o600, dir_fd=dfd)
            try:
                _copy(data, fd, info.size)
            finally:
                os.close(fd)
        elif info.issym():
            os.symlink(info.linkname, leaf, dir_fd=dfd)
        elif info.islnk():
            self._link(dfd, leaf, info, loc)
        elif info.type in _NODES:
            kind = _NODES[info.type] or stat.S_IFIFO
            dev = os.makedev(info.devmajor, info.devminor) if kind != stat.S_IFIFO else 0
            os.mknod(leaf, kind | 0o600, dev, dir_fd=dfd)
        else:
            raise InvalidArgument(f"{info.name}: unsupported archive entry type {info.type!r}")

    def _link(self, dfd: int, leaf: str, info: tarfile.TarInfo, loc: Location) -> None:
        target = self.view.resolve(join(self.dest, member_name(info.linkname)), False)
        if target.base != loc.base or target.mount_root:
            raise InvalidArgument(f"{info.name}: hard link to {info.linkname} crosses a mount")
        tfd, tleaf = self.view.parent_fd(target)
        try:
            os.link(tleaf, leaf, src_dir_fd=tfd, dst_dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _rewrite(
        self, dfd: int, leaf: str, info: tarfile.TarInfo, data: Data | None, loc: Location
    ) -> None:
        if not info.isreg():
            raise Conflict(f"cannot replace the mounted file {loc.path}")
        fd = os.open(leaf, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            _copy(data, fd, info.size)
        finally:
            os.close(fd)

    def _meta(self, dfd: int, leaf: str, info: tarfile.TarInfo, loc: Location) -> None:
        uid, gid = (info.uid, info.gid) if self.owner.keep else (self.owner.uid, self.owner.gid)
        mtime = int(info.mtime)
        if info.issym():
            if uid >= 0 or gid >= 0:
                os.chown(leaf, uid, gid, dir_fd=dfd, follow_symlinks=False)
            os.utime(leaf, (mtime, mtime), dir_fd=dfd, follow_symlinks=False)
            return
        fd = os.open(leaf, _O_PATH_NOFOLLOW, dir_fd=dfd)
        try:
            path = proc_fd_path(fd)
            if uid >= 0 or gid >= 0:
                os.chown(path, uid, gid)
            os.chmod(path, info.mode & 0o7777)  # after chown, which clears setuid
            _set_xattrs(path, info)
            if info.isdir():
                self.dir_times.append((loc, mtime))
            else:
                os.utime(path, (mtime, mtime))
        finally:
            os.close(fd)


def _copy(data: Data | None, fd: int, size: int) -> None:
    left = size
    while data is not None and left > 0:
        chunk = data.read(min(_CHUNK, left))
        if not chunk:
            raise InvalidArgument("invalid tar archive: unexpected end of data")
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        left -= len(chunk)


def _set_xattrs(path: str, info: tarfile.TarInfo) -> None:
    for key, value in info.pax_headers.items():
        if not key.startswith(_PAX_XATTR):
            continue
        name = key[len(_PAX_XATTR) :]
        if name.startswith("trusted.overlay."):
            continue  # would let an archive forge whiteouts or redirects in the upper dir
        try:
            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"))
        except OSError:
            pass  # best effort, like Docker: not every filesystem takes every namespace
