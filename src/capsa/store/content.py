"""Content-addressed blobs: ``<root>/content/blobs/sha256/<hex>``.

Blobs are verified on ingest: data goes to ``content/ingest/<key>``, is hashed as it
is written, and is renamed into place only when its digest (and size, if known)
match. A partial ingest file survives a crash so a download can resume where it
stopped (HTTP Range); an exclusive lock on it makes two writers of the same blob
wait for each other instead of writing twice. A corrupt or half-written blob is
therefore never visible under ``blobs/``. On a full disk the partial ingest is
deleted instead (``NoSpace``): it would hold the space it took.
"""

from __future__ import annotations

import fcntl
import os

from capsa.errors import InvalidArgument, NotFound
from capsa.oci.image_spec import validate_digest
from capsa.store.space import check_room, is_full_error, no_space

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType
    from typing import Any, BinaryIO

_CHUNK = 1 << 20


class DigestMismatch(InvalidArgument):
    """Data did not hash to the digest it was announced with."""


class BlobWriter:
    """Write one blob; ``commit`` verifies and publishes it. Use as a context manager.

    ``offset`` is how much a previous, interrupted ingest already holds (resume from
    there); ``exists`` is true when the blob was published meanwhile (by another
    writer we waited for), in which case nothing needs writing.
    """

    def __init__(self, store: ContentStore, key: str, expected: str | None, size: int | None):
        self.store = store
        self.expected = expected
        self.size = size
        self.path = os.path.join(store.ingest_dir, key)
        if not (expected is not None and store.has(expected)):
            check_room(store.data_root)  # a new blob must not eat the room kept for cleaning up
        os.makedirs(store.ingest_dir, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # a second writer of this blob waits here
        self.exists = expected is not None and store.has(expected)
        self._hash = _sha256()
        self.offset = 0 if self.exists else self._rehash()

    def _rehash(self) -> int:
        os.lseek(self._fd, 0, os.SEEK_SET)
        total = 0
        while chunk := os.read(self._fd, _CHUNK):
            self._hash.update(chunk)
            total += len(chunk)
        if self.size is not None and total > self.size:
            self.truncate()
            return 0
        return total

    def truncate(self) -> None:
        """Throw away what a previous attempt wrote (the server ignored our Range)."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = _sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        """Append ``data``. On a full disk the partial blob is thrown away (it would hold
        the space it took) and ``NoSpace`` raised."""
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as e:
            if not is_full_error(e):
                raise
            self._discard()
            raise no_space(self.store.data_root) from e
        self._hash.update(data)
        self.offset += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self) -> str:
        """Verify and publish; return the digest. Raises DigestMismatch on bad data."""
        if self.exists and self.expected:
            return self.expected
        digest = self.digest
        if self.size is not None and self.offset != self.size:
            self._discard()
            raise DigestMismatch(
                f"blob {self.expected or digest}: size {self.offset}, expected {self.size}"
            )
        if self.expected and digest != self.expected:
            self._discard()
            raise DigestMismatch(f"blob digest mismatch: expected {self.expected}, got {digest}")
        try:
            os.fsync(self._fd)
        except OSError as e:  # a file system that allocates late (NFS, quotas)
            if not is_full_error(e):
                raise
            self._discard()
            raise no_space(self.store.data_root) from e
        target = self.store.path(digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(self.path, target)
        os.chmod(target, 0o444)
        self.exists = True
        return digest

    def _discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ContentStore:
    def __init__(self, root: str) -> None:
        self.data_root = root
        self.root = os.path.join(root, "content")
        self.blobs_dir = os.path.join(self.root, "blobs")
        self.ingest_dir = os.path.join(self.root, "ingest")

    def path(self, digest: str) -> str:
        algo, _, hexpart = validate_digest(digest).partition(":")
        return os.path.join(self.blobs_dir, algo, hexpart)

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def writer(
        self, expected: str | None = None, size: int | None = None, key: str | None = None
    ) -> BlobWriter:
        """A writer for one blob. ``key`` names the ingest (default: the digest)."""
        if key is None:
            key = (expected or f"anon-{os.getpid()}-{id(self)}").replace(":", "-")
        return BlobWriter(self, key, expected, size)

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data``; return its digest (verified against ``expected``)."""
        digest = "sha256:" + _sha256(data).hexdigest()
        if expected and expected != digest:
            raise DigestMismatch(f"blob digest mismatch: expected {expected}, got {digest}")
        if self.has(digest):
            return digest
        with self.writer(digest, len(data)) as w:
            if not w.exists:
                w.truncate()
                w.write(data)
            return w.commit()

    def delete(self, digest: str) -> int:
        """Remove a blob; return the bytes freed (0 if it was not there)."""
        path = self.path(digest)
        try:
            size = os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return size

    def digests(self) -> Iterator[str]:
        for algo in ("sha256", "sha512"):
            try:
                names = os.listdir(os.path.join(self.blobs_dir, algo))
            except FileNotFoundError:
                continue
            for name in names:
                yield f"{algo}:{name}"

    def clean_ingest(self) -> int:
        """Remove partial ingests nobody holds (after crashes); return bytes freed."""
        freed = 0
        try:
            names = os.listdir(self.ingest_dir)
        except FileNotFoundError:
            return 0
        for name in names:
            path = os.path.join(self.ingest_dir, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            freed += os.fstat(fd).st_size
            os.unlink(path)
            os.close(fd)
        return freed


def _sha256(data: bytes = b"") -> Any:
    """``hashlib.sha256(data)``, imported on first use: loading OpenSSL costs a command
    that only reads the store (``images``) about 2 ms."""
    import hashlib

    return hashlib.sha256(data)
