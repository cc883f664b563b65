"""Layer blobs -> directories in overlayfs form, safely.

``open_layer`` decompresses a layer blob as a stream (gzip, zstd or plain tar, told
by media type or else by magic bytes). ``apply_layer`` reads the tar in one pass and
writes every entry itself rather than through ``tarfile``'s extraction, which drops
setuid bits and refuses the absolute symlinks images legitimately hold.

Every entry is resolved inside the destination (``capsa.linux.safepath``): ``..`` stops
at the layer root and symlinks, absolute or relative, are re-rooted, so no entry can
write outside it; a hard link must name an entry of the layer itself. Whiteouts take
overlayfs form: ``.wh.<name>`` becomes a 0:0 character device ``<name>`` and
``.wh..wh..opq`` the ``trusted.overlay.opaque=y`` xattr on its directory. Overlay's own
``trusted.overlay.*`` xattrs coming from a tar are dropped: only the unpacker sets them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import posixpath
import queue
import shutil
import stat
import sys
import tarfile
import threading
import zlib

from capsa.errors import CapsaError, InvalidArgument, NotFound, PermissionDenied, os_reason
from capsa.linux import safepath
from capsa.oci.image_spec import compression_of
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import ModuleType
    from typing import BinaryIO

    from capsa.oci.image_spec import Descriptor
    from capsa.store.content import ContentStore

_CHUNK = 1 << 20
_AHEAD = 4  # chunks decompressed ahead of the tar reader
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_OPAQUE_XATTR = "trusted.overlay.opaque"
_PAX_XATTR = "SCHILY.xattr."
_O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC

log = logging.getLogger(__name__)


@record(frozen=True)
class LayerStats:
    size: int  # bytes of the uncompressed tar
    diff_id: str  # sha256 of the uncompressed tar
    entries: int = 0
    warnings: tuple[str, ...] = field(default=())  # entries skipped (devices in a userns...)


def open_layer(
    content: ContentStore, layer: Descriptor, on_read: Callable[[int], None] | None = None
) -> BinaryIO:
    """The uncompressed tar stream of ``layer``; ``on_read(n)`` counts compressed bytes.

    Decompression runs a few chunks ahead in a helper thread (zlib and zstd release the
    GIL), so inflating overlaps with writing files; ``on_read`` is still called from
    the reading thread. Close the stream to stop the helper.
    """
    raw = content.open(layer.digest)
    try:
        kind = compression_of(layer.media_type)
        if kind == "none":
            kind = _sniff(raw)
        counting = _Counting(raw)
        source: BinaryIO = counting  # type: ignore[assignment]
        if kind == "gzip":
            import gzip

            inner: BinaryIO = gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[assignment]
        elif kind == "zstd":
            inner = _zstd().ZstdFile(source, mode="rb")
        else:
            inner = source
        stream = _LayerStream(inner, counting, f"layer {layer.digest}", on_read)
        return stream  # type: ignore[return-value]
    except BaseException:
        raw.close()
        raise


def apply_layer(tar_stream: BinaryIO, dest: str, parents: Sequence[str] = ()) -> LayerStats:
    """Unpack ``tar_stream`` into the (empty) directory ``dest`` in overlayfs form.

    ``parents`` are the directories of the layers below, highest first: a directory
    the tar implies without an entry of its own copies its mode and owner from there.
    """
    reader = _Hashing(tar_stream)
    stream: BinaryIO = reader  # type: ignore[assignment]
    writer = LayerWriter(dest, parents)
    try:
        with tarfile.open(
            fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape"
        ) as tar:
            for member in tar:
                writer.apply(member, tar)
        writer.finish()
        reader.drain()
    except tarfile.TarError as err:
        raise InvalidArgument(f"invalid layer tar: {err}") from err
    finally:
        writer.close()
    return LayerStats(
        reader.size, "sha256:" + reader.hash.hexdigest(), writer.entries, tuple(writer.warnings)
    )


def _sniff(raw: BinaryIO) -> str:
    head = raw.read(4)
    raw.seek(0)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def _zstd() -> ModuleType:
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


class _Counting:
    """Counts the bytes read from the compressed blob (progress)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.raw.close()


class _Hashing:
    """Hashes and counts the uncompressed tar as ``tarfile`` reads it."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Hash what follows the end-of-archive marker (padding is part of the diff id)."""
        while self.read(_CHUNK):
            pass


class _LayerStream(io.RawIOBase):
    """A decompressed layer read ahead by a helper thread; closes the blob with it."""

    def __init__(
        self,
        inner: BinaryIO,
        counting: _Counting,
        what: str,
        on_read: Callable[[int], None] | None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._counting = counting
        self._what = what
        self._on_read = on_read
        self._queue: queue.Queue[tuple[bytes, int] | BaseException] = queue.Queue(_AHEAD)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._produce, name="capsa-unpack", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        reported = 0
        try:
            while not self._stop.is_set():
                chunk = self._inner.read(_CHUNK)
                count = self._counting.count
                self._put((chunk, count - reported))
                reported = count
                if not chunk:
                    return
        except BaseException as err:
            self._put(self._corrupt(err))

    def _put(self, item: tuple[bytes, int] | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _corrupt(self, err: BaseException) -> BaseException:
        if isinstance(err, OSError | EOFError | zlib.error) or type(err).__name__ == "ZstdError":
            return InvalidArgument(f"{self._what}: corrupt compressed data: {err}")
        return err

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        if not self._buf and not self._eof:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            chunk, consumed = item
            if self._on_read is not None:
                self._on_read(consumed)
            self._eof = not chunk
            self._buf = memoryview(chunk)
        data = bytes(self._buf[:size])
        self._buf = self._buf[size:]
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            while self._thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.05)  # unblock the helper
            try:
                self._inner.close()
            finally:
                self._counting.close()
        super().close()


class LayerWriter:
    """Creates tar members under one root directory, each resolved inside it."""

    def __init__(self, dest: str, parents: Sequence[str] = ()) -> None:
        self.root_fd = safepath.open_root(dest)
        self.parents = list(parents)
        self.privileged = os.geteuid() == 0
        self.dirs: dict[str, tarfile.TarInfo] = {}  # attributes set once children exist
        self.entries = 0
        self.warnings: list[str] = []
        self._cached: tuple[str, int] | None = None  # the last parent directory's fd

    def close(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def apply(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        self.entries += 1
        path = _clean(member.name)
        parent, _, base = path.rpartition("/")
        try:
            if base.startswith(_WHITEOUT):
                self._whiteout(self._parent(parent), base, member)
            elif not path:
                if not member.isdir():
                    raise InvalidArgument(f"{member.name}: layer root must be a directory")
                self.dirs[""] = member
            else:
                self._entry(self._parent(parent), base, path, member, tar)
        except OSError as err:
            kind = PermissionDenied if err.errno in (errno.EPERM, errno.EACCES) else InvalidArgument
            raise kind(f"{member.name}: {os_reason(err)}") from err

    def finish(self) -> None:
        """Directory modes, owners and times, now that nothing is created below them."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        for path, member in self.dirs.items():
            try:
                fd = _open_in(self.root_fd, path, flags)
            except CapsaError:
                continue  # replaced by a later entry
            try:
                self._attrs(fd, member)
            finally:
                os.close(fd)

    def _entry(
        self, dir_fd: int, base: str, path: str, member: tarfile.TarInfo, tar: tarfile.TarFile
    ) -> None:
        if member.isdir():
            if not self._clear(dir_fd, base, keep_dir=True):
                os.mkdir(base, 0o700, dir_fd=dir_fd)
            self.dirs[path] = member
        elif member.islnk():
            self._hardlink(dir_fd, base, member)
        elif member.isreg():
            self._clear(dir_fd, base)
            self._file(dir_fd, base, member, tar)
        elif member.issym():
            self._clear(dir_fd, base)
            os.symlink(member.linkname, base, dir_fd=dir_fd)
            self._attrs(f"{safepath.proc_fd_path(dir_fd)}/{base}", member, follow=False)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._clear(dir_fd, base)
            self._node(dir_fd, base, member)
        else:
            self.warnings.append(f"{member.name}: entry type {member.type!r} skipped")

    def _parent(self, parent: str) -> int:
        """An O_PATH fd of the directory ``parent`` inside the root, created if missing."""
        if self._cached is not None and self._cached[0] == parent:
            return self._cached[1]
        try:
            fd = _open_in(self.root_fd, parent, _O_DIR)
        except NotFound:
            fd = self._make_parents(parent)
        if self._cached is not None:
            os.close(self._cached[1])
        self._cached = (parent, fd)  # entries only change their own name, never a parent
        return fd

    def _make_parents(self, parent: str) -> int:
        parts = parent.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            try:
                fd = _open_in(self.root_fd, prefix, _O_DIR)
            except NotFound:
                fd = safepath.mkdir_all(self.root_fd, prefix, 0o755)
                self._inherit(prefix, fd)
            if i == len(parts):
                return fd
            os.close(fd)
        raise AssertionError("unreachable")

    def _inherit(self, path: str, fd: int) -> None:
        """An implied directory takes the mode and owner it has in the layers below."""
        mode, uid, gid = 0o755, 0, 0
        for lower in self.parents:
            try:
                st = os.stat(safepath.secure_join(lower, path))
            except (OSError, CapsaError):
                continue
            if stat.S_ISDIR(st.st_mode):
                mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
                break
        target = safepath.proc_fd_path(fd)
        if self.privileged:
            os.chown(target, uid, gid)
        os.chmod(target, mode)

    def _clear(self, dir_fd: int, name: str, keep_dir: bool = False) -> bool:
        """Remove what ``name`` holds (of another type); True if a directory was kept."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dir_fd)
        elif keep_dir:
            return True
        else:
            shutil.rmtree(name, dir_fd=dir_fd)
        return False

    def _file(self, dir_fd: int, base: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(base, flags, 0o600, dir_fd=dir_fd)
        try:
            src = tar.extractfile(member)
            if src is not None:
                while chunk := src.read(_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            self._attrs(fd, member)
        finally:
            os.close(fd)

    def _node(self, dir_fd: int, base: str, member: tarfile.TarInfo) -> None:
        if member.isfifo():
            kind, dev = stat.S_IFIFO, 0
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            dev = os.makedev(member.devmajor, member.devminor)
        try:
            os.mknod(base, kind | 0o600, dev, dir_fd=dir_fd)
        except PermissionError:
            self.warnings.append(f"{member.name}: device node not permitted, skipped")
            log.warning("layer entry %s: device node not permitted, skipped", member.name)
            return
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            self._attrs(safepath.proc_fd_path(fd), member)
        finally:
            os.close(fd)

    def _hardlink(self, dir_fd: int, base: str, member: tarfile.TarInfo) -> None:
        target = _clean(member.linkname)
        tparent, _, tbase = target.rpartition("/")
        missing = InvalidArgument(
            f"{member.name}: hard link target {member.linkname} is not in the layer"
        )
        try:
            src_fd = _open_in(self.root_fd, tparent, _O_DIR)
        except (NotFound, InvalidArgument):
            raise missing from None
        try:
            try:
                src = os.stat(tbase or ".", dir_fd=src_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise missing from None
            if stat.S_ISDIR(src.st_mode):
                raise InvalidArgument(f"{member.name}: hard link to a directory")
            try:
                old = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
                if (old.st_dev, old.st_ino) == (src.st_dev, src.st_ino):
                    return  # already that file
            except FileNotFoundError:
                pass
            self._clear(dir_fd, base)
            os.link(tbase, base, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(src_fd)

    def _whiteout(self, dir_fd: int, base: str, member: tarfile.TarInfo) -> None:
        if base == _OPAQUE:
            try:
                os.setxattr(safepath.proc_fd_path(dir_fd), _OPAQUE_XATTR, b"y")
            except PermissionError as err:
                raise PermissionDenied(
                    f"{member.name}: cannot mark directory opaque: {os_reason(err)}"
                ) from None
            return
        name = base[len(_WHITEOUT) :]
        if name.startswith(_WHITEOUT):
            return  # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): meaningless here
        if name in ("", ".", ".."):
            raise InvalidArgument(f"{member.name}: invalid whiteout")
        self._clear(dir_fd, name)
        try:
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)
        except PermissionError as err:
            raise PermissionDenied(
                f"{member.name}: cannot create whiteout: {os_reason(err)}"
            ) from None
        if self.privileged:
            os.chown(name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)

    def _attrs(self, target: int | str, member: tarfile.TarInfo, follow: bool = True) -> None:
        """Owner, mode (after chown, which clears setuid), xattrs, then times."""
        kw = {} if isinstance(target, int) else {"follow_symlinks": follow}
        if self.privileged:
            try:
                os.chown(target, member.uid, member.gid, **kw)
            except OSError as err:
                if err.errno != errno.EINVAL:  # an id not mapped in this user namespace
                    raise
                self.warnings.append(f"{member.name}: owner {member.uid}:{member.gid} unmapped")
        if follow:
            os.chmod(target, member.mode & 0o7777)
        self._xattrs(target, member, kw)
        ns = int(member.mtime * 1_000_000_000)
        os.utime(target, ns=(ns, ns), follow_symlinks=kw.get("follow_symlinks", True))

    def _xattrs(self, target: int | str, member: tarfile.TarInfo, kw: dict[str, bool]) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_PAX_XATTR):
                continue
            name = key[len(_PAX_XATTR) :]
            if name.startswith("trusted.overlay.") or (
                name.startswith("trusted.") and not self.privileged
            ):
                continue
            try:
                os.setxattr(target, name, value.encode("utf-8", "surrogateescape"), **kw)
            except OSError as err:
                if err.errno not in (errno.ENOTSUP, errno.EPERM, errno.EACCES):
                    raise
                self.warnings.append(f"{member.name}: xattr {name} not set")


def _open_in(root_fd: int, path: str, flags: int) -> int:
    # mode 0: safepath keeps the mode when O_DIRECTORY's bit overlaps O_TMPFILE
    return safepath.open_in_root(root_fd, path, flags, 0)


def _clean(name: str) -> str:
    """The entry's path relative to the layer root; ``..`` stops at the root."""
    if "\0" in name:
        raise InvalidArgument(f"{name!r}: path contains a nul byte")
    return posixpath.normpath("/" + name).lstrip("/")
