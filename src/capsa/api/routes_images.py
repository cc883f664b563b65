"""The API's images endpoints: list, pull (``create``), inspect, history, tag, remove,
push, save (``get``), load, prune, search, and ``/commit``.

Pulls and pushes report through a ``ProgressSink`` on a worker thread; ``_Feed`` turns
its events into Docker's JSON progress lines in the response. An error before the
first line is an HTTP error (``{"message"}`` with its status, as dockerd answers
before it has written anything); after it, an ``errorDetail`` line ends the stream.
Archives stream both ways: the request body is read by the worker as a file
(``_BodyReader``), a saved archive is written into the response as it is made
(``_ResponseWriter``).

Image names may hold slashes (``/images/localhost:5000/a/b:tag/json``): their routes
use ``{name:.+}`` and come after the fixed paths.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

from aiohttp import web

from capsa.api import params
from capsa.api.server import engines, error_response
from capsa.errors import CapsaError, Conflict, InvalidArgument, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from capsa.engine.images.types import RegistryAuth
    from capsa.engine.local import LocalEngine
    from capsa.progress import ProgressEvent

log = logging.getLogger("capsa.api")

_END = object()
_THROTTLE = 0.1  # seconds between two lines of one layer doing the same thing
_COPY = 1 << 18  # archives move through the event loop in pieces of this size
_STATUS = {  # the engine's words -> dockerd's
    "Verifying checksum": "Verifying Checksum",
}
_URLSAFE = str.maketrans("-_", "+/")
_WITH_DETAIL = frozenset({"Downloading", "Extracting", "Pushing"})


def _line(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\r\n"


# -- progress from a worker thread ------------------------------------------------


class _Feed:
    """A ``ProgressSink`` for the worker thread: each event becomes one of Docker's JSON
    progress messages, queued for the handler. ``first``: the status a layer shows
    before its first event ("Pulling fs layer", "Preparing"); ``header``: a message sent
    before the first event ("Pulling from ..."). Once the client is gone, the next
    event raises, which ends the pull or push."""

    def __init__(self, loop: asyncio.AbstractEventLoop, first: str = "") -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.gone = False
        self.first = first
        self.header: dict[str, Any] | None = None
        self._last: dict[str, tuple[str, float]] = {}

    def put(self, doc: dict[str, Any]) -> None:
        if self.gone:
            raise Unavailable("the client went away")
        if self.header is not None:
            header, self.header = self.header, None
            self.loop.call_soon_threadsafe(self.queue.put_nowait, header)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, doc)

    def end(self) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, _END)

    def emit(self, event: ProgressEvent) -> None:
        if event.action.startswith("Digest: "):
            self.put({"status": event.action})
            return
        status = _STATUS.get(event.action, event.action)
        now = time.monotonic()
        last = self._last.get(event.id)
        if last is None and self.first and status not in (self.first, "Already exists"):
            self.put({"status": self.first, "progressDetail": {}, "id": event.id})
        elif last and last[0] == status and not event.done and now - last[1] < _THROTTLE:
            return
        self._last[event.id] = (status, now)
        detail: dict[str, int] = {}
        if status in _WITH_DETAIL and event.total:
            detail = {"current": event.current, "total": event.total}
        self.put({"status": status, "progressDetail": detail, "id": event.id})


async def _stream(
    request: web.Request, feed: _Feed, work: Callable[[LocalEngine], None]
) -> web.StreamResponse:
    """Run ``work`` on a worker thread and answer what it puts in ``feed`` as JSON
    lines; an error before the first line is the answer's status instead."""

    def run(engine: LocalEngine) -> None:
        try:
            work(engine)
        finally:
            feed.end()

    task = asyncio.ensure_future(engines(request).call(run))
    task.add_done_callback(_retrieve)
    response: web.StreamResponse | None = None
    try:
        ended = False
        while not ended:
            items = [await feed.queue.get()]
            while not feed.queue.empty():
                items.append(feed.queue.get_nowait())
            ended = items[-1] is _END
            docs = [i for i in items if i is not _END]
            if not docs:
                continue
            if response is None:
                response = web.StreamResponse(headers={"Content-Type": "application/json"})
                response.enable_chunked_encoding()
                await response.prepare(request)
            await response.write(b"".join(_line(d) for d in docs))
        try:
            await task
        except Exception as e:
            if response is None:
                raise
            if not isinstance(e, CapsaError):
                log.exception("%s %s", request.method, request.path)
            message = str(e) if isinstance(e, CapsaError) else f"internal error: {e}"
            await response.write(_line({"errorDetail": {"message": message}, "error": message}))
        if response is None:
            return web.json_response(None)
        await response.write_eof()
        return response
    finally:
        feed.gone = True


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a worker's error as seen (the handler may have gone before it ended)."""
    if not task.cancelled():
        task.exception()


# -- request bodies and archives through worker threads -----------------------------


class _BodyReader(io.RawIOBase):
    """The request body as a blocking file, for a worker thread."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content = request.content
        self.loop = loop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), _COPY)
        future = asyncio.run_coroutine_threadsafe(self.content.read(size), self.loop)
        data = future.result()
        buffer[: len(data)] = data
        return len(data)


def _body_file(request: web.Request) -> io.BufferedReader:
    return io.BufferedReader(_BodyReader(request, asyncio.get_running_loop()), _COPY)


class _ResponseWriter(io.RawIOBase):
    """A prepared response as a blocking file, for a worker thread."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.response = response
        self.loop = loop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        asyncio.run_coroutine_threadsafe(self.response.write(chunk), self.loop).result()
        return len(chunk)


# -- X-Registry-Auth ----------------------------------------------------------------


def registry_auth(request: web.Request) -> RegistryAuth | None:
    """Docker's ``X-Registry-Auth``: base64url JSON ``{"username", "password",
    "serveraddress"}`` (or ``"auth"``: base64 ``user:password``); empty: none."""
    import base64
    import binascii

    from capsa.engine.images.types import RegistryAuth

    header = request.headers.get("X-Registry-Auth", "").strip()
    if not header:
        return None
    try:
        padded = header.translate(_URLSAFE) + "=" * (-len(header) % 4)
        raw = base64.b64decode(padded, validate=True)
        doc = json.loads(raw) if raw.strip() else {}
    except (binascii.Error, ValueError):
        raise InvalidArgument("invalid X-Registry-Auth header: not base64 JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: not a JSON object")
    user = params.field(doc, "username", str, where="X-Registry-Auth") or ""
    password = params.field(doc, "password", str, where="X-Registry-Auth") or ""
    encoded = params.field(doc, "auth", str, where="X-Registry-Auth") or ""
    if encoded and not user:
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("invalid X-Registry-Auth header: bad auth field") from None
    if not user:
        return None  # anonymous (the docker CLI sends "{}")
    server = params.field(doc, "serveraddress", str, where="X-Registry-Auth") or ""
    return RegistryAuth(username=user, password=password, server=server)


# -- listing, inspect, history ------------------------------------------------------


def image_filters(request: web.Request) -> Any:
    from capsa.syntax.filters import parse_image_filters

    filters = params.query_filters(request)
    items = [f"{key}={value}" for key, values in filters.items() for value in values]
    found = parse_image_filters(items)
    legacy = params.query_str(request, "filter")  # API < 1.41: a reference
    if legacy:
        found.references.append(legacy)
    return found


async def list_images(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire import image_summary

    filters = image_filters(request)
    every = params.query_bool(request, "all")
    params.query_bool(request, "digests")  # RepoDigests are always there
    summaries = await engines(request).call(
        lambda e: e.images.list_images(filters, include_intermediate=every)
    )
    return web.json_response([image_summary(s) for s in summaries])


async def inspect(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire import image_inspect

    name = request.match_info["name"]
    detail = await engines(request).call(lambda e: e.images.inspect(name))
    return web.json_response(image_inspect(detail))


async def history(request: web.Request) -> web.StreamResponse:
    from capsa.api.wire import image_history

    name = request.match_info["name"]
    entries = await engines(request).call(lambda e: e.images.history(name))
    return web.json_response(image_history(entries))


# -- pull and import ------------------------------------------------------------------


def _pull_reference(image: str, tag: str) -> str:
    """``fromImage`` and ``tag`` as one reference (``latest`` when neither has a tag)."""
    from capsa.oci import reference

    ref = reference.parse(image, default_tag=False)
    if tag.startswith("sha256:"):
        return ref.with_digest(tag).name
    if tag:
        return ref.with_tag(tag).name
    if ref.tag or ref.digest:
        return ref.name
    return ref.with_tag("latest").name


async def create(request: web.Request) -> web.StreamResponse:
    """``POST /images/create``: pull ``fromImage``, or import ``fromSrc=-`` (the body)."""
    image = params.query_str(request, "fromImage")
    source = params.query_str(request, "fromSrc")
    if source:
        return await _import(request, source)
    if not image:
        raise InvalidArgument("fromImage or fromSrc is required")
    return await _pull(request, image)


async def _pull(request: web.Request, image: str) -> web.StreamResponse:
    from capsa.engine.images.types import PullOptions
    from capsa.oci import reference

    text = _pull_reference(image, params.query_str(request, "tag"))
    ref = reference.parse(text)
    opts = PullOptions(
        platform=params.query_str(request, "platform") or None, auth=registry_auth(request)
    )
    feed = _Feed(asyncio.get_running_loop(), first="Pulling fs layer")
    feed.header = {"status": f"Pulling from {ref.path}", "id": ref.tag or ref.digest}

    def work(e: LocalEngine) -> None:
        before = e.images.resolve(text).id if e.images.exists(text) else None
        summary = e.images.pull(text, opts, feed)
        what = "Image is up to date" if summary.id == before else "Downloaded newer image"
        feed.put({"status": f"Status: {what} for {ref.familiar}"})

    return await _stream(request, feed, work)


async def _import(request: web.Request, source: str) -> web.StreamResponse:
    from capsa.engine.images.types import ImportOptions

    if source != "-":
        raise InvalidArgument("fromSrc: only '-' (the request body) is supported, not URLs")
    repo = params.query_str(request, "repo")
    tag = params.query_str(request, "tag")
    if tag and not repo:
        raise InvalidArgument("tag given without repo")
    opts = ImportOptions(
        reference=(f"{repo}:{tag}" if tag else repo) or None,
        changes=params.query_list(request, "changes"),
        message=params.query_str(request, "message"),
        platform=params.query_str(request, "platform") or None,
    )
    body = _body_file(request)
    summary = await engines(request).call(lambda e: e.images.import_image(body, opts))
    return web.Response(body=_line({"status": summary.id}), content_type="application/json")


# -- names and removal -------------------------------------------------------------


async def tag(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    repo = params.query_str(request, "repo")
    if not repo:
        raise InvalidArgument("repository name (repo) is required")
    wanted = params.query_str(request, "tag")
    target = f"{repo}:{wanted}" if wanted else repo
    await engines(request).call(lambda e: e.images.tag(name, target))
    return web.Response(status=201)


async def remove(request: web.Request) -> web.StreamResponse:
    from capsa.engine.images.types import RemoveImagesOptions

    name = request.match_info["name"]
    opts = RemoveImagesOptions(
        force=params.query_bool(request, "force"), no_prune=params.query_bool(request, "noprune")
    )

    def drop(e: LocalEngine) -> list[dict[str, str]]:
        e.images.resolve(name)  # a missing name is a 404, not a report line
        report = e.images.remove([name], opts)
        if report.errors:  # what remains are images in use or with several names
            raise Conflict(report.errors[0])
        return [{"Untagged": n} for n in report.untagged] + [{"Deleted": i} for i in report.deleted]

    return web.json_response(await engines(request).call(drop))


async def prune(request: web.Request) -> web.StreamResponse:
    filters = params.query_filters(request)
    report = await engines(request).call(lambda e: e.images.prune(False, filters))
    deleted = [{"Untagged": n} for n in report.untagged] + [{"Deleted": i} for i in report.deleted]
    return web.json_response(
        {"ImagesDeleted": deleted or None, "SpaceReclaimed": report.space_reclaimed}
    )


# -- push ---------------------------------------------------------------------------


async def push(request: web.Request) -> web.StreamResponse:
    from capsa.engine.images.types import PushOptions
    from capsa.oci import reference

    name = request.match_info["name"]
    wanted = params.query_str(request, "tag")
    base = reference.parse(name, default_tag=False)
    ref = base.with_tag(wanted) if wanted else (base if base.tag else base.with_tag("latest"))
    text = ref.name
    opts = PushOptions(auth=registry_auth(request))
    feed = _Feed(asyncio.get_running_loop(), first="Preparing")

    def work(e: LocalEngine) -> None:
        e.images.inspect(text)  # a missing image is a 404 before anything is written
        feed.put({"status": f"The push refers to repository [{ref.repository}]"})
        digest = e.images.push(text, opts, feed)
        feed.put({"status": f"{ref.tag}: digest: {digest}"})
        feed.put({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": digest}})

    return await _stream(request, feed, work)


# -- archives -----------------------------------------------------------------------


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    if not names:
        raise InvalidArgument("no image names given (names)")

    def check(e: LocalEngine) -> None:
        for name in names:
            e.images.resolve(name)

    await engines(request).call(check)
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    out = io.BufferedWriter(_ResponseWriter(response, asyncio.get_running_loop()), _COPY)

    def write(e: LocalEngine) -> None:
        e.images.save(names, out)
        out.flush()

    try:
        await engines(request).call(write)
    except Exception as e:  # the archive is cut short: the client sees a broken tar
        log.warning("save %s: %s", " ".join(names), e)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def save_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, params.query_list(request, "names"))


async def load(request: web.Request) -> web.StreamResponse:
    params.query_bool(request, "quiet")
    body = _body_file(request)
    loaded = await engines(request).call(lambda e: e.images.load(body))
    lines = []
    for name in loaded:
        prefix = "Loaded image ID" if name.startswith("sha256:") else "Loaded image"
        lines.append(_line({"stream": f"{prefix}: {name}\n"}))
    return web.Response(body=b"".join(lines), content_type="application/json")


# -- search and commit --------------------------------------------------------------


async def search(request: web.Request) -> web.StreamResponse:
    return error_response(
        501,
        "image search is not supported: capsa searches no registry (search the "
        "registry's own web page or API instead)",
    )


# the container config fields commit applies, and those that do not belong in an image
_COMMIT_CONFIG = frozenset(
    {"Cmd", "Entrypoint", "ExposedPorts", "Volumes", "Hostname", "Domainname", "Image"}
    | {"AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce"}
)


def _commit_changes(request: web.Request, config: dict[str, Any]) -> list[str]:
    """``changes`` (Dockerfile instructions, the parameter given once per instruction
    or several in one, one a line) and the fields of the body's container config that
    an instruction expresses exactly."""
    changes = list(params.query_list(request, "changes"))
    for key, instruction in (("Cmd", "CMD"), ("Entrypoint", "ENTRYPOINT")):
        value = params.field(config, key, list)
        if value is not None:
            if not all(isinstance(v, str) for v in value):
                raise InvalidArgument(f"invalid type for field {key}: expected strings")
            changes.append(f"{instruction} {json.dumps(value)}")
    for key, instruction in (("ExposedPorts", "EXPOSE"), ("Volumes", "VOLUME")):
        mapping = params.field(config, key, dict)
        for item in mapping or {}:
            changes.append(f"{instruction} {json.dumps([item]) if key == 'Volumes' else item}")
    given = sorted(k for k, v in config.items() if v not in (None, "", [], {}, False))
    unsupported = [k for k in given if k not in _COMMIT_CONFIG]
    if unsupported:
        raise InvalidArgument(
            f"commit: container config fields {', '.join(unsupported)} are not supported; "
            "use changes (Dockerfile instructions) instead"
        )
    return changes


async def commit(request: web.Request) -> web.StreamResponse:
    from capsa.engine.fsops.types import CommitOptions

    container = params.query_str(request, "container")
    if not container:
        raise InvalidArgument("container is required")
    repo = params.query_str(request, "repo")
    wanted = params.query_str(request, "tag")
    if wanted and not repo:
        raise InvalidArgument("tag given without repo")
    config = await params.json_body(request, required=False)
    opts = CommitOptions(
        reference=f"{repo}:{wanted}" if wanted else repo,
        message=params.query_str(request, "comment"),
        author=params.query_str(request, "author"),
        changes=_commit_changes(request, config),
        pause=params.query_bool(request, "pause", default=True),
    )
    image_id = await engines(request).call(lambda e: e.fs.commit(container, opts))
    return web.json_response({"Id": image_id}, status=201)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/images/json", list_images),
        web.post("/images/create", create),
        web.get("/images/search", search),
        web.get("/images/get", save_many),
        web.post("/images/load", load),
        web.post("/images/prune", prune),
        web.post("/commit", commit),
        web.get("/images/{name:.+}/json", inspect),
        web.get("/images/{name:.+}/history", history),
        web.get("/images/{name:.+}/get", save_one),
        web.post("/images/{name:.+}/tag", tag),
        web.post("/images/{name:.+}/push", push),
        web.delete("/images/{name:.+}", remove),
    ]
