"""Parent <-> container-init messages over a SOCK_SEQPACKET socketpair.

Each message is one JSON object with a ``type``. An ``error`` message from the child
carries the error kind and text so the parent can re-raise the same typed error.
"""

from __future__ import annotations

import _socket

from capsa import errors, fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class SyncSocket:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[SyncSocket, SyncSocket]:
        # _socket, not socket: the wrapper module costs milliseconds to import
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        return cls(a), cls(b)

    def send(self, type_: str, **fields: Any) -> None:
        """Send one message. A peer that is gone is not an error here: it died after
        queueing the error that says why, which the next ``recv`` raises."""
        fields["type"] = type_
        try:
            self.sock.send(fastjson.dumps(fields).encode())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def recv(self) -> dict[str, Any]:
        raw = self.sock.recv(65536)
        if not raw:
            raise errors.Internal("container init exited during setup")
        msg: dict[str, Any] = fastjson.loads(raw)
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
            self.send("error", kind=kind, message=message, detail=detail[-4000:])
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}".lower()
    return f"{type(exc).__name__}: {exc}"
