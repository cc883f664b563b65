"""The frames of capsa's hijacked connections (``/capsa/v1/attach``, ``start``, ``exec``).

The monitor's attach frames (``capsa.engine.containers.attach``: ``[type:1][0:3]
[length:4 big-endian][payload]``), plus the control frames only the API adds: SIGNAL
(client -> exec: a signal number), RECORD (the started container's record, JSON),
READY (it runs: ``{"warnings": [...]}``) and FAILED (``{"kind", "message"}``).
"""

from __future__ import annotations

from capsa.engine.containers.attach import (
    ERROR,
    EXIT,
    HEADER_SIZE,
    HELLO,
    RESIZE,
    STDERR,
    STDIN,
    STDIN_CLOSE,
    STDOUT,
    FrameReader,
    frame,
)

SIGNAL = 14
RECORD = 20
READY = 21
FAILED = 22
CONTENT_TYPE = "application/vnd.capsa.frames"

__all__ = [
    "CONTENT_TYPE",
    "ERROR",
    "EXIT",
    "FAILED",
    "HEADER_SIZE",
    "HELLO",
    "READY",
    "RECORD",
    "RESIZE",
    "SIGNAL",
    "STDERR",
    "STDIN",
    "STDIN_CLOSE",
    "STDOUT",
    "FrameReader",
    "frame",
]


def read_frame(fd: int) -> tuple[int, bytes] | None:
    """One whole frame read from blocking ``fd`` (exactly its bytes); None at EOF."""
    header = _read_exactly(fd, HEADER_SIZE)
    if header is None:
        return None
    size = int.from_bytes(header[4:8], "big")
    payload = _read_exactly(fd, size) if size else b""
    if payload is None:
        return None
    return header[0], payload


def _read_exactly(fd: int, n: int) -> bytes | None:
    import os

    buf = b""
    while len(buf) < n:
        try:
            chunk = os.read(fd, n - len(buf))
        except InterruptedError:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf
