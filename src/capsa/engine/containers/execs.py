"""``exec``: another process in a running container, from the container's own process
spec (env, capabilities, user) with the exec's overrides, in the foreground."""

from __future__ import annotations

import json
import os

from capsa.engine.containers.exec_watch import ExecSession, watch
from capsa.engine.containers.types import Action, ExecSpec, ExecStdio, check
from capsa.errors import InvalidArgument
from capsa.oci.codec import from_dict
from capsa.oci.runtime_spec import Capabilities, ConsoleSize, Process, User

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.backend import Created
    from capsa.engine.containers.service import ContainerService


def exec_process_spec(service: ContainerService, container_id: str, spec: ExecSpec) -> Process:
    from capsa.engine.containers import users
    from capsa.engine.containers.specgen import capabilities

    paths = service.ctx.paths(container_id)
    try:
        with open(os.path.join(paths.bundle, "config.json")) as f:
            base = from_dict(Process, json.load(f)["process"], "process")
    except (OSError, KeyError, ValueError):
        raise InvalidArgument(f"container {container_id[:12]} has no process spec") from None
    rec = service.ctx.store.get(container_id)
    env = dict(e.partition("=")[::2] for e in base.env or [])
    for item in spec.env:
        key, _, value = item.partition("=")
        env[key] = value
    user = base.user
    if spec.user:
        uid, gid, gids = users.resolve(paths.rootfs, spec.user, [])
        user = User(uid=uid, gid=gid, additional_gids=gids or None)
    caps = base.capabilities
    if spec.privileged:
        rec.spec.privileged = True
        every = capabilities(rec.spec)
        caps = Capabilities(bounding=every, effective=every, permitted=every)
    return Process(
        args=list(spec.command),
        env=[f"{k}={v}" for k, v in env.items()],
        cwd=spec.workdir or base.cwd,
        terminal=spec.tty,
        user=user,
        capabilities=caps,
        rlimits=base.rlimits,
        no_new_privileges=base.no_new_privileges,
    )


def start_exec(
    service: ContainerService, text: str, spec: ExecSpec, stdio: ExecStdio
) -> ExecSession | None:
    """Start the exec with the caller's ``stdio`` fds; its session (None with ``detach``:
    nobody waits, the exec's end is still an ``exec_die`` event)."""
    from capsa.engine.backend import Stdio

    rec = service.get(text)
    check(Action.EXEC, rec.state, rec.name, rec.id)
    process = exec_process_spec(service, rec.id, spec)
    if spec.tty and stdio.rows and stdio.cols:
        process.console_size = ConsoleSize(height=stdio.rows, width=stdio.cols)
    event = _ExecEvents(service, rec.id, {"name": rec.name, "image": rec.image_name}, spec)
    event.emit("exec_create")

    def start() -> Created:
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            fds = Stdio(
                stdin=stdio.stdin if stdio.stdin >= 0 and spec.interactive else devnull,
                stdout=stdio.stdout if stdio.stdout >= 0 and not spec.detach else devnull,
                stderr=stdio.stderr if stdio.stderr >= 0 and not spec.detach else devnull,
                terminal=spec.tty,
            )
            event.emit("exec_start")
            return service.ctx.backend(rec.spec.runtime).exec(rec.id, process, fds, spec.detach)
        finally:
            os.close(devnull)

    session = watch(start, lambda code: event.emit("exec_die", exitCode=str(code)), spec.detach)
    if spec.detach:
        session.close()
        return None
    return session


class _ExecEvents:
    """Docker's events of one exec: ``exec_create: CMD``, ``exec_start: CMD`` and
    ``exec_die`` (with ``exitCode``), each naming the exec by its ``execID``."""

    def __init__(
        self, service: ContainerService, container_id: str, attrs: dict[str, str], spec: ExecSpec
    ) -> None:
        self.log = service.ctx.events
        self.container_id = container_id
        self.attrs = {**attrs, "execID": os.urandom(32).hex()}
        self.command = " ".join(spec.command)

    def emit(self, action: str, **extra: str) -> None:
        name = action if action == "exec_die" else f"{action}: {self.command}"
        self.log.emit("container", name, self.container_id, {**self.attrs, **extra})
