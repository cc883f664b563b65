"""Atomic file writes: temp file, fsync, rename."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def write_atomic_stream(path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file object whose content appears at ``path`` only if the block succeeds."""
    tmp = f"{path}.tmp.{os.getpid()}"
    f = open(tmp, "wb")  # noqa: SIM115
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        f.close()
        os.unlink(tmp)
        raise
