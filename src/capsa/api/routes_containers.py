"""The API's containers endpoints: create, list, inspect, the lifecycle verbs, wait,
remove, rename, update, prune, top, changes, export and archive (``docker cp``).

Attach, logs, stats, resize and exec are in ``routes_streams``/``routes_exec``. Every
engine call runs on a worker thread (``engines(request).call``); the tar streams of
export and archive are pumped between the worker and the connection through a small
queue, so a client that stops reading stops the worker too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time

from aiohttp import web

from capsa.api import params
from capsa.api.server import api_version, engines
from capsa.engine.containers.types import State, is_live
from capsa.errors import CapsaError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

    from capsa.engine.fsops.types import PathStat
    from capsa.engine.local import LocalEngine

_CHUNK = 64 * 1024
_END = object()
_WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
_CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}
_ENDING: set[asyncio.Future[None]] = set()  # ends of streams waiting for room


def _cid(request: web.Request) -> str:
    return request.match_info["id"]


# -- create / list / inspect ---------------------------------------------------------------


async def create(request: web.Request) -> web.StreamResponse:
    from capsa.api.create_body import read_create
    from capsa.errors import no_such_image

    name = params.query_str(request, "name")
    _check_platform(params.query_str(request, "platform"))
    doc = await params.json_body(request)
    req = read_create(doc, name, api_version(request))

    def work(e: LocalEngine) -> str:
        if not e.images.exists(req.spec.image):
            raise no_such_image(req.spec.image)  # the docker CLI pulls, then asks again
        for source in req.bind_sources:  # Docker makes a missing Binds source
            if not os.path.lexists(source):
                try:
                    os.makedirs(source, exist_ok=True)
                except OSError as err:
                    raise InvalidArgument(
                        f"error while creating mount source path '{source}': {err.strerror}"
                    ) from None
        return e.containers.create(req.spec).id

    container_id = await engines(request).call(work)
    return web.json_response({"Id": container_id, "Warnings": req.warnings}, status=201)


def _check_platform(text: str) -> None:
    """``?platform=os/arch[/variant]``: only this host's."""
    if not text:
        return
    import platform

    machine = platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    parts = text.lower().split("/")
    if parts[0] != "linux" or (len(parts) > 1 and parts[1] not in (arch, machine)):
        raise InvalidArgument(
            f"platform {text} is not supported: capsa runs linux/{arch} containers"
        )


async def list_containers(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_containers import container_summary
    from capsa.engine.containers.types import PsOptions

    filters = _ps_filters(params.query_filters(request))
    limit = params.query_int(request, "limit", 0) or 0
    size = params.query_bool(request, "size")
    opts = PsOptions(
        all=params.query_bool(request, "all"),
        last=limit if limit > 0 else 0,
        size=size,
        filters=filters,
    )

    def work(e: LocalEngine) -> list[dict[str, Any]]:
        recs = e.containers.list_containers(opts)
        images: dict[str, Any] = {}
        return [container_summary(e.containers, rec, size, images) for rec in recs]

    return web.json_response(await engines(request).call(work))


def _ps_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    """Refused as dockerd refuses them: an unknown name, a status or exit code or
    health that no container can have."""
    from capsa.syntax.filters import PS_FILTERS

    statuses = {s.value for s in State}
    for key, values in filters.items():
        if key not in PS_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
        for value in values:
            bad = (
                (key == "status" and value not in statuses)
                or (key == "exited" and not value.lstrip("-").isdigit())
                or (key == "health" and value not in ("starting", "healthy", "unhealthy", "none"))
                or (key == "is-task" and value not in ("true", "false", "1", "0"))
            )
            if bad:
                raise InvalidArgument(f"invalid filter '{key}={value}'")
    return filters


async def inspect(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire_containers import container_inspect

    size = params.query_bool(request, "size")
    name = _cid(request)

    def work(e: LocalEngine) -> dict[str, Any]:
        return container_inspect(e.containers, e.containers.get(name), size)

    return web.json_response(await engines(request).call(work))


# -- lifecycle -------------------------------------------------------------------------------


def _empty(status: int = 204) -> web.Response:
    return web.Response(status=status)


async def start(request: web.Request) -> web.StreamResponse:
    """204, or 304 when it runs already. Attaches made before (``docker run``'s) are
    held by ``routes_streams`` until now: the start hands them the container's stdio."""
    from capsa.api.routes_streams import attaching

    name = _cid(request)
    rec = await engines(request).call(lambda e: e.containers.get(name))
    if rec.state in (State.RUNNING, State.PAUSED):
        return _empty(304)
    try:
        await attaching(request).start(engines(request), rec.id)
    except CapsaError:
        if rec.spec.auto_remove:  # as dockerd: it goes (docker run --rm waits for that)
            await engines(request).call(lambda e: _remove_quietly(e, rec.id))
        raise
    return _empty()


def _remove_quietly(e: LocalEngine, container_id: str) -> None:
    try:
        e.containers.remove(container_id, force=True, volumes=True)
    except CapsaError:
        pass


def _signal(request: web.Request, default: str = "") -> int | None:
    from capsa.signames import signal_number

    text = params.query_str(request, "signal") or default
    return signal_number(text) if text else None


def _timeout(request: web.Request) -> int | None:
    value = params.query_int(request, "t")
    if value is None:
        value = params.query_int(request, "timeout")
    if value is not None and value < 0:
        return 2**31 - 1  # Docker's -1: no SIGKILL, wait for the stop signal to work
    return value


async def stop(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    timeout, sig = _timeout(request), _signal(request)

    def work(e: LocalEngine) -> bool:
        rec = e.containers.get(name)
        if not is_live(rec.state):
            return False
        e.containers.stop(rec.id, timeout, sig)
        return True

    return _empty(204 if await engines(request).call(work) else 304)


async def restart(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    timeout, sig = _timeout(request), _signal(request)
    await engines(request).call(lambda e: e.containers.restart(name, timeout, sig))
    return _empty()


async def kill(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    sig = _signal(request, "KILL")
    assert sig is not None
    await engines(request).call(lambda e: e.containers.kill(name, sig))
    return _empty()


async def pause(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    await engines(request).call(lambda e: e.containers.pause(name))
    return _empty()


async def unpause(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    await engines(request).call(lambda e: e.containers.unpause(name))
    return _empty()


async def wait(request: web.Request) -> web.StreamResponse:
    """The exit code once the ``condition`` is met. The container is looked up, and the
    headers sent, before waiting: ``docker run`` starts the container only once they
    came, and a ``next-exit`` wait counts from the moment it was asked."""
    name = _cid(request)
    condition = params.query_str(request, "condition") or "not-running"
    if api_version(request) < (1, 30):
        condition = "not-running"
    if condition not in _WAIT_CONDITIONS:
        raise InvalidArgument(f"invalid condition: {condition!r}")
    pool = engines(request)
    began = time.time()
    rec = await pool.call(lambda e: e.containers.get(name))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"\n")  # the headers go now (JSON readers skip the blank)
    doc: dict[str, Any]
    left = threading.Event()  # the client hung up: the worker stops waiting
    try:
        code = await pool.call(lambda e: e.containers.wait_for(rec, condition, began, left.is_set))
        doc = {"StatusCode": -1 if code is None else code, "Error": None}
    except CapsaError as e:
        doc = {"StatusCode": -1, "Error": {"Message": str(e)}}
    finally:
        left.set()
    await response.write(json.dumps(doc).encode() + b"\n")
    await response.write_eof()
    return response


async def remove(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    force = params.query_bool(request, "force")
    volumes = params.query_bool(request, "v")
    if params.query_bool(request, "link"):
        raise InvalidArgument("legacy links are not supported: there is no link to remove")
    await engines(request).call(lambda e: e.containers.remove(name, force, volumes))
    return _empty()


async def rename(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    new_name = params.query_str(request, "name").removeprefix("/")
    if not new_name:
        raise InvalidArgument("the new name is required (?name=)")
    await engines(request).call(lambda e: e.containers.rename(name, new_name))
    return _empty()


# -- update --------------------------------------------------------------------------------

# fields of Docker's update body capsa cannot change on a container, with the values
# that mean "unchanged" (what the docker CLI sends for a flag not given)
_UPDATE_UNSUPPORTED: dict[str, tuple[object, ...]] = {
    "CgroupParent": (None, ""),
    "BlkioWeightDevice": (None, []),
    "BlkioDeviceReadBps": (None, []),
    "BlkioDeviceWriteBps": (None, []),
    "BlkioDeviceReadIOps": (None, []),
    "BlkioDeviceWriteIOps": (None, []),
    "CpuRealtimePeriod": (None, 0),
    "CpuRealtimeRuntime": (None, 0),
    "Devices": (None, []),
    "DeviceCgroupRules": (None, []),
    "DeviceRequests": (None, []),
    "KernelMemory": (None, 0),
    "KernelMemoryTCP": (None, 0),
    "MemorySwappiness": (None, -1),
    "OomKillDisable": (None, False),
    "Ulimits": (None, []),
    "CpuCount": (None, 0),
    "CpuPercent": (None, 0),
    "IOMaximumIOps": (None, 0),
    "IOMaximumBandwidth": (None, 0),
}
# update field -> (ResourceUpdate attribute, the range check of the engine's limits)
_UPDATE_INTS = {
    "Memory": ("memory", "memory"),
    "MemorySwap": ("memory_swap", "memory_swap"),
    "MemoryReservation": ("memory_reservation", "memory_reservation"),
    "NanoCpus": ("nano_cpus", "nano_cpus"),
    "CpuShares": ("cpu_shares", "cpu_shares"),
    "CpuQuota": ("cpu_quota", "cpu_quota"),
    "CpuPeriod": ("cpu_period", "cpu_period"),
    "BlkioWeight": ("blkio_weight", "blkio_weight"),
}


def read_update(doc: dict[str, Any]) -> Any:
    """Docker's update body -> ``ResourceUpdate``: a zero (or null) leaves a setting as
    it is, as dockerd reads it."""
    from capsa.engine.containers import limits
    from capsa.engine.containers.update import ResourceUpdate

    for key, allowed in _UPDATE_UNSUPPORTED.items():
        if doc.get(key) not in allowed:
            raise InvalidArgument(f"{key}: {json.dumps(doc.get(key))}: capsa cannot update it")
    changes = ResourceUpdate()
    for key, (attr, check) in _UPDATE_INTS.items():
        value = params.field(doc, key, int)
        if value:
            why = getattr(limits, check)(value)
            if why:
                raise InvalidArgument(why)
            setattr(changes, attr, value)
    for key, attr in (("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        text = params.field(doc, key, str)
        if text:
            setattr(changes, attr, text)
    pids = params.field(doc, "PidsLimit", int)
    if pids is not None:
        changes.pids_limit = pids
    policy = params.field(doc, "RestartPolicy", dict)
    if policy:
        name = params.field(policy, "Name", str, "RestartPolicy") or ""
        count = params.field(policy, "MaximumRetryCount", int, "RestartPolicy") or 0
        if name:
            from capsa.syntax.policies import parse_restart

            if count and name != "on-failure":
                raise InvalidArgument(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                )
            text = f"{name}:{count}" if count else name
            parse_restart(text)
            changes.restart = text
    return changes


async def update(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    changes = read_update(await params.json_body(request))
    warnings = await engines(request).call(lambda e: e.containers.update(name, changes))
    return web.json_response({"Warnings": list(warnings)})


# -- prune / top / changes ----------------------------------------------------------------------


async def prune(request: web.Request) -> web.StreamResponse:
    filters = params.query_filters(request)
    deleted, freed = await engines(request).call(lambda e: e.containers.prune(filters))
    return web.json_response({"ContainersDeleted": deleted, "SpaceReclaimed": freed})


async def top(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    args = params.query_str(request, "ps_args").split()
    result = await engines(request).call(lambda e: e.containers.top(name, args or None))
    return web.json_response({"Titles": result.titles, "Processes": result.processes})


async def changes(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    found = await engines(request).call(lambda e: e.fs.changes(name))
    return web.json_response([{"Path": c.path, "Kind": _CHANGE_KINDS[c.kind]} for c in found])


# -- export and archive: tar streams ----------------------------------------------------------


class _QueueWriter:
    """A file the worker writes a tar stream to: 64 KiB chunks go to the event loop's
    queue; once the client has gone, writing fails and the worker stops."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        self.loop = loop
        self.queue = queue
        self.gone = threading.Event()
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= _CHUNK:
            self._hand_over()
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.buf:
            self._hand_over()

    def _hand_over(self) -> None:
        import concurrent.futures

        chunk, self.buf = bytes(self.buf), bytearray()
        future = asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop)
        while True:
            if self.gone.is_set():
                future.cancel()
                raise BrokenPipeError("the client went away")
            try:
                future.result(timeout=0.5)
                return
            except concurrent.futures.TimeoutError:
                continue


async def _stream_tar(
    request: web.Request,
    produce: Callable[[LocalEngine, BinaryIO], object],
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Run ``produce(engine, out)`` on a worker and send what it writes to ``out``. An
    error before the first byte is answered with its status; one after cuts the
    connection (the tar stream is then visibly short)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=8)
    writer = _QueueWriter(loop, queue)

    def work(e: LocalEngine) -> None:
        try:
            produce(e, writer)  # type: ignore[arg-type]
            writer.close()
        finally:
            loop.call_soon_threadsafe(_put_end, queue)

    task = asyncio.ensure_future(engines(request).call(work))
    response: web.StreamResponse | None = None
    try:
        first = await queue.get()
        if first is _END:
            await task  # what it raised, answered by the server's error middleware
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-tar", **(headers or {})}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        item = first
        while item is not _END:
            try:
                await response.write(item)
            except ConnectionResetError:  # the client hung up: nothing more to say
                return response
            item = await queue.get()
        try:
            await task
        except CapsaError:
            raise ConnectionResetError("the tar stream failed") from None
        await response.write_eof()
        return response
    finally:
        writer.gone.set()
        while not queue.empty():
            queue.get_nowait()
        task.add_done_callback(_forget)  # a client gone mid-stream: the worker's error


def _put_end(queue: asyncio.Queue[Any]) -> None:
    """The end of a stream, after the chunks still queued (on the event loop)."""
    try:
        queue.put_nowait(_END)
    except asyncio.QueueFull:
        task = asyncio.ensure_future(queue.put(_END))
        _ENDING.add(task)
        task.add_done_callback(_ENDING.discard)


def _forget(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def export(request: web.Request) -> web.StreamResponse:
    name = _cid(request)
    return await _stream_tar(request, lambda e, out: e.fs.export(name, out))


def _go_file_mode(mode: int) -> int:
    """An ``st_mode`` as Go's ``os.FileMode`` (what the docker CLI decodes)."""
    import stat

    bits = mode & 0o777
    kind = stat.S_IFMT(mode)
    bits |= {
        stat.S_IFDIR: 1 << 31,
        stat.S_IFLNK: 1 << 27,
        stat.S_IFBLK: 1 << 26,
        stat.S_IFCHR: (1 << 26) | (1 << 21),
        stat.S_IFIFO: 1 << 25,
        stat.S_IFSOCK: 1 << 24,
    }.get(kind, 0)
    if mode & stat.S_ISUID:
        bits |= 1 << 23
    if mode & stat.S_ISGID:
        bits |= 1 << 22
    if mode & stat.S_ISVTX:
        bits |= 1 << 20
    return bits


def _stat_header(st: PathStat) -> dict[str, str]:
    ns = int(st.mtime * 1e9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
    frac = f"{ns % 10**9:09d}".rstrip("0")
    doc = {
        "name": st.name,
        "size": st.size,
        "mode": _go_file_mode(st.mode),
        "mtime": stamp + (f".{frac}" if frac else "") + "Z",
        "linkTarget": st.link_target,
    }
    encoded = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    return {"X-Docker-Container-Path-Stat": encoded}


def _archive_path(request: web.Request) -> str:
    path = params.query_str(request, "path")
    if not path:
        raise InvalidArgument("path is required (?path=)")
    return path


async def archive_head(request: web.Request) -> web.StreamResponse:
    name, path = _cid(request), _archive_path(request)
    st = await engines(request).call(lambda e: e.fs.stat_path(name, path))
    return web.Response(headers={"Content-Type": "application/x-tar", **_stat_header(st)})


async def archive_get(request: web.Request) -> web.StreamResponse:
    name, path = _cid(request), _archive_path(request)
    st = await engines(request).call(lambda e: e.fs.stat_path(name, path))
    return await _stream_tar(
        request, lambda e, out: e.fs.archive(name, path, out), _stat_header(st)
    )


class _QueueReader:
    """The request body as a file for the worker: chunks come from the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        self.loop = loop
        self.queue = queue
        self.buf = b""
        self.eof = False
        self.ended = threading.Event()  # the feeder stopped (maybe without an EOF)

    def _next(self) -> bytes | None:
        import concurrent.futures

        future = asyncio.run_coroutine_threadsafe(self.queue.get(), self.loop)
        while True:
            try:
                item: bytes | None = future.result(timeout=0.5)
                return item
            except concurrent.futures.TimeoutError:
                if self.ended.is_set() and self.queue.empty():
                    future.cancel()
                    return None

    def read(self, size: int = -1) -> bytes:
        while not self.eof and (size < 0 or len(self.buf) < size):
            chunk = self._next()
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        if size < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:size], self.buf[size:]
        return out


async def archive_put(request: web.Request) -> web.StreamResponse:
    from capsa.engine.fsops.types import CopyOptions

    name, path = _cid(request), _archive_path(request)
    opts = CopyOptions(archive=params.query_bool(request, "copyUIDGID"))
    params.query_bool(request, "noOverwriteDirNonDir")  # capsa never replaces one by the other
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=8)
    reader = _QueueReader(loop, queue)

    async def feed() -> None:
        try:
            async for chunk in request.content.iter_chunked(_CHUNK):
                await queue.put(chunk)
            await queue.put(None)
        finally:
            reader.ended.set()

    feeder = asyncio.ensure_future(feed())
    try:
        await engines(request).call(lambda e: e.fs.extract(name, path, reader, opts))  # type: ignore[arg-type]
    finally:
        feeder.cancel()
        reader.ended.set()
    return web.Response(status=200)


def routes() -> list[web.RouteDef]:
    c = "/containers/{id}"
    return [
        web.post("/containers/create", create),
        web.get("/containers/json", list_containers),
        web.post("/containers/prune", prune),
        web.get(f"{c}/json", inspect),
        web.post(f"{c}/start", start),
        web.post(f"{c}/stop", stop),
        web.post(f"{c}/restart", restart),
        web.post(f"{c}/kill", kill),
        web.post(f"{c}/pause", pause),
        web.post(f"{c}/unpause", unpause),
        web.post(f"{c}/wait", wait),
        web.post(f"{c}/rename", rename),
        web.post(f"{c}/update", update),
        web.delete(c, remove),
        web.get(f"{c}/top", top),
        web.get(f"{c}/changes", changes),
        web.get(f"{c}/export", export),
        web.get(f"{c}/archive", archive_get, allow_head=False),
        web.head(f"{c}/archive", archive_head),
        web.put(f"{c}/archive", archive_put),
    ]
