"""Parent <-> container-init messages over a pair of pipes.

Each message is one JSON object with a ``type``, on a line of its own (the JSON
writer escapes newlines inside strings). An ``error`` message from the child carries
the error kind and text so the parent can re-raise the same typed error. Pipes rather
than a socketpair: ``_socket`` is the most expensive import left on ``capsa-runtime``'s
start-up path. The init's two stages share one writing end; a write of up to
``PIPE_BUF`` (4096) bytes is atomic, and an error message is kept under it, so their
messages cannot interleave.
"""

from __future__ import annotations

import os

from capsa import errors, fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class SyncChannel:
    """One end: messages come in on ``rfd`` and go out on ``wfd`` (both close-on-exec)."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self._pending = b""

    @classmethod
    def pair(cls) -> tuple[SyncChannel, SyncChannel]:
        to_first_r, to_first_w = os.pipe2(os.O_CLOEXEC)
        to_second_r, to_second_w = os.pipe2(os.O_CLOEXEC)
        return cls(to_first_r, to_second_w), cls(to_second_r, to_first_w)

    def send(self, type_: str, **fields: Any) -> None:
        """Send one message. A peer that is gone is not an error here: it died after
        queueing the error that says why, which the next ``recv`` raises."""
        fields["type"] = type_
        data = memoryview(fastjson.dumps(fields).encode() + b"\n")
        try:
            while data:
                data = data[os.write(self.wfd, data) :]
        except BrokenPipeError:
            pass

    def recv(self) -> dict[str, Any]:
        while b"\n" not in self._pending:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                raise errors.Internal("container init exited during setup")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        msg: dict[str, Any] = fastjson.loads(line)
        if msg.get("type") == "error":
            kind = getattr(errors, str(msg.get("kind")), errors.Internal)
            if not (isinstance(kind, type) and issubclass(kind, errors.CapsaError)):
                kind = errors.Internal
            err = kind(str(msg.get("message")))
            err.detail = str(msg.get("detail") or "")  # type: ignore[attr-defined]
            raise err
        return msg

    def expect(self, type_: str) -> dict[str, Any]:
        msg = self.recv()
        if msg.get("type") != type_:
            raise errors.Internal(f"container init sent {msg.get('type')!r}, expected {type_!r}")
        return msg

    def send_error(self, exc: BaseException) -> None:
        kind = type(exc).__name__ if isinstance(exc, errors.CapsaError) else "Internal"
        message = str(exc) if isinstance(exc, errors.CapsaError) else _describe(exc)
        try:
            import traceback  # after pivot_root this may not be importable

            detail = "".join(traceback.format_exception(exc)[-4:])
        except Exception:
            detail = ""
        try:
            # under PIPE_BUF with the JSON around it: one atomic write
            self.send("error", kind=kind, message=message[:1000], detail=detail[-2500:])
        except OSError:
            pass

    def close_reading(self) -> None:
        if self.rfd >= 0:
            os.close(self.rfd)
            self.rfd = -1

    def read_to_eof(self) -> bytes:
        """Whatever is left, raw, once the peer's writing ends are all closed."""
        data, self._pending = self._pending, b""
        while chunk := os.read(self.rfd, 4096):
            data += chunk
        return data

    def close(self) -> None:
        fds = (self.rfd, self.wfd)
        self.rfd = self.wfd = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}".lower()
    return f"{type(exc).__name__}: {exc}"
