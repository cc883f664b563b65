"""Atomic file writes: temp file, fsync, rename."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import BinaryIO


def write_atomic(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Readers see the old or the new content, never a mix. ``durable`` also survives a
    power loss (fsync); files rebuilt at every start (run state) do without."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class write_atomic_stream:
    """A file object whose content appears at ``path`` only if the block succeeds.

    A class rather than ``contextlib.contextmanager``: this module is on the
    runtime's start-up path, and ``contextlib`` (with ``typing``) costs milliseconds.
    """

    def __init__(self, path: str, mode: int = 0o644) -> None:
        self.path = path
        self.mode = mode
        self.tmp = f"{path}.tmp.{os.getpid()}"
        self.file: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        self.file = open(self.tmp, "wb")
        return self.file

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        f = self.file
        assert f is not None
        try:
            if exc_type is None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
                os.chmod(self.tmp, self.mode)
                os.rename(self.tmp, self.path)
                return
        except BaseException:
            f.close()
            os.unlink(self.tmp)
            raise
        f.close()
        os.unlink(self.tmp)
