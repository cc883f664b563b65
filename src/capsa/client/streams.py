"""The remote engine's I/O verbs: attach, start with an attach, exec, and streamed bodies.

Each hijacked connection carries the frames of ``capsa.client.frames``. The objects
returned have the shape of the local engine's: an ``AttachStream`` on the connection's
fd, a launch whose ``connect`` gives that fd and whose ``wait_ready`` reads the
service's READY frame, an exec session whose ``wait`` pumps the caller's fds (with a
terminal: a ``master`` fd the frontend copies its terminal to, as with a local pty).
"""

from __future__ import annotations

import json
import os
import socket
import threading

from capsa.client import codec, frames
from capsa.errors import Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from capsa.client.transport import Transport
    from capsa.engine.containers.attach import AttachStream
    from capsa.engine.containers.types import ContainerRecord, ExecSpec, ExecStdio

PREFIX = "/capsa/v1"


def _record(doc: Any) -> ContainerRecord:
    from capsa.engine.containers.types import ContainerRecord

    rec: ContainerRecord = codec.decode(ContainerRecord, doc, "record")
    return rec


def attach(transport: Transport, text: str) -> AttachStream:
    from capsa.engine.containers.attach import AttachStream

    sock, _ = transport.hijack(PREFIX + "/attach", {"text": text})
    if sock is None:
        raise Unavailable("the capsa service did not hand over the attach connection")
    return AttachStream(sock.detach())


class Started:
    """A container started without an attach: what the runtime warned about."""

    warnings: list[str]

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings

    def connect(self, timeout: float = 30.0) -> int:
        raise Unavailable("this start was not made to attach")

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        return {"warnings": self.warnings}


class RemoteLaunch:
    """A start through the service that waits for our greeting: ``connect`` gives the
    connection (greet the monitor through it), ``wait_ready`` reads whether the
    container started."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.warnings: list[str] = []

    def connect(self, timeout: float = 30.0) -> int:
        return self.fd  # the caller's now (its AttachStream closes it)

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        got = frames.read_frame(self.fd)
        if got is None:
            raise Unavailable("the capsa service closed the connection while starting")
        kind, payload = got
        doc = json.loads(payload or b"{}")
        if kind == frames.FAILED:
            raise codec.error_from(doc)
        if kind != frames.READY:
            raise Unavailable(f"unexpected frame {kind} from the capsa service")
        self.warnings = [str(w) for w in doc.get("warnings") or []]
        return dict(doc)


def start(
    transport: Transport, text: str, wait_attach: bool
) -> tuple[ContainerRecord, RemoteLaunch | Started | None]:
    body = {"text": text, "wait_attach": wait_attach}
    if not wait_attach:
        doc = transport.call(PREFIX + "/start", body)
        launch = Started(list(doc.get("warnings") or [])) if doc.get("launched") else None
        return _record(doc.get("record")), launch
    sock, doc = transport.hijack(PREFIX + "/start", body)
    if sock is None:  # it was running already
        return _record((doc or {}).get("record")), None
    fd = sock.detach()
    got = frames.read_frame(fd)
    if got is None or got[0] != frames.RECORD:
        os.close(fd)
        raise Unavailable("the capsa service did not say what it started")
    return _record(json.loads(got[1])), RemoteLaunch(fd)


# -- exec ------------------------------------------------------------------------------


def exec_(transport: Transport, text: str, spec: ExecSpec, stdio: ExecStdio) -> RemoteExec | None:
    body = {
        "text": text,
        "spec": codec.encode(spec),
        "rows": stdio.rows,
        "cols": stdio.cols,
    }
    sock, _ = transport.hijack(PREFIX + "/exec", body)
    if sock is None:  # detached
        return None
    return RemoteExec(sock, spec, stdio)


class RemoteExec:
    """An exec in the service's container, its stdio framed on one connection."""

    def __init__(self, sock: socket.socket, spec: ExecSpec, stdio: ExecStdio) -> None:
        self.sock = sock
        self.stdio = stdio
        self.code = 255
        self.master = -1
        self._lock = threading.Lock()
        self._pump: threading.Thread | None = None
        self._slave = -1
        if spec.tty:
            # a local pty in raw mode stands for the exec's: the frontend copies its
            # terminal to the master and resizes it; the size goes on when it changes
            import tty

            self.master, self._slave = os.openpty()
            tty.setraw(self._slave)
            if stdio.rows and stdio.cols:
                from capsa.ptyio import set_winsize

                set_winsize(self.master, stdio.rows, stdio.cols)
            self._pump = threading.Thread(target=self._pump_terminal, daemon=True)
            self._pump.start()
        elif spec.interactive and stdio.stdin >= 0:
            threading.Thread(target=self._pump_stdin, daemon=True).start()

    def _send(self, data: bytes) -> None:
        with self._lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def signal(self, signum: int) -> None:
        self._send(frames.frame(frames.SIGNAL, str(signum).encode()))

    def resize(self, rows: int, cols: int) -> None:
        self._send(frames.frame(frames.RESIZE, f"{rows} {cols}".encode()))

    def wait(self) -> int:
        if self._pump is not None:
            self._pump.join()
            return self.code
        reader = frames.FrameReader()
        try:
            while True:
                data = _recv(self.sock)
                if not data:
                    return self.code
                for kind, payload in reader.feed(data):
                    if kind == frames.STDOUT:
                        _write_all(self.stdio.stdout, payload)
                    elif kind == frames.STDERR:
                        _write_all(self.stdio.stderr, payload)
                    elif kind == frames.EXIT:
                        self.code = int(json.loads(payload)["exit_code"])
                        return self.code
        finally:
            self.sock.close()

    def _pump_stdin(self) -> None:
        while True:
            try:
                data = os.read(self.stdio.stdin, 1 << 16)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                self._send(frames.frame(frames.STDIN_CLOSE, b""))
                return
            self._send(frames.frame(frames.STDIN, data))

    def _pump_terminal(self) -> None:
        """Our pty's slave <-> the connection, until the exec's exit."""
        import select

        slave, reader = self._slave, frames.FrameReader()
        size = _size(slave)
        watched: list[Any] = [self.sock, slave]
        try:
            while True:
                ready, _, _ = select.select(watched, [], [], 0.25)
                now = _size(slave)
                if now != size and now is not None:
                    size = now
                    self.resize(*now)
                if slave in ready:
                    try:
                        data = os.read(slave, 1 << 16)
                    except OSError:
                        data = b""
                    if data:
                        self._send(frames.frame(frames.STDIN, data))
                    else:
                        watched.remove(slave)
                if self.sock in ready:
                    data = _recv(self.sock)
                    if not data:
                        return
                    for kind, payload in reader.feed(data):
                        if kind in (frames.STDOUT, frames.STDERR):
                            _write_all(slave, payload)
                        elif kind == frames.EXIT:
                            self.code = int(json.loads(payload)["exit_code"])
                            return
        except OSError:
            return
        finally:
            os.close(slave)  # the frontend's copy reads what is left, then the end
            self.sock.close()


def _size(fd: int) -> tuple[int, int] | None:
    from capsa.ptyio import get_winsize

    try:
        return get_winsize(fd)
    except OSError:
        return None


def _recv(sock: socket.socket) -> bytes:
    while True:
        try:
            return sock.recv(1 << 16)
        except InterruptedError:
            continue
        except OSError:
            return b""


def _write_all(fd: int, data: bytes) -> None:
    if fd < 0:
        return
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError:
            return


# -- streamed bodies ---------------------------------------------------------------------


def download(transport: Transport, path: str, body: dict[str, Any], out: BinaryIO) -> None:
    """POST ``body``; copy the answer's bytes to ``out`` (an answer cut short raises)."""
    import http.client

    response = transport.request("POST", PREFIX + path, body)
    try:
        while True:
            chunk = response.read1(1 << 16)
            if not chunk:
                break
            out.write(chunk)
        out.flush()
    except (http.client.IncompleteRead, OSError):
        raise Unavailable("the capsa service cut the stream short (see its log)") from None
    finally:
        response.close()


def upload(transport: Transport, path: str, args: dict[str, Any], stream: BinaryIO) -> Any:
    """PUT ``stream`` as the body (chunked), ``args`` as JSON in a header; the answer's
    ``result``."""
    from capsa.client.transport import _answer_error, _UnixConnection

    conn = _UnixConnection(transport.path)
    headers = {"Content-Type": "application/x-tar", "X-Capsa-Args": json.dumps(args)}
    try:
        conn.request(
            "PUT", PREFIX + path, body=_chunks(stream), headers=headers, encode_chunked=True
        )
        response = conn.getresponse()
    except OSError:
        conn.close()
        raise Unavailable(f"the capsa service at unix://{transport.path} went away") from None
    if response.status >= 400:
        raise _answer_error(response)
    try:
        return json.loads(response.read() or b"null").get("result")
    finally:
        response.close()


def _chunks(stream: BinaryIO) -> Any:
    while True:
        data = stream.read(1 << 16)
        if not data:
            return
        yield data
