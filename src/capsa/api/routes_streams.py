"""A container's streams: attach (hijacked and websocket), logs, stats, resize."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from capsa.api import params
from capsa.api.attaching import Attaching, Wants, relay
from capsa.api.hijack import MULTIPLEXED, RAW, hijack
from capsa.api.server import engines
from capsa.engine.containers import attach as frames
from capsa.errors import Conflict, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from capsa.engine.containers.attach import AttachStream
    from capsa.engine.containers.log_reader import LogEntry
    from capsa.engine.containers.stats import Sample
    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.local import LocalEngine

ATTACHING: web.AppKey[Attaching] = web.AppKey("attaching", Attaching)


def setup(app: web.Application) -> None:
    app[ATTACHING] = Attaching()


def attaching(request: web.Request) -> Attaching:
    """The attaches held until their containers start (``start`` hands them over)."""
    return request.app[ATTACHING]


async def _record(request: web.Request) -> ContainerRecord:
    name = request.match_info["name"]
    return await engines(request).call(lambda e: e.containers.get(name))


def _wants(request: web.Request, rec: ContainerRecord) -> Wants:
    from capsa.syntax.detachkeys import parse_detach_keys

    return Wants(
        stdin=params.query_bool(request, "stdin") and rec.spec.stdin_open,
        stdout=params.query_bool(request, "stdout"),
        stderr=params.query_bool(request, "stderr"),
        tty=rec.spec.tty,
        keys=parse_detach_keys(params.query_str(request, "detachKeys")),
    )


async def attach(request: web.Request) -> web.StreamResponse:
    """``POST /containers/{name}/attach``: hijacked. A container that is not running
    yet is held until ``start``."""
    from capsa.engine.containers.types import State

    rec = await _record(request)
    wants = _wants(request, rec)
    if not params.query_bool(request, "stream") and not params.query_bool(request, "logs"):
        raise InvalidArgument("bad parameter: either logs or stream must be set")
    logs = params.query_bool(request, "logs")
    held = None
    stream = None
    if rec.state is State.RUNNING:
        if params.query_bool(request, "stream"):
            stream = await engines(request).call(lambda e: e.containers.attach(rec.id))
    elif rec.state in (State.CREATED, State.EXITED) and params.query_bool(request, "stream"):
        held = attaching(request).hold(rec.id, wants)
    elif not logs:
        raise Conflict("You cannot attach to a stopped container, start it first")
    response, client = await hijack(request, RAW if rec.spec.tty else MULTIPLEXED)
    try:
        if logs:
            await _replay_logs(request, rec, wants, client.write)
        if held is not None:
            stream = await _started(held.stream, client.lost)
            if stream is None:  # the client left, or the start failed
                return response
        if stream is not None:
            await relay(client, stream, wants, held)
    finally:
        if held is not None:
            attaching(request).release(rec.id, held)
        client.close()
    return response


async def _started(
    future: asyncio.Future[AttachStream], lost: asyncio.Event
) -> AttachStream | None:
    gone: asyncio.Future[object] = asyncio.ensure_future(lost.wait())
    waiting: set[asyncio.Future[object]] = {future, gone}  # type: ignore[arg-type]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if not future.done():
        future.cancel()
        return None
    return None if future.exception() is not None else future.result()


async def _replay_logs(
    request: web.Request, rec: ContainerRecord, wants: Wants, write: Callable[..., object]
) -> None:
    """``logs=1``: what the container wrote so far, before the live stream."""
    from capsa.api.streaming import iterate
    from capsa.engine.containers.types import LogOptions

    def make(engine: LocalEngine, gone: Callable[[], bool]) -> Iterator[LogEntry]:
        return engine.containers.logs(rec.id, LogOptions(), gone)

    async for entry in iterate(engines(request), make):
        if (entry.stream == "stdout" and wants.stdout) or (
            entry.stream == "stderr" and wants.stderr
        ):
            await write(_log_bytes(entry, rec.spec.tty, False))  # type: ignore[misc]


async def attach_ws(request: web.Request) -> web.StreamResponse:
    """``GET /containers/{name}/attach/ws``: the same stream over a websocket (output
    as binary messages, raw; input messages as stdin)."""
    rec = await _record(request)
    wants = _wants(request, rec)
    stream = await engines(request).call(lambda e: e.containers.attach(rec.id))
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    import socket

    sock = socket.socket(fileno=stream.detach())
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    writer.write(frames.hello(wants.stdin, wants.stdout, wants.stderr))

    async def inbound() -> None:
        async for msg in ws:
            if msg.type in (web.WSMsgType.BINARY, web.WSMsgType.TEXT) and wants.stdin:
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                writer.write(frames.frame(frames.STDIN, data))
                await writer.drain()

    task = asyncio.ensure_future(inbound())
    parser = frames.FrameReader()
    try:
        while not ws.closed:
            data = await reader.read(1 << 16)
            if not data:
                break
            for kind, payload in parser.feed(data):
                if kind in (frames.STDOUT, frames.STDERR):
                    await ws.send_bytes(payload)
    finally:
        task.cancel()
        writer.close()
        await ws.close()
    return ws


# -- logs ------------------------------------------------------------------------------


def _since(request: web.Request, name: str) -> float | None:
    text = request.query.get(name, "")
    if not text or text == "0":
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {text!r}: not a timestamp") from None


def _log_bytes(entry: LogEntry, tty: bool, timestamps: bool) -> bytes:
    data = entry.text.encode("utf-8", "surrogateescape")
    if timestamps:
        data = entry.time.encode() + b" " + data
    if tty:
        return data
    return frames.frame(frames.STDOUT if entry.stream == "stdout" else frames.STDERR, data)


async def logs(request: web.Request) -> web.StreamResponse:
    """``GET /containers/{name}/logs``: multiplexed frames without a terminal."""
    from capsa.api.streaming import iterate
    from capsa.engine.containers.types import LogOptions

    rec = await _record(request)
    stdout = params.query_bool(request, "stdout")
    stderr = params.query_bool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tail_text = params.query_str(request, "tail", "all")
    if tail_text in ("all", ""):
        tail = None
    else:
        try:
            tail = int(tail_text)
        except ValueError:
            raise InvalidArgument(f"invalid value for tail: {tail_text!r}") from None
    opts = LogOptions(
        tail=tail,
        since=_since(request, "since"),
        until=_since(request, "until"),
        follow=params.query_bool(request, "follow"),
    )
    timestamps = params.query_bool(request, "timestamps")

    def make(engine: LocalEngine, gone: Callable[[], bool]) -> Iterator[LogEntry]:
        return engine.containers.logs(rec.id, opts, gone)

    response = web.StreamResponse(headers={"Content-Type": RAW if rec.spec.tty else MULTIPLEXED})
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for entry in iterate(engines(request), make):
        if (entry.stream == "stdout" and stdout) or (entry.stream == "stderr" and stderr):
            await response.write(_log_bytes(entry, rec.spec.tty, timestamps))
    await response.write_eof()
    return response


# -- stats -----------------------------------------------------------------------------


async def stats(request: web.Request) -> web.StreamResponse:
    """``GET /containers/{name}/stats``: a document a second (``stream=false``: one,
    with the previous reading a second before unless ``one-shot``)."""
    from capsa.api.wire_stats import docker_stats_json

    rec = await _record(request)
    stream = params.query_bool(request, "stream", default=True)
    one_shot = params.query_bool(request, "one-shot")
    if one_shot and stream:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    eng = engines(request)

    def sample(engine: LocalEngine) -> Sample:
        return engine.containers.sample(engine.containers.get(rec.id))

    previous: Sample | None = None
    if not stream:
        if not one_shot:
            previous = await eng.call(sample)
            await asyncio.sleep(1.0)
        current = await eng.call(sample)
        return web.json_response(docker_stats_json(current, previous))
    from capsa.api.streaming import iterate

    def make(engine: LocalEngine, gone: Callable[[], bool]) -> Iterator[Sample]:
        return engine.containers.stats(rec.id, 1.0, gone)

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for current in iterate(eng, make):
        doc = docker_stats_json(current, previous)
        await response.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
        previous = current
    await response.write_eof()
    return response


async def resize(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    rows = params.query_int(request, "h", 0) or 0
    cols = params.query_int(request, "w", 0) or 0
    await engines(request).call(lambda e: e.containers.resize(name, rows, cols))
    return web.Response(status=200)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/containers/{name}/attach", attach),
        web.get("/containers/{name}/attach/ws", attach_ws),
        web.get("/containers/{name}/logs", logs),
        web.get("/containers/{name}/stats", stats),
        web.post("/containers/{name}/resize", resize),
    ]
