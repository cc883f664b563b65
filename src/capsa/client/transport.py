"""HTTP to a ``capsa system service`` over its unix socket (``http.client``: a fast
import, and a raw socket for the hijacked streams).

``call`` posts JSON and reads JSON; ``lines`` reads an NDJSON answer line by line;
``hijack`` sends a request asking to upgrade and hands over the socket once the
answer's headers are read (exactly them: what follows is the stream's).
"""

from __future__ import annotations

import http.client
import json
import socket

from capsa.client import codec
from capsa.errors import InvalidArgument, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def socket_path(host: str) -> str:
    """The socket path of ``unix://PATH`` (or a bare absolute path)."""
    if host.startswith("unix://"):
        path = host[len("unix://") :]
    elif host.startswith("/"):
        path = host
    else:
        scheme = host.partition("://")[0] if "://" in host else host
        raise InvalidArgument(f"unsupported host {scheme!r}: capsa --host takes unix://PATH")
    if not path:
        raise InvalidArgument("--host unix:// needs a socket path")
    return path


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = _connect(self.path, self.timeout)


def _connect(path: str, timeout: float | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if timeout is not None:
        sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise Unavailable(
            f"cannot connect to the capsa service at unix://{path}: {e.strerror or e}"
        ) from None
    return sock


class Transport:
    def __init__(self, path: str) -> None:
        self.path = path

    def request(
        self, method: str, url: str, body: Any = None, stream: bool = False
    ) -> http.client.HTTPResponse:
        """The answer to one request (a connection of its own); an error answer
        raises its kind."""
        conn = _UnixConnection(self.path)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, url, body=data, headers=headers)
            response = conn.getresponse()
        except OSError as e:
            conn.close()
            if isinstance(e, ConnectionError | http.client.HTTPException):
                raise Unavailable(f"the capsa service at unix://{self.path} went away") from None
            raise
        except http.client.HTTPException:
            conn.close()
            raise Unavailable(f"the capsa service at unix://{self.path} went away") from None
        if response.status >= 400:
            raise _answer_error(response)
        return response

    def call(self, url: str, body: Any) -> Any:
        """POST ``body``; the answer's JSON."""
        response = self.request("POST", url, body)
        try:
            return json.loads(response.read() or b"null")
        finally:
            response.close()

    def lines(self, url: str, body: Any) -> Iterator[Any]:
        """POST ``body``; the answer's NDJSON documents as they come."""
        response = self.request("POST", url, body)
        try:
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        except (OSError, http.client.HTTPException):
            raise Unavailable(f"the capsa service at unix://{self.path} went away") from None
        finally:
            response.close()

    def hijack(self, url: str, body: Any) -> tuple[socket.socket | None, Any]:
        """POST ``body`` asking for the connection: (the socket, None) once upgraded,
        or (None, the JSON answer) when the server answered without upgrading."""
        data = json.dumps(body).encode()
        sock = _connect(self.path)
        head = (
            f"POST {url} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
            f"Upgrade: tcp\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        try:
            sock.sendall(head + data)
            status, headers = _read_head(sock)
        except BaseException:
            sock.close()
            raise
        if status == 101:
            return sock, None
        try:
            body_bytes = _read_body(sock, headers)
        finally:
            sock.close()
        doc = json.loads(body_bytes or b"null") if body_bytes.strip() else None
        if status >= 400:
            raise answer_error(status, doc)
        return None, doc


def _answer_error(response: http.client.HTTPResponse) -> Exception:
    try:
        doc = json.loads(response.read() or b"null")
    except ValueError:
        doc = None
    finally:
        response.close()
    return answer_error(response.status, doc)


def answer_error(status: int, doc: Any) -> Exception:
    """The error kind an answer carries; an answer without one comes from a service
    that does not speak capsa's API (a Docker daemon's socket, an older capsa)."""
    if isinstance(doc, dict) and "kind" in doc:
        return codec.error_from(doc)
    message = doc.get("message") if isinstance(doc, dict) else None
    return Unavailable(
        f"the service does not speak capsa's API (/capsa/v1): it answered {status}"
        + (f" ({message})" if message else "")
    )


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """The status and headers, read byte by byte up to the blank line."""
    buf = b""
    while not buf.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise Unavailable("the capsa service closed the connection")
        buf += byte
        if len(buf) > 65536:
            raise Unavailable("the capsa service sent an oversized answer")
    lines = buf.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise Unavailable(f"not an HTTP answer: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _read_body(sock: socket.socket, headers: dict[str, str]) -> bytes:
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        want = int(length)
        buf = b""
        while len(buf) < want:
            chunk = sock.recv(want - len(buf))
            if not chunk:
                break
            buf += chunk
        return buf
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
