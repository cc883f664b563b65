"""Exec instances: ``POST /containers/{name}/exec``, ``/exec/{id}/start|resize|json``.

An exec instance is the server's (as it is dockerd's): made by ``create``, run once by
``start``, inspected until the server ends. Started attached, its stdio is relayed
onto the hijacked connection (multiplexed frames without a terminal); started
detached, the server still waits for it, so that ``inspect`` shows its exit code.
"""

from __future__ import annotations

import asyncio
import os
import secrets

from aiohttp import web

from capsa.api import params
from capsa.api.fdio import pump_out, write_fd
from capsa.api.hijack import MULTIPLEXED, RAW, hijack
from capsa.api.server import engines
from capsa.api.statuses import exec_exit_code
from capsa.engine.containers import attach as frames
from capsa.errors import CapsaError, Conflict, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.api.hijack import RawStream
    from capsa.engine.containers.exec_watch import ExecSession
    from capsa.engine.containers.types import ExecSpec


class ExecInstance:
    def __init__(
        self, exec_id: str, container_id: str, spec: ExecSpec, body: dict[str, Any]
    ) -> None:
        self.id = exec_id
        self.container_id = container_id
        self.spec = spec
        self.attach_stdin = bool(body.get("AttachStdin"))
        self.attach_stdout = bool(body.get("AttachStdout"))
        self.attach_stderr = bool(body.get("AttachStderr"))
        self.detach_keys = str(body.get("DetachKeys") or "")
        self.size = _size(body.get("ConsoleSize"), "ConsoleSize")
        self.started = False
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.session: ExecSession | None = None

    def inspect(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.spec.tty,
                "entrypoint": self.spec.command[0],
                "arguments": self.spec.command[1:],
                "privileged": self.spec.privileged,
                "user": self.spec.user,
            },
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        }


EXECS: web.AppKey[dict[str, ExecInstance]] = web.AppKey("execs", dict)


def setup(app: web.Application) -> None:
    app[EXECS] = {}


def _size(value: object, name: str) -> tuple[int, int] | None:
    from capsa.errors import InvalidArgument

    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise InvalidArgument(f"invalid type for field {name}: expected [height, width]")
    return (value[0], value[1]) if value[0] and value[1] else None


async def create(request: web.Request) -> web.StreamResponse:
    from capsa.engine.containers.types import ExecSpec, State

    name = request.match_info["name"]
    body = await params.json_body(request)
    cmd = params.field(body, "Cmd", list)
    if not cmd or not all(isinstance(c, str) for c in cmd):
        from capsa.errors import InvalidArgument

        raise InvalidArgument("No exec command specified")
    env = params.field(body, "Env", list) or []
    spec = ExecSpec(
        command=list(cmd),
        tty=bool(params.field(body, "Tty", bool)),
        interactive=bool(params.field(body, "AttachStdin", bool)),
        env=[str(e) for e in env],
        user=params.field(body, "User", str) or "",
        workdir=params.field(body, "WorkingDir", str) or "",
        privileged=bool(params.field(body, "Privileged", bool)),
    )
    rec = await engines(request).call(lambda e: e.containers.get(name))
    if rec.state is State.PAUSED:
        raise Conflict(f"container {rec.id} is paused, unpause the container before exec")
    if rec.state is not State.RUNNING:
        raise Conflict(f"container {rec.id} is not running")
    instance = ExecInstance(secrets.token_hex(32), rec.id, spec, body)
    request.app[EXECS][instance.id] = instance
    return web.json_response({"Id": instance.id}, status=201)


def _instance(request: web.Request) -> ExecInstance:
    exec_id = request.match_info["id"]
    instance = request.app[EXECS].get(exec_id)
    if instance is None:
        raise NotFound(f"No such exec instance: {exec_id}")
    return instance


async def inspect(request: web.Request) -> web.StreamResponse:
    return web.json_response(_instance(request).inspect())


async def resize(request: web.Request) -> web.StreamResponse:
    instance = _instance(request)
    rows = params.query_int(request, "h", 0) or 0
    cols = params.query_int(request, "w", 0) or 0
    if instance.session is None or not instance.running:
        raise Conflict(f"exec {instance.id} is not running")
    instance.session.resize(rows, cols)
    return web.Response(status=200)


async def start(request: web.Request) -> web.StreamResponse:
    from capsa.engine.containers.types import ExecStdio

    instance = _instance(request)
    body = await params.json_body(request, required=False)
    detach = bool(params.field(body, "Detach", bool))
    size = _size(body.get("ConsoleSize"), "ConsoleSize") or instance.size
    if instance.started:
        raise Conflict(f"Error: Exec command {instance.id} has already run")
    instance.started = True
    spec = instance.spec
    ours: list[int] = []  # the server's ends
    theirs: list[int] = []  # the exec's ends, closed once it has them
    stdio = ExecStdio(rows=size[0] if size else 0, cols=size[1] if size else 0)
    attached = not detach and not spec.tty
    if attached and instance.attach_stdin:
        r, w = os.pipe()
        stdio.stdin = r
        ours.append(w)
        theirs.append(r)
    out_r = err_r = -1
    if attached and instance.attach_stdout:
        out_r, stdio.stdout = os.pipe()
        theirs.append(stdio.stdout)
    if attached and instance.attach_stderr:
        err_r, stdio.stderr = os.pipe()
        theirs.append(stdio.stderr)
    # Attached, the answer's headers go out first, the exec starts after: a client
    # that reads the headers through a buffer (docker-py) must not swallow output.
    response = client = None
    try:
        if not detach:
            response, client = await hijack(request, RAW if spec.tty else MULTIPLEXED)
        session = await engines(request).call(
            lambda e: e.containers.exec(instance.container_id, spec, stdio)
        )
    except Exception as e:
        for fd in (*ours, out_r, err_r):
            if fd >= 0:
                os.close(fd)
        if client is None or not isinstance(e, CapsaError):
            instance.started = False
            raise
        instance.exit_code = exec_exit_code(e)  # as the docker CLI reads it: 126, 127
        message = f"{e}\r\n" if spec.tty else f"{e}\n"
        data = message.encode()
        await client.write(data if spec.tty else frames.frame(frames.STDERR, data))
        client.close()
        assert response is not None
        return response
    finally:
        for fd in theirs:
            os.close(fd)
    assert session is not None  # the spec is never detached: the server waits for it
    instance.session, instance.pid, instance.running = session, session.pid, True
    ended = asyncio.ensure_future(_wait(request, instance, session))
    if client is None:  # detached
        for fd in (*ours, out_r, err_r):
            if fd >= 0:
                os.close(fd)
        return web.Response(status=200)
    assert response is not None
    try:
        if spec.tty:
            await _relay_terminal(client, session.master, instance)
        else:
            stdin_w = ours[0] if ours else -1
            await _relay_pipes(client, stdin_w, out_r, err_r)
        await asyncio.wait({ended}, timeout=None)
    finally:
        client.close()
    return response


async def _wait(request: web.Request, instance: ExecInstance, session: ExecSession) -> None:
    try:
        instance.exit_code = await engines(request).run(session.wait)
    finally:
        instance.running = False


# -- relays ----------------------------------------------------------------------------


async def _pump_in(client: RawStream, fd: int, close_at_end: bool = True) -> None:
    os.set_blocking(fd, False)
    try:
        while True:
            data = await client.read()
            if not data or not await write_fd(fd, data):
                return
    finally:
        if close_at_end:
            os.close(fd)


async def _relay_pipes(client: RawStream, stdin_w: int, out_r: int, err_r: int) -> None:
    outputs = [
        asyncio.ensure_future(pump_out(fd, kind, client))
        for fd, kind in ((out_r, frames.STDOUT), (err_r, frames.STDERR))
        if fd >= 0
    ]
    inbound = asyncio.ensure_future(_pump_in(client, stdin_w)) if stdin_w >= 0 else None
    try:
        if outputs:
            await asyncio.gather(*outputs)
    finally:
        for fd in (out_r, err_r):
            if fd >= 0:
                os.close(fd)
        if inbound is not None:
            inbound.cancel()
            await asyncio.gather(inbound, return_exceptions=True)


async def _relay_terminal(client: RawStream, master: int, instance: ExecInstance) -> None:
    """The terminal's bytes both ways, on a copy of the master (the session closes
    its own when the exec ends, maybe before the last output is read)."""
    fd = os.dup(master)
    inbound = (
        asyncio.ensure_future(_pump_in(client, fd, close_at_end=False))
        if instance.attach_stdin
        else None
    )
    try:
        await pump_out(fd, frames.STDOUT, client, framed=False)
    finally:
        if inbound is not None:
            inbound.cancel()
            await asyncio.gather(inbound, return_exceptions=True)
        os.close(fd)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/containers/{name}/exec", create),
        web.post("/exec/{id}/start", start),
        web.post("/exec/{id}/resize", resize),
        web.get("/exec/{id}/json", inspect),
    ]
