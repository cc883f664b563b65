"""capsa's own API (``/capsa/v1``): the engine's protocol over HTTP, for ``RemoteEngine``.

As podman's remote client calls libpod's endpoints rather than Docker's, ``capsa
--host`` calls these: the engine's typed records travel as JSON (``capsa.client.codec``)
and come back as the same classes, errors as ``{"kind", "message"}`` (the same
``capsa.errors`` kind on the client).

- ``POST /capsa/v1/call/{service}/{method}``: one method of the protocol
  (``capsa.engine.protocol``), allow-listed, its arguments decoded by the method's
  annotations; ``{"result": ...}``. With ``"progress": true`` the answer is NDJSON:
  ``{"progress": event}`` lines, then ``{"result": ...}`` or ``{"error": ...}``.
- ``/capsa/v1/logs`` and ``/capsa/v1/events``: NDJSON streams (events with ``{}``
  heartbeats, so the client can stop while nothing happens).
- ``/capsa/v1/attach``: a hijacked connection spliced to the container's attach
  socket: the client speaks the monitor's frames (``AttachStream``) through it.
- ``/capsa/v1/start``: ``start``; with ``wait_attach`` the connection is hijacked, a
  RECORD frame comes first, then the client greets the monitor, then a READY (or
  FAILED) frame, then the container's frames.
- ``/capsa/v1/exec``: the exec's stdio as frames both ways (STDIN, STDIN_CLOSE,
  RESIZE, SIGNAL in; STDOUT, STDERR, EXIT out), with or without a terminal.
- ``/capsa/v1/archive`` (GET a tar of a path), ``/capsa/v1/extract`` (PUT a tar),
  ``/capsa/v1/export``, ``/capsa/v1/images/save`` and ``/capsa/v1/images/load``:
  streamed bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket

from aiohttp import web

from capsa.api.fdio import pump_out, read_fd, write_fd
from capsa.api.server import engines
from capsa.client import codec, frames
from capsa.errors import CapsaError, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from capsa.api.hijack import RawStream
    from capsa.engine.local import LocalEngine

PREFIX = "/capsa/v1"
_CHUNK = 1 << 16
log = logging.getLogger("capsa.api")


# -- errors and bodies -----------------------------------------------------------------


def _error(err: BaseException) -> web.Response:
    from capsa.api.statuses import status_of

    status = status_of(err) if isinstance(err, CapsaError) else 500
    body = json.dumps(codec.error_doc(err)).encode()
    return web.Response(body=body, status=status, content_type="application/json")


def _line(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        doc = json.loads(await request.read() or b"{}")
    except ValueError:
        raise InvalidArgument("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("the body must be a JSON object")
    return doc


def _arg(doc: dict[str, Any], name: str, tp: Any) -> Any:
    return codec.decode(tp, doc.get(name), name)


def _handler(
    fn: Callable[[web.Request], Any],
) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await fn(request)
            return response
        except CapsaError as e:
            return _error(e)

    return handle


# -- one method call -----------------------------------------------------------------


def _services() -> dict[str, tuple[type, Callable[[LocalEngine], Any]]]:
    from capsa.engine import protocol as p

    return {
        "containers": (p.Containers, lambda e: e.containers),
        "containers.each": (p.ContainerBatch, lambda e: e.containers.each),
        "images": (p.Images, lambda e: e.images),
        "volumes": (p.Volumes, lambda e: e.volumes),
        "networks": (p.Networks, lambda e: e.networks),
        "system": (p.System, lambda e: e.system),
        "fs": (p.Files, lambda e: e.fs),
    }


# what cannot travel as JSON: these verbs have endpoints of their own
NOT_CALLABLE = frozenset(
    {
        "containers.start",
        "containers.exec",
        "containers.attach",
        "containers.logs",
        "containers.stats",  # the remote engine samples itself
        "images.save",
        "images.save_to_file",
        "images.load",
        "images.import_image",
        "fs.archive",
        "fs.extract",
        "fs.export",
        "fs.copy_from",
        "fs.copy_to",
    }
)
_DROPPED = frozenset({"progress", "gone", "stop", "return"})  # not the caller's to send


def method_of(service: str, method: str) -> tuple[Callable[[LocalEngine], Any], Any]:
    """(the service getter, the protocol's function) of an allow-listed method."""
    known = _services().get(service)
    fn = getattr(known[0], method, None) if known and not method.startswith("_") else None
    if known is None or not callable(fn) or f"{service}.{method}" in NOT_CALLABLE:
        raise NotFound(f"no engine method {service}.{method}")
    return known[1], fn


def decode_args(fn: Any, given: Any) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise InvalidArgument("args: expected an object")
    types = codec.hints(fn)
    unknown = set(given) - set(types) | (set(given) & _DROPPED)
    if unknown:
        raise InvalidArgument(f"args: unknown {', '.join(sorted(unknown))}")
    import inspect

    try:
        inspect.signature(fn).bind(None, **given)  # None: self
    except TypeError as e:
        raise InvalidArgument(f"args: {e}") from None
    return {name: codec.decode(types[name], value, name) for name, value in given.items()}


async def call(request: web.Request) -> web.StreamResponse:
    service, method = request.match_info["service"], request.match_info["method"]
    try:
        get, fn = method_of(service, method)
        doc = await _body(request)
        args = decode_args(fn, doc.get("args", {}))
    except CapsaError as e:
        return _error(e)
    if doc.get("progress") and "progress" in codec.hints(fn):
        return await _call_with_progress(request, get, method, args)
    try:
        result = await engines(request).call(lambda e: getattr(get(e), method)(**args))
    except CapsaError as e:
        return _error(e)
    return web.json_response({"result": codec.encode(result)})


async def _call_with_progress(
    request: web.Request, get: Callable[[LocalEngine], Any], method: str, args: dict[str, Any]
) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    class Sink:
        def emit(self, event: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, _line({"progress": codec.encode(event)}))

    def work(engine: LocalEngine) -> Any:
        return getattr(get(engine), method)(**args, progress=Sink())

    task = asyncio.ensure_future(engines(request).call(work))
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    while not (task.done() and queue.empty()):
        getter = asyncio.ensure_future(queue.get())
        await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            await response.write(getter.result())
        else:
            getter.cancel()
    try:
        final = {"result": codec.encode(task.result())}
    except Exception as e:
        final = {"error": codec.error_doc(e)}
    await response.write(_line(final))
    await response.write_eof()
    return response


# -- NDJSON streams ------------------------------------------------------------------


async def _ndjson(
    request: web.Request,
    make: Callable[[LocalEngine, Callable[[], bool]], Iterator[Any]],
    heartbeat: float | None = None,
) -> web.StreamResponse:
    """The items of ``make`` as lines; an error before the first is the answer's status,
    after it an ``{"error": ...}`` line."""
    from capsa.api.streaming import iterate

    items = iterate(engines(request), make).__aiter__()
    response: web.StreamResponse | None = None
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(items.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if response is None and (done or heartbeat is not None):
                if done and pending.exception() is not None:
                    raise pending.exception()  # type: ignore[misc]
                response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
                response.enable_chunked_encoding()
                await response.prepare(request)
            assert response is not None
            if not done:
                await response.write(b"{}\n")  # nothing new: the client may stop
                continue
            future, pending = pending, None
            try:
                item = future.result()
            except StopAsyncIteration:
                break
            except CapsaError as e:
                await response.write(_line({"error": codec.error_doc(e)}))
                break
            await response.write(_line({"item": codec.encode(item)}))
    except CapsaError as e:
        return _error(e)
    finally:
        if pending is not None:  # the client left: end the generator (and its worker)
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await items.aclose()  # type: ignore[attr-defined]
    if response is None:  # nothing at all
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
    await response.write_eof()
    return response


async def logs(request: web.Request) -> web.StreamResponse:
    from capsa.engine.containers.types import LogOptions

    doc = await _body(request)
    text = _arg(doc, "text", str)
    opts = _arg(doc, "opts", LogOptions)

    def make(engine: LocalEngine, gone: Callable[[], bool]) -> Iterator[Any]:
        return engine.containers.logs(text, opts, gone)

    return await _ndjson(request, make)


async def events(request: web.Request) -> web.StreamResponse:
    doc = await _body(request)
    since = _arg(doc, "since", float | None)
    until = _arg(doc, "until", float | None)
    filters = _arg(doc, "filters", dict[str, list[str]] | None) or {}

    def make(engine: LocalEngine, gone: Callable[[], bool]) -> Iterator[Any]:
        return engine.events.stream(since, until, filters, stop=gone)

    return await _ndjson(request, make, heartbeat=1.0)


# -- hijacked: attach, start, exec ---------------------------------------------------


async def _open_fd(fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(sock=socket.socket(fileno=fd), limit=_CHUNK)


async def _to_client(reader: asyncio.StreamReader, client: RawStream) -> None:
    while True:
        data = await reader.read(_CHUNK)
        if not data or not await client.write(data):
            return


async def _to_monitor(client: RawStream, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await client.read()
        if not data:
            return
        writer.write(data)
        await writer.drain()


async def _splice(
    client: RawStream,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    inbound: asyncio.Future[None] | None = None,
) -> None:
    """Bytes both ways until the monitor's side ends or the client leaves."""
    if inbound is None:
        inbound = asyncio.ensure_future(_to_monitor(client, writer))
    outbound = asyncio.ensure_future(_to_client(reader, client))
    lost = asyncio.ensure_future(client.lost.wait())
    try:
        await asyncio.wait({outbound, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (inbound, outbound, lost):
            task.cancel()
        writer.close()
        client.close()


async def attach(request: web.Request) -> web.StreamResponse:
    from capsa.api.hijack import hijack

    doc = await _body(request)
    text = _arg(doc, "text", str)
    stream = await engines(request).call(lambda e: e.containers.attach(text))
    reader, writer = await _open_fd(stream.detach())
    response, client = await hijack(request, frames.CONTENT_TYPE)
    await _splice(client, reader, writer)
    return response


async def start(request: web.Request) -> web.StreamResponse:
    doc = await _body(request)
    text = _arg(doc, "text", str)
    if not _arg(doc, "wait_attach", bool | None):
        rec, launch = await engines(request).call(lambda e: e.containers.start(text))
        warnings = list(getattr(launch, "warnings", None) or [])
        return web.json_response(
            {"record": codec.encode(rec), "launched": launch is not None, "warnings": warnings}
        )
    rec, launch = await engines(request).call(lambda e: e.containers.start(text, wait_attach=True))
    if launch is None:
        return web.json_response({"record": codec.encode(rec), "launched": False, "warnings": []})
    from capsa.api.hijack import hijack

    try:
        reader, writer = await _open_fd(launch.connect())
    except BaseException:
        os.close(launch.ready)
        raise
    response, client = await hijack(request, frames.CONTENT_TYPE)
    await client.write(frames.frame(frames.RECORD, json.dumps(codec.encode(rec)).encode()))
    greeted = asyncio.Event()
    inbound = asyncio.ensure_future(_greet_then_relay(client, writer, greeted))
    try:
        await greeted.wait()  # the monitor starts the program once greeted
        failed: CapsaError | None = None
        if inbound.done():  # the client left before greeting: its monitor sees it gone
            failed = InvalidArgument("the client left before attaching")
            os.close(launch.ready)
        else:
            try:
                await engines(request).run(launch.wait_ready)
            except CapsaError as e:
                failed = e
        if failed is not None:
            await client.write(
                frames.frame(frames.FAILED, json.dumps(codec.error_doc(failed)).encode())
            )
            inbound.cancel()
            writer.close()
            client.close()
            return response
        ready = json.dumps({"warnings": list(launch.warnings)}).encode()
        await client.write(frames.frame(frames.READY, ready))
    except BaseException:
        inbound.cancel()
        writer.close()
        client.close()
        raise
    await _splice(client, reader, writer, inbound)
    return response


async def _greet_then_relay(
    client: RawStream, writer: asyncio.StreamWriter, greeted: asyncio.Event
) -> None:
    """The client's bytes to the monitor; ``greeted`` once its first frame (the hello)
    has gone, or the client has left."""
    seen = b""
    try:
        while True:
            data = await client.read()
            if not data:
                return
            writer.write(data)
            await writer.drain()
            if not greeted.is_set():
                seen += data
                if len(seen) >= frames.HEADER_SIZE:
                    size = int.from_bytes(seen[4:8], "big")
                    if len(seen) >= frames.HEADER_SIZE + size:
                        greeted.set()
    finally:
        greeted.set()


async def exec_(request: web.Request) -> web.StreamResponse:
    from capsa.engine.containers.types import ExecSpec, ExecStdio

    doc = await _body(request)
    text = _arg(doc, "text", str)
    spec = _arg(doc, "spec", ExecSpec)
    rows, cols = _arg(doc, "rows", int | None) or 0, _arg(doc, "cols", int | None) or 0
    if spec.detach:
        await engines(request).call(lambda e: e.containers.exec(text, spec, ExecStdio()))
        return web.json_response({"detached": True})
    stdio = ExecStdio(rows=rows, cols=cols)
    ours: list[int] = []
    theirs: list[int] = []
    stdin_w = out_r = err_r = -1
    if not spec.tty:
        if spec.interactive:
            stdio.stdin, stdin_w = os.pipe()
            theirs.append(stdio.stdin)
            ours.append(stdin_w)
        out_r, stdio.stdout = os.pipe()
        err_r, stdio.stderr = os.pipe()
        theirs += [stdio.stdout, stdio.stderr]
        ours += [out_r, err_r]
    try:
        session = await engines(request).call(lambda e: e.containers.exec(text, spec, stdio))
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    assert session is not None
    from capsa.api.hijack import hijack

    ended = asyncio.ensure_future(engines(request).run(session.wait))
    response, client = await hijack(request, frames.CONTENT_TYPE)
    if spec.tty:
        out_r = stdin_w = os.dup(session.master)
        ours = [out_r]
    try:
        await _relay_exec(client, session, stdin_w, out_r, err_r, ours, spec.tty)
        code = await ended
        await client.write(frames.frame(frames.EXIT, json.dumps({"exit_code": code}).encode()))
    finally:
        for fd in ours:
            try:
                os.close(fd)
            except OSError:
                pass
        client.close()
    return response


async def _relay_exec(
    client: RawStream,
    session: Any,
    stdin_w: int,
    out_r: int,
    err_r: int,
    ours: list[int],
    tty: bool,
) -> None:
    outputs = [
        asyncio.ensure_future(pump_out(fd, kind, client))
        for fd, kind in ((out_r, frames.STDOUT), (err_r, frames.STDERR))
        if fd >= 0
    ]
    inbound = asyncio.ensure_future(_exec_input(client, session, stdin_w, ours, tty))
    try:
        await asyncio.gather(*outputs)
    finally:
        inbound.cancel()
        await asyncio.gather(inbound, return_exceptions=True)


async def _exec_input(
    client: RawStream, session: Any, stdin_w: int, ours: list[int], tty: bool
) -> None:
    """The client's frames: stdin (its end closes the exec's stdin, and leaves
    ``ours``, the fds the handler closes), resizes and signals."""
    reader = frames.FrameReader()
    if stdin_w >= 0:
        os.set_blocking(stdin_w, False)
    while True:
        data = await client.read()
        if not data:
            return
        for kind, payload in reader.feed(data):
            if kind == frames.STDIN and stdin_w >= 0:
                await write_fd(stdin_w, payload)
            elif kind == frames.STDIN_CLOSE and stdin_w >= 0 and not tty:
                ours.remove(stdin_w)
                os.close(stdin_w)
                stdin_w = -1
            elif kind == frames.RESIZE:
                rows, _, cols = payload.decode().partition(" ")
                session.resize(int(rows), int(cols))
            elif kind == frames.SIGNAL:
                session.signal(int(payload))


# -- streamed bodies -------------------------------------------------------------------


async def _download(
    request: web.Request, write: Callable[[LocalEngine, Any], Any]
) -> web.StreamResponse:
    """``write(engine, out)`` on a worker; its bytes as the answer. An error before the
    first byte is the answer's status; after it, the connection is cut (no clean end)."""
    r, w = os.pipe()

    def work(engine: LocalEngine) -> None:
        with open(w, "wb", buffering=1 << 16) as out:
            write(engine, out)

    task = asyncio.ensure_future(engines(request).call(work))
    os.set_blocking(r, False)
    response: web.StreamResponse | None = None
    try:
        while True:
            data = await read_fd(r)
            if not data:
                break
            if response is None:
                response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
                response.enable_chunked_encoding()
                await response.prepare(request)
            await response.write(data)
        try:
            await task
        except Exception as e:  # after the first byte: the client sees a stream cut short
            if response is None and isinstance(e, CapsaError):
                return _error(e)
            if response is None:
                raise
            log.warning("%s: %s", request.path, e)
            if request.transport is not None:
                request.transport.close()
            return response
        if response is None:
            response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
            await response.prepare(request)
        await response.write_eof()
        return response
    finally:
        os.close(r)


async def _upload(request: web.Request, read: Callable[[LocalEngine, Any], Any]) -> Any:
    """``read(engine, stream)`` on a worker, the request's body as its stream."""
    r, w = os.pipe()

    def work(engine: LocalEngine) -> Any:
        with open(r, "rb", buffering=1 << 16) as stream:
            return read(engine, stream)

    task = asyncio.ensure_future(engines(request).call(work))
    os.set_blocking(w, False)
    try:
        async for chunk in request.content.iter_chunked(_CHUNK):
            if task.done() or not await write_fd(w, chunk):
                break
    finally:
        os.close(w)
    return await task


def _args(request: web.Request) -> dict[str, Any]:
    try:
        doc = json.loads(request.headers.get("X-Capsa-Args") or "{}")
    except ValueError:
        raise InvalidArgument("X-Capsa-Args is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("X-Capsa-Args must be a JSON object")
    return doc


async def archive(request: web.Request) -> web.StreamResponse:
    from capsa.engine.fsops.types import CopyOptions

    doc = await _body(request)
    container, path = _arg(doc, "container", str), _arg(doc, "path", str)
    opts = _arg(doc, "opts", CopyOptions | None)
    return await _download(request, lambda e, out: e.fs.archive(container, path, out, opts))


async def export(request: web.Request) -> web.StreamResponse:
    doc = await _body(request)
    container = _arg(doc, "container", str)
    return await _download(request, lambda e, out: e.fs.export(container, out))


async def save(request: web.Request) -> web.StreamResponse:
    doc = await _body(request)
    texts, fmt = _arg(doc, "texts", list[str]), _arg(doc, "fmt", str | None) or "docker-archive"
    return await _download(request, lambda e, out: e.images.save(texts, out, fmt))


async def extract(request: web.Request) -> web.StreamResponse:
    from capsa.engine.fsops.types import CopyOptions

    doc = _args(request)
    container, path = _arg(doc, "container", str), _arg(doc, "path", str)
    opts = _arg(doc, "opts", CopyOptions | None)
    await _upload(request, lambda e, stream: e.fs.extract(container, path, stream, opts))
    return web.json_response({"result": None})


async def load(request: web.Request) -> web.StreamResponse:
    names = await _upload(request, lambda e, stream: e.images.load(stream))
    return web.json_response({"result": codec.encode(names)})


async def import_image(request: web.Request) -> web.StreamResponse:
    from capsa.engine.images.types import ImportOptions

    opts = _arg(_args(request), "opts", ImportOptions | None)
    summary = await _upload(request, lambda e, stream: e.images.import_image(stream, opts))
    return web.json_response({"result": codec.encode(summary)})


def routes() -> list[web.RouteDef]:
    return [
        web.post(PREFIX + "/call/{service}/{method}", call),
        web.post(PREFIX + "/logs", _handler(logs)),
        web.post(PREFIX + "/events", _handler(events)),
        web.post(PREFIX + "/attach", _handler(attach)),
        web.post(PREFIX + "/start", _handler(start)),
        web.post(PREFIX + "/exec", _handler(exec_)),
        web.post(PREFIX + "/archive", _handler(archive)),
        web.post(PREFIX + "/export", _handler(export)),
        web.post(PREFIX + "/images/save", _handler(save)),
        web.put(PREFIX + "/extract", _handler(extract)),
        web.put(PREFIX + "/images/load", _handler(load)),
        web.put(PREFIX + "/images/import", _handler(import_image)),
    ]
