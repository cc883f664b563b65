"""Root filesystem tarballs: ``capsa import`` (tarball -> one-layer image) and ``export``.

``import_rootfs`` reads the tarball once, as a stream (it may be a pipe): the plain
bytes are hashed for the diff id while they are gzip-compressed into the content
store, whose writer hashes the compressed bytes for the blob digest.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import secrets
import stat
import tarfile
import zlib

from capsa.errors import InvalidArgument
from capsa.oci.image_spec import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    History,
    ImageConfig,
    Manifest,
    RootFS,
    dump,
)
from capsa.store.changes import apply_changes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from capsa.oci.image_spec import Platform
    from capsa.store.archive import LoadedImage
    from capsa.store.content import BlobWriter, ContentStore

CHUNK = 1 << 20
GZIP_LEVEL = 6
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def detect_compression(head: bytes) -> str:
    """``gzip``, ``zstd``, ``bzip2``, ``xz`` or ``none``, from a stream's first bytes."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return "none"


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: peeking without seeking (pipes)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_exact(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes; fewer only at end of stream (pipes return short reads)."""
    parts: list[bytes] = []
    while n > 0 and (chunk := stream.read(n)):
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def open_decompressed(stream: BinaryIO) -> tuple[str, BinaryIO]:
    """``(compression, plain stream)`` for a possibly compressed, possibly piped stream."""
    head = read_exact(stream, 6)
    kind = detect_compression(head)
    raw: BinaryIO = io.BufferedReader(_Prefixed(head, stream), CHUNK)
    if kind == "gzip":
        import gzip

        return kind, gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        from backports import zstd

        return kind, zstd.ZstdFile(raw)  # type: ignore[return-value]
    if kind == "bzip2":
        import bz2

        return kind, bz2.BZ2File(raw)  # type: ignore[return-value]
    if kind == "xz":
        import lzma

        return kind, lzma.LZMAFile(raw)  # type: ignore[return-value]
    return kind, raw


def read_chunk(stream: BinaryIO, kind: str, what: str, size: int = CHUNK) -> bytes:
    """Up to ``size`` decompressed bytes; corrupt input becomes InvalidArgument."""
    try:
        return read_exact(stream, size)
    except decompress_errors(kind) as e:
        raise InvalidArgument(f"{what}: invalid {kind} data: {e}") from None


def decompress_errors(kind: str) -> tuple[type[BaseException], ...]:
    """What a decompressor of ``kind`` raises on corrupt or truncated input."""
    if kind == "gzip":
        import gzip

        return (gzip.BadGzipFile, EOFError, zlib.error)
    if kind == "zstd":
        from backports import zstd

        return (zstd.ZstdError, EOFError)
    if kind == "bzip2":
        return (OSError, EOFError, ValueError)
    if kind == "xz":
        import lzma

        return (lzma.LZMAError, EOFError)
    return ()


def looks_like_tar(block: bytes) -> bool:
    """A ustar/GNU header, or the zero block of an empty archive."""
    if len(block) < 512:
        return False
    return block[257:262] == b"ustar" or block[:512] == bytes(512)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def import_rootfs(
    content: ContentStore,
    stream: BinaryIO,
    changes: list[str],
    platform: Platform,
    message: str = "",
) -> LoadedImage:
    """A one-layer image from a rootfs tarball (plain, gzip, zstd, bzip2 or xz)."""
    from capsa.store.archive import LoadedImage

    container_config = apply_changes(changes)  # bad --change fails before reading input
    diff_id, layer_digest, layer_size = store_gzip_layer(content, stream, "import")
    created = now_rfc3339()
    config = ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        created=created,
        config=container_config,
        rootfs=RootFS(diff_ids=[diff_id]),
        history=[History(created=created, created_by="capsa import", comment=message or None)],
        extra={"comment": message} if message else {},  # Docker's top-level .Comment
    )
    raw_config = dump(config)
    config_digest = content.put(raw_config)
    manifest = Manifest(
        media_type=OCI_MANIFEST,
        config=Descriptor(media_type=OCI_CONFIG, digest=config_digest, size=len(raw_config)),
        layers=[Descriptor(media_type=OCI_LAYER_GZIP, digest=layer_digest, size=layer_size)],
    )
    manifest_digest = content.put(dump(manifest))
    return LoadedImage(
        manifest_digest=manifest_digest,
        manifest_media_type=OCI_MANIFEST,
        manifest=manifest,
        config_digest=config_digest,
        config=config,
        names=[],
    )


def store_gzip_layer(content: ContentStore, stream: BinaryIO, what: str) -> tuple[str, str, int]:
    """Store a tar stream gzip-compressed; return (diff id, blob digest, blob size)."""
    kind, plain = open_decompressed(stream)
    first = read_chunk(plain, kind, what, 512)
    if not first:
        raise InvalidArgument(f"{what}: empty input")
    if not looks_like_tar(first):
        raise InvalidArgument(f"{what}: input is not a tar archive")
    diff = hashlib.sha256()
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # gzip framing, mtime 0
    with content.writer(key=f"{what}-{secrets.token_hex(8)}") as writer:
        try:
            chunk = first
            while chunk:
                diff.update(chunk)
                writer.write(compressor.compress(chunk))
                chunk = read_chunk(plain, kind, what)
            writer.write(compressor.flush())
            digest = writer.commit()
        except BaseException:
            discard(writer)
            raise
        return "sha256:" + diff.hexdigest(), digest, writer.offset


def discard(writer: BlobWriter) -> None:
    """Drop an ingest we will not commit (no resume for anonymous ingests)."""
    try:
        os.unlink(writer.path)
    except FileNotFoundError:
        pass


def export_rootfs(root_dir: str, out: BinaryIO, whiteouts: bool = False) -> None:
    """Write the tree at ``root_dir`` to ``out`` as a tar stream (``capsa export``).

    Owners are numeric; modes (setuid too), xattrs (PAX ``SCHILY.xattr``), hard links,
    symlinks (verbatim), devices and FIFOs are kept; sockets are skipped. Overlay
    whiteouts (char 0:0) and opaque directories are written as ``.wh.`` entries when
    ``whiteouts`` is true (an upper dir exported as a layer) and skipped otherwise.
    Nothing is followed out of the tree: directories are walked by file descriptor.
    """
    root_fd = os.open(root_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _TreeWriter(tar, whiteouts).walk(root_fd, "")
    finally:
        os.close(root_fd)


_OVERLAY_XATTR = "trusted.overlay."


class _TreeWriter:
    def __init__(self, tar: tarfile.TarFile, whiteouts: bool) -> None:
        self.tar = tar
        self.whiteouts = whiteouts
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) -> first path, for hard links

    def walk(self, dir_fd: int, prefix: str) -> None:
        with os.scandir(dir_fd) as entries:
            names = sorted(e.name for e in entries)
        for name in names:
            self.entry(dir_fd, name, prefix + name)

    def entry(self, dir_fd: int, name: str, path: str) -> None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return  # removed while we walk a live tree
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        if stat.S_ISCHR(mode) and st.st_rdev == 0:  # overlay whiteout
            if self.whiteouts:
                self.tar.addfile(_info(_whiteout_name(path), st, tarfile.REGTYPE))
            return
        xattrs = _xattrs(f"/proc/self/fd/{dir_fd}/{name}")
        opaque = xattrs.get("trusted.overlay.opaque") == b"y"
        info = _info(path, st, _tar_type(mode))
        info.pax_headers = {
            "SCHILY.xattr." + key: value.decode("utf-8", "surrogateescape")
            for key, value in sorted(xattrs.items())
            if not key.startswith(_OVERLAY_XATTR)
        }
        if stat.S_ISDIR(mode):
            self.directory(dir_fd, name, path, info, opaque)
        elif self.hard_link(st, path, info):
            self.tar.addfile(info)
        elif stat.S_ISREG(mode):
            self.regular(dir_fd, name, info)
        else:
            if stat.S_ISLNK(mode):
                info.linkname = os.readlink(name, dir_fd=dir_fd)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(info)

    def directory(
        self, dir_fd: int, name: str, path: str, info: tarfile.TarInfo, opaque: bool
    ) -> None:
        self.tar.addfile(info)
        if opaque and self.whiteouts:
            marker = tarfile.TarInfo(f"{path}/.wh..wh..opq")
            marker.mtime, marker.uid, marker.gid = info.mtime, info.uid, info.gid
            self.tar.addfile(marker)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        try:
            self.walk(fd, path + "/")
        finally:
            os.close(fd)

    def hard_link(self, st: os.stat_result, path: str, info: tarfile.TarInfo) -> bool:
        if st.st_nlink < 2:
            return False
        key = (st.st_dev, st.st_ino)
        first = self.links.setdefault(key, path)
        if first == path:
            return False
        info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
        return True

    def regular(self, dir_fd: int, name: str, info: tarfile.TarInfo) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            self.tar.addfile(info, _Exact(fd, info.size))
        finally:
            os.close(fd)


class _Exact:
    """Exactly ``size`` bytes of a file that may change while we read it (padded/cut)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        parts: list[bytes] = []
        got = 0
        while got < n and (chunk := os.read(self.fd, n - got)):
            parts.append(chunk)
            got += len(chunk)
        self.left -= n
        return b"".join(parts) + bytes(n - got)


def _tar_type(mode: int) -> bytes:
    if stat.S_ISDIR(mode):
        return tarfile.DIRTYPE
    if stat.S_ISLNK(mode):
        return tarfile.SYMTYPE
    if stat.S_ISCHR(mode):
        return tarfile.CHRTYPE
    if stat.S_ISBLK(mode):
        return tarfile.BLKTYPE
    if stat.S_ISFIFO(mode):
        return tarfile.FIFOTYPE
    return tarfile.REGTYPE


def _info(path: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    info.size = st.st_size if kind == tarfile.REGTYPE and stat.S_ISREG(st.st_mode) else 0
    return info


def _whiteout_name(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/.wh.{tail}" if head else f".wh.{tail}"


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
        return {n: os.getxattr(path, n, follow_symlinks=False) for n in names}
    except OSError:
        return {}  # no xattr support (or it vanished): nothing to keep
