"""Hijacked connections: after the response headers, raw bytes both ways.

Docker's attach and exec-start answer ``101 UPGRADED`` (or 200 to clients that did
not ask to upgrade) and then the connection carries the container's stdio. The
client may half-close (``shutdown(SHUT_WR)`` after its stdin ends): that is the end of
the container's stdin, and the output keeps flowing until the process exits.

aiohttp closes a connection on EOF, so once the headers are out the transport gets
this module's protocol, which keeps it open for writing.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

RAW = "application/vnd.docker.raw-stream"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"

_HIGH_WATER = 1 << 20


class _Response(web.StreamResponse):
    """A response whose body is not HTTP's (no length, no chunking)."""

    _length_check = False


class _Tail:
    """Takes what aiohttp read past the headers (``set_parser`` hands it over)."""

    def __init__(self) -> None:
        self.data = b""

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.data += data
        return False, b""

    def feed_eof(self) -> None:
        pass


class RawStream(asyncio.Protocol):
    """The client's connection once hijacked: ``read`` (b"" at its EOF), ``write``,
    ``close``."""

    def __init__(self, transport: asyncio.Transport, tail: bytes) -> None:
        self.transport = transport
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._buffered = 0
        self._reading_paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.lost = asyncio.Event()
        if tail:
            self._push(tail)

    # -- asyncio.Protocol ------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._push(data)

    def eof_received(self) -> bool:
        self._chunks.put_nowait(b"")
        return True  # keep the transport open: the output still goes out

    def connection_lost(self, exc: Exception | None) -> None:
        self._chunks.put_nowait(b"")
        self._can_write.set()
        self.lost.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- the handler's side ----------------------------------------------------
    def _push(self, data: bytes) -> None:
        self._chunks.put_nowait(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    async def read(self) -> bytes:
        data = await self._chunks.get()
        self._buffered -= len(data)
        if self._reading_paused and self._buffered < _HIGH_WATER // 2:
            self._reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> bool:
        """Send ``data``; False once the client is gone."""
        if self.lost.is_set() or self.transport.is_closing():
            return False
        self.transport.write(data)
        await self._can_write.wait()
        return not self.lost.is_set()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def wants_upgrade(request: web.Request) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return "upgrade" in tokens and bool(request.headers.get("Upgrade"))


async def hijack(request: web.Request, content_type: str) -> tuple[web.StreamResponse, RawStream]:
    """Answer ``request`` with the stream's headers and take its connection over."""
    upgrade = wants_upgrade(request)
    response = _Response(status=101 if upgrade else 200)
    response.headers["Content-Type"] = content_type
    if upgrade:
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    response.force_close()
    await response.prepare(request)
    await response.write(b"")  # the headers go out now, before the stream
    protocol = request.protocol
    transport = request.transport
    assert transport is not None and isinstance(transport, asyncio.Transport)
    tail = _Tail()
    if upgrade:
        protocol.set_parser(tail)  # type: ignore[arg-type]
    stream = RawStream(transport, tail.data)
    transport.set_protocol(stream)
    return response, stream
