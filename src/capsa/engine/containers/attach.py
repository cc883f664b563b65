"""The monitor's attach socket: framed stdio between a container and its clients.

Frames are ``[type:1][0:3][length:4 big-endian][payload]``, Docker's stream format
extended with control types, in both directions:

- monitor -> client: STDOUT, STDERR (a terminal's output is all STDOUT), EXIT (JSON
  ``{"exit_code": N}``, then the monitor closes), ERROR (one-line message).
- client -> monitor: first a HELLO (JSON: which streams it wants), then STDIN data,
  STDIN_CLOSE, RESIZE (``"rows cols"``).
"""

from __future__ import annotations

import json
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.service import ContainerService
    from capsa.engine.containers.types import ContainerRecord

STDIN, STDOUT, STDERR = 0, 1, 2
EXIT, ERROR, HELLO, STDIN_CLOSE, RESIZE = 9, 10, 11, 12, 13

_HEADER = struct.Struct(">BxxxI")
HEADER_SIZE = _HEADER.size


def frame(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Incremental parser: feed bytes, get complete (type, payload) frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def midframe(self) -> bool:
        """Part of a frame read, the rest still to come."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= HEADER_SIZE:
            kind, size = _HEADER.unpack_from(self._buf)
            if len(self._buf) < HEADER_SIZE + size:
                break
            out.append((kind, bytes(self._buf[HEADER_SIZE : HEADER_SIZE + size])))
            del self._buf[: HEADER_SIZE + size]
        return out


def hello(
    stdin: bool, stdout: bool = True, stderr: bool = True, size: tuple[int, int] | None = None
) -> bytes:
    """The first frame a client sends; ``size`` is its terminal's (rows, cols)."""
    doc: dict[str, object] = {"stdin": stdin, "stdout": stdout, "stderr": stderr}
    if size:
        doc["size"] = list(size)
    return frame(HELLO, json.dumps(doc).encode())


def set_size(master: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def exit_frame(code: int) -> bytes:
    return frame(EXIT, json.dumps({"exit_code": code}).encode())


def _short(path: str) -> tuple[str, int]:
    """A path short enough for sun_path (108 bytes): through /proc/self/fd of its dir."""
    import os

    if len(path.encode()) < 100:
        return path, -1
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{os.path.basename(path)}", fd


def bind_unix(sock: object, path: str) -> None:
    import os

    short, fd = _short(path)
    try:
        sock.bind(short)  # type: ignore[attr-defined]
    finally:
        if fd >= 0:
            os.close(fd)


def connect_unix(sock: object, path: str) -> None:
    import os

    short, fd = _short(path)
    try:
        sock.connect(short)  # type: ignore[attr-defined]
    finally:
        if fd >= 0:
            os.close(fd)


def connect_client(service: ContainerService, rec: ContainerRecord, event: bool = True) -> int:
    """A client connection to the running container's attach socket (its fd), and the
    ``attach`` event Docker emits for it (not for a mere resize: ``event=False``)."""
    import socket

    from capsa.errors import InvalidArgument

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connect_unix(sock, service.ctx.paths(rec.id).attach_socket)
    except OSError as e:
        sock.close()
        raise InvalidArgument(f"cannot attach to {rec.name}: {e.strerror}") from None
    if event:
        emit_attach(service, rec)
    return sock.detach()


def emit_attach(service: ContainerService, rec: ContainerRecord) -> None:
    attrs = {"name": rec.name, "image": rec.image_name}
    service.ctx.events.emit("container", "attach", rec.id, attrs)


class AttachStream:
    """A client's connection to a container's stdio, for a frontend to pump: the CLI
    onto its terminal, the API server onto a hijacked connection.

    ``fd`` is a stream socket: read it and ``feed`` what arrives to get frames
    (``STDOUT``, ``STDERR``, then ``EXIT`` with the exit code, or ``ERROR``); say
    ``hello`` first, then ``send`` input, ``close_stdin`` and ``resize``.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._reader = FrameReader()
        # what is on its way to the monitor: with a non-blocking fd the caller pumps it
        # (``flush`` when the fd has room), so that it never blocks writing input while
        # the monitor blocks writing it output; with a blocking fd each write completes
        self.outgoing = bytearray()

    def hello(
        self,
        stdin: bool,
        stdout: bool = True,
        stderr: bool = True,
        size: tuple[int, int] | None = None,
    ) -> None:
        self._write(hello(stdin, stdout, stderr, size))

    def send(self, data: bytes) -> None:
        self._write(frame(STDIN, data))

    def close_stdin(self) -> None:
        self._write(frame(STDIN_CLOSE, b""))

    def resize(self, rows: int, cols: int) -> None:
        self._write(frame(RESIZE, f"{rows} {cols}".encode()))

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        return self._reader.feed(data)

    @staticmethod
    def exit_code(payload: bytes) -> int:
        """The code an ``EXIT`` frame carries."""
        return int(json.loads(payload)["exit_code"])

    def detach(self) -> int:
        """The fd, now the caller's to close."""
        fd, self.fd = self.fd, -1
        return fd

    def close(self) -> None:
        import os

        if self.fd >= 0:
            self._drain()
            os.close(self.fd)
            self.fd = -1

    def _write(self, data: bytes) -> None:
        self.outgoing += data
        self.flush()

    def flush(self) -> None:
        """Write what the connection takes now (all of it, on a blocking fd)."""
        import os

        while self.outgoing and self.fd >= 0:
            try:
                written = os.write(self.fd, self.outgoing)
            except BlockingIOError:
                return
            except OSError:  # the monitor is gone: its end is on its way
                self.outgoing.clear()
                return
            del self.outgoing[:written]

    def _drain(self, timeout: float = 5.0) -> None:
        import select
        import time

        deadline = time.monotonic() + timeout
        while self.outgoing and self.fd >= 0 and time.monotonic() < deadline:
            select.select([], [self.fd], [], max(0.0, deadline - time.monotonic()))
            self.flush()
