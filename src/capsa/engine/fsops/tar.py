"""Trees of a ``View`` to tar entries and back, for ``cp``, ``commit`` and tar streams.

``TreeReader`` walks a tree by file descriptor (nothing is followed; a child that is
a mount target is read from the mount) and yields ``(TarInfo, data)`` pairs.
``Extractor`` applies such pairs, or a tar stream's members, below a directory of a
``View``: each entry's parent is resolved inside the view, the entry itself is never
followed, and overlay xattrs are never written.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile

from capsa.engine.fsops.view import Location, View, join
from capsa.linux.safepath import proc_fd_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable
    from typing import IO, Protocol

    class Data(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...

    Entry = tuple[tarfile.TarInfo, Data | None]
    Entries = Generator[Entry, None, None]

_OVERLAY = "trusted.overlay."
_OPAQUE = "trusted.overlay.opaque"
_PAX_XATTR = "SCHILY.xattr."
_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class _Exact:
    """Exactly ``size`` bytes of an open file that may change while it is read."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        parts, got = [], 0
        while got < n and (chunk := os.read(self.fd, n - got)):
            parts.append(chunk)
            got += len(chunk)
        self.left -= n
        return b"".join(parts) + bytes(n - got)

    def close(self) -> None:
        os.close(self.fd)


class TreeReader:
    """Tar entries of a tree. ``whiteouts``: write overlay whiteouts and opaque
    directories as ``.wh.`` entries (an upper dir as a layer). ``skip(path, st)``
    leaves entries out (with what is below them)."""

    def __init__(
        self,
        view: View,
        whiteouts: bool = False,
        skip: Callable[[str, os.stat_result], bool] | None = None,
    ) -> None:
        self.view = view
        self.whiteouts = whiteouts
        self.skip = skip
        self.links: dict[tuple[int, int], str] = {}

    def entries(self, loc: Location, name: str) -> Entries:
        """``loc`` (never followed) archived as ``name``; ``""``: only what is below it."""
        fd = self.view.open(loc, _O_PATH_NOFOLLOW)
        yield from self._node(fd, loc.path, name)

    def _node(self, fd: int, path: str, name: str) -> Entries:
        """Entries of the object at O_PATH ``fd`` (consumed)."""
        try:
            st = os.fstat(fd)
            if stat.S_ISSOCK(st.st_mode) or (self.skip is not None and self.skip(path, st)):
                return
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                if self.whiteouts and name:
                    yield _whiteout(name, st), None
                return
            xattrs = {} if stat.S_ISLNK(st.st_mode) else _xattrs(fd)
            if name:
                info = _info(name, st, xattrs)
                if stat.S_ISDIR(st.st_mode) or not self._hard_link(st, info):
                    if stat.S_ISLNK(st.st_mode):
                        info.linkname = os.readlink("", dir_fd=fd)
                    data = self._data(fd, st)
                    try:
                        yield info, data
                    finally:
                        if data is not None:
                            data.close()
                else:
                    yield info, None
            if stat.S_ISDIR(st.st_mode):
                if self.whiteouts and name and xattrs.get(_OPAQUE) == b"y":
                    yield _marker(name, st), None
                yield from self._children(fd, path, name)
        finally:
            os.close(fd)

    def _children(self, fd: int, path: str, name: str) -> Entries:
        dfd = os.open(proc_fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with os.scandir(dfd) as it:
                names = sorted(e.name for e in it)
            for child in names:
                cpath = join(path, child)
                cname = f"{name}/{child}" if name else child
                if cpath in self.view.mounts:
                    cfd = self.view.open(self.view.locate(cpath), _O_PATH_NOFOLLOW)
                else:
                    try:
                        cfd = os.open(child, _O_PATH_NOFOLLOW, dir_fd=dfd)
                    except FileNotFoundError:
                        continue  # removed while we walk a live tree
                yield from self._node(cfd, cpath, cname)
        finally:
            os.close(dfd)

    def _hard_link(self, st: os.stat_result, info: tarfile.TarInfo) -> bool:
        if st.st_nlink < 2:
            return False
        first = self.links.setdefault((st.st_dev, st.st_ino), info.name)
        if first == info.name:
            return False
        info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
        return True

    @staticmethod
    def _data(fd: int, st: os.stat_result) -> _Exact | None:
        if not stat.S_ISREG(st.st_mode):
            return None
        return _Exact(os.open(proc_fd_path(fd), os.O_RDONLY | os.O_CLOEXEC), st.st_size)


def _info(name: str, st: os.stat_result, xattrs: dict[str, bytes]) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    mode = st.st_mode
    info.type = _tar_type(mode)
    info.mode = stat.S_IMODE(mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    info.size = st.st_size if stat.S_ISREG(mode) else 0
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    info.pax_headers = {
        _PAX_XATTR + k: v.decode("utf-8", "surrogateescape")
        for k, v in sorted(xattrs.items())
        if not k.startswith(_OVERLAY)
    }
    return info


def _tar_type(mode: int) -> bytes:
    for test, kind in (
        (stat.S_ISDIR, tarfile.DIRTYPE),
        (stat.S_ISLNK, tarfile.SYMTYPE),
        (stat.S_ISCHR, tarfile.CHRTYPE),
        (stat.S_ISBLK, tarfile.BLKTYPE),
        (stat.S_ISFIFO, tarfile.FIFOTYPE),
    ):
        if test(mode):
            return kind
    return tarfile.REGTYPE


def _whiteout(name: str, st: os.stat_result) -> tarfile.TarInfo:
    head, tail = posixpath.split(name)
    info = tarfile.TarInfo(join(head, ".wh." + tail))
    info.mtime, info.mode = int(st.st_mtime), 0o644
    return info


def _marker(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(f"{name}/.wh..wh..opq")
    info.mtime, info.mode, info.uid, info.gid = int(st.st_mtime), 0o644, st.st_uid, st.st_gid
    return info


def _xattrs(fd: int) -> dict[str, bytes]:
    path = proc_fd_path(fd)
    try:
        return {n: os.getxattr(path, n) for n in os.listxattr(path)}
    except OSError:
        return {}


def write_tar(entries: Iterable[Entry], out: IO[bytes]) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, data)
