"""Pipes and terminals read and written on the event loop (non-blocking fds)."""

from __future__ import annotations

import asyncio
import os

from capsa.engine.containers import attach as frames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.api.hijack import RawStream

CHUNK = 1 << 16


async def read_fd(fd: int) -> bytes:
    """What ``fd`` has (b"" at its end), waiting for it on the loop."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            pass
        except OSError:  # EIO: a terminal whose other side is gone
            return b""
        ready = loop.create_future()
        loop.add_reader(fd, ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_reader(fd)


async def write_fd(fd: int, data: bytes) -> bool:
    """Write all of ``data``; False once nobody reads ``fd``."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
            continue
        except BlockingIOError:
            pass
        except OSError:
            return False
        ready = loop.create_future()
        loop.add_writer(fd, ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_writer(fd)
    return True


async def pump_out(fd: int, kind: int, client: RawStream, framed: bool = True) -> None:
    """``fd``'s bytes to the client, as ``kind`` frames (or raw), until either ends."""
    os.set_blocking(fd, False)
    while True:
        data = await read_fd(fd)
        if not data or not await client.write(frames.frame(kind, data) if framed else data):
            return
