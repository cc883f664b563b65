"""``exec``: another process in a running container, from the container's own process
spec (env, capabilities, user) with the exec's overrides, in the foreground."""

from __future__ import annotations

import json
import os

from capsa.engine.containers.exec_watch import ExecSession, watch
from capsa.engine.containers.types import Action, ExecSpec, ExecStdio, check
from capsa.errors import InvalidArgument
from capsa.oci.codec import from_dict, to_dict
from capsa.oci.runtime_spec import Capabilities, ConsoleSize, Process, User
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from capsa.engine.backend import Created
    from capsa.engine.containers.service import ContainerService
    from capsa.engine.service_context import ServiceContext
    from capsa.engine.system.events import EventLog


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
    nobody waits, the exec's end is still an ``exec_die`` event).

    The watcher is forked from this process (a command line), or by the ``spawn``
    policy a fresh interpreter (a server, whose threads a fork must not copy)."""
    rec = service.get(text)
    check(Action.EXEC, rec.state, rec.name, rec.id)
    process = exec_process_spec(service, rec.id, spec)
    if spec.tty and stdio.rows and stdio.cols:
        process.console_size = ConsoleSize(height=stdio.rows, width=stdio.cols)
    plan = ExecPlan(
        container_id=rec.id,
        runtime=rec.spec.runtime,
        process=to_dict(process),
        stdin=stdio.stdin if spec.interactive else -1,
        stdout=-1 if spec.detach else stdio.stdout,
        stderr=-1 if spec.detach else stdio.stderr,
        terminal=spec.tty,
        detach=spec.detach,
        attrs={"name": rec.name, "image": rec.image_name, "execID": os.urandom(32).hex()},
        command=" ".join(spec.command),
    )
    ctx = service.ctx
    emit(ctx.events, plan, "exec_create")
    if ctx.monitor_start == "spawn":
        from capsa.engine.containers.exec_watch import spawn_watch

        session = spawn_watch(
            {**ctx.monitor_args(), "plan": to_dict(plan)}, plan.fds(), plan.detach
        )
    else:
        start, died = plan_steps(ctx, plan)
        session = watch(start, died, plan.detach)
    if spec.detach:
        session.close()
        return None
    return session


@record
class ExecPlan:
    """What a watcher needs to start an exec, as plain data (a spawned watcher gets it
    as JSON, with the stdio fds at the same numbers)."""

    container_id: str
    runtime: str
    process: dict[str, Any]
    stdin: int = -1
    stdout: int = -1
    stderr: int = -1
    terminal: bool = False
    detach: bool = False
    attrs: dict[str, str] = field(default_factory=dict)
    command: str = ""

    def fds(self) -> list[int]:
        return [fd for fd in (self.stdin, self.stdout, self.stderr) if fd >= 0]


def emit(log: EventLog, plan: ExecPlan, action: str, **extra: str) -> None:
    """Docker's events of one exec: ``exec_create: CMD``, ``exec_start: CMD`` and
    ``exec_die`` (with ``exitCode``), each naming the exec by its ``execID``."""
    name = action if action == "exec_die" else f"{action}: {plan.command}"
    log.emit("container", name, plan.container_id, {**plan.attrs, **extra})


def plan_steps(
    ctx: ServiceContext, plan: ExecPlan
) -> tuple[Callable[[], Created], Callable[[int], None]]:
    """The watcher's two steps: start the exec, and say how it ended."""
    from capsa.engine.backend import Stdio

    def start() -> Created:
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            fds = Stdio(
                stdin=plan.stdin if plan.stdin >= 0 else devnull,
                stdout=plan.stdout if plan.stdout >= 0 else devnull,
                stderr=plan.stderr if plan.stderr >= 0 else devnull,
                terminal=plan.terminal,
            )
            emit(ctx.events, plan, "exec_start")
            process = from_dict(Process, plan.process)
            return ctx.backend(plan.runtime).exec(plan.container_id, process, fds, plan.detach)
        finally:
            os.close(devnull)

    def died(code: int) -> None:
        emit(ctx.events, plan, "exec_die", exitCode=str(code))

    return start, died
