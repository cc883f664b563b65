"""Attach sessions: a container's stdio relayed onto a hijacked connection.

``docker run`` attaches before it starts the container, so that nothing the program
writes is missed: an attach to a container that is not running yet is held here until
``start`` launches the container with the first held attach greeting the monitor (the
monitor starts the program once it is greeted); later ones connect once it runs.

Without a terminal the client gets Docker's multiplexed frames, which are the
monitor's own frames for stdout and stderr; with one, the bytes as they come.
"""

from __future__ import annotations

import asyncio
import socket

from capsa.engine.containers import attach as frames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.api.engines import Engines
    from capsa.api.hijack import RawStream
    from capsa.engine.containers.attach import AttachStream

_CHUNK = 1 << 16


class Wants:
    def __init__(self, stdin: bool, stdout: bool, stderr: bool, tty: bool, keys: bytes) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.tty = tty
        self.detach_keys = keys


class Held:
    """An attach waiting for its container to start."""

    def __init__(self, wants: Wants) -> None:
        self.wants = wants
        self.stream: asyncio.Future[AttachStream] = asyncio.get_running_loop().create_future()
        self.greeted = asyncio.Event()  # set by the relay: the monitor may start the program
        self.running = asyncio.Event()  # set by start: the program runs, its stdin is open


class Attaching:
    """The attaches held for containers not yet started, by container id."""

    def __init__(self) -> None:
        self.held: dict[str, list[Held]] = {}

    def hold(self, container_id: str, wants: Wants) -> Held:
        held = Held(wants)
        self.held.setdefault(container_id, []).append(held)
        return held

    def release(self, container_id: str, held: Held) -> None:
        waiting = self.held.get(container_id, [])
        if held in waiting:
            waiting.remove(held)
        if not waiting:
            self.held.pop(container_id, None)

    async def start(self, engines: Engines, container_id: str) -> list[str]:
        """Start the container; the held attaches get its stdio. The runtime's warnings
        come back (what it could not enforce)."""
        waiting = [h for h in self.held.pop(container_id, []) if not h.stream.done()]
        if not waiting:
            _, launch = await engines.call(lambda e: e.containers.start(container_id))
            return list(getattr(launch, "warnings", None) or [])
        from capsa.engine.containers.attach import AttachStream

        try:
            _, launch = await engines.call(
                lambda e: e.containers.start(container_id, wait_attach=True)
            )
        except BaseException as e:
            for held in waiting:
                held.stream.set_exception(e)
            raise
        first, rest = waiting[0], waiting[1:]
        if launch is None:  # it was running already: everybody connects
            rest = waiting
        else:
            first.stream.set_result(AttachStream(launch.connect()))
            await first.greeted.wait()  # the monitor starts the program once greeted
            try:
                await engines.run(launch.wait_ready)
            except BaseException as e:
                for held in rest:
                    held.stream.set_exception(e)
                raise
            finally:
                first.running.set()  # its stdin may flow now (or its error comes)
        for held in rest:
            try:
                stream = await engines.call(lambda e: e.containers.attach(container_id))
            except Exception as e:  # it exited already
                held.stream.set_exception(e)
            else:
                held.running.set()
                held.stream.set_result(stream)
        return list(getattr(launch, "warnings", None) or [])


async def relay(
    client: RawStream, stream: AttachStream, wants: Wants, held: Held | None = None
) -> int | None:
    """Greet the monitor, then relay until the container ends (its exit code), the
    client leaves or detaches (None). A ``held`` attach passes stdin on once the
    program runs (the monitor reads only the greeting before)."""
    sock = socket.socket(fileno=stream.detach())
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    writer.write(frames.hello(wants.stdin, wants.stdout, wants.stderr))
    try:
        await writer.drain()
    except OSError:  # the monitor is gone already
        pass
    if held is not None:
        held.greeted.set()
    inbound = asyncio.ensure_future(
        _client_to_container(client, writer, wants, held.running if held else None)
    )
    outbound = asyncio.ensure_future(_container_to_client(reader, client, wants))
    lost = asyncio.ensure_future(client.lost.wait())
    try:
        done, _ = await asyncio.wait({outbound, lost, inbound}, return_when=asyncio.FIRST_COMPLETED)
        while inbound in done and not inbound.result() and outbound not in done:
            # stdin ended (not a detach): keep relaying the output
            done, _ = await asyncio.wait({outbound, lost}, return_when=asyncio.FIRST_COMPLETED)
        return outbound.result() if outbound in done else None
    finally:
        for task in (inbound, outbound, lost):
            task.cancel()
        writer.close()
        client.close()


async def _client_to_container(
    client: RawStream, writer: asyncio.StreamWriter, wants: Wants, running: asyncio.Event | None
) -> bool:
    """Pass the client's bytes on as stdin; True on a detach, False at its end (or the
    monitor's)."""
    if running is not None:
        await running.wait()
    try:
        return await _pass_stdin(client, writer, wants)
    except OSError:  # the monitor is gone: its output side says how it ended
        return False


async def _pass_stdin(client: RawStream, writer: asyncio.StreamWriter, wants: Wants) -> bool:
    keys = wants.detach_keys if wants.tty else b""
    pending = b""
    while True:
        data = await client.read()
        if not data:
            if wants.stdin:
                writer.write(frames.frame(frames.STDIN_CLOSE, b""))
                await writer.drain()
            return False
        if not wants.stdin:
            continue
        if keys:
            data = pending + data
            if keys in data:
                before = data[: data.index(keys)]
                if before:
                    writer.write(frames.frame(frames.STDIN, before))
                return True
            keep = _partial(data, keys)
            pending, data = data[len(data) - keep :], data[: len(data) - keep]
        if data:
            writer.write(frames.frame(frames.STDIN, data))
            await writer.drain()


def _partial(data: bytes, keys: bytes) -> int:
    """How many bytes at the end of ``data`` begin ``keys``."""
    for n in range(min(len(keys) - 1, len(data)), 0, -1):
        if data.endswith(keys[:n]):
            return n
    return 0


async def _container_to_client(
    reader: asyncio.StreamReader, client: RawStream, wants: Wants
) -> int | None:
    parser = frames.FrameReader()
    code: int | None = None
    while True:
        try:
            data = await reader.read(_CHUNK)
        except OSError:  # the monitor reset the connection: it is gone
            data = b""
        if not data:
            return code
        for kind, payload in parser.feed(data):
            if kind in (frames.STDOUT, frames.STDERR):
                out = payload if wants.tty else frames.frame(kind, payload)
                if not await client.write(out):
                    return None
            elif kind == frames.EXIT:
                code = int(_exit_code(payload))


def _exit_code(payload: bytes) -> int:
    from capsa.engine.containers.attach import AttachStream

    return AttachStream.exit_code(payload)
