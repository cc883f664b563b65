"""A container's monitor: ``python -m capsa.engine.monitor.setup ARGS_JSON``.

One monitor per container, started detached (its own session) by ``capsa start`` or
``run``, so containers outlive the CLI. It runs in two phases that replace each other
with ``execv`` (same pid, so the container stays its child):

- this module, *setup*: mount the rootfs, write the bundle, create and start the
  container through the runtime backend, report to whoever started it, then exec the
  lean supervision loop (``capsa.engine.monitor.loop``), which holds only stdio,
  logs and the attach socket in memory while the container runs;
- this module again, *finish* (``FinishArgs``): record the exit status and OOM
  kill, delete the runtime container, unmount, tell attached clients the exit code,
  then apply the restart policy (back to setup) or ``--rm``.

Each phase's arguments are a record of ``capsa.engine.monitor.args`` (``ARGS_JSON`` is
its ``dumps``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from capsa.engine.containers import attach
from capsa.engine.containers.types import ContainerRecord, State
from capsa.engine.monitor.args import (
    FinishArgs,
    HealthArgs,
    LoopArgs,
    LoopResult,
    MonitorArgs,
    loads,
    monitor_of,
)
from capsa.errors import CapsaError, CommandNotFound, CommandNotRunnable, FailedPrecondition
from capsa.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.containers.paths import ContainerPaths
    from capsa.engine.monitor.loop import Loop
    from capsa.engine.service_context import ServiceContext


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


HANDOFF_AFTER = 3.0  # seconds a container runs before its monitor hands it over


def _exit_code_for(err: BaseException) -> int:
    """The container's ExitCode after a failed start, as dockerd records it."""
    if isinstance(err, CommandNotFound):
        return 127
    if isinstance(err, CommandNotRunnable):
        return 126
    return 125


class Setup:
    def __init__(self, args: MonitorArgs) -> None:
        from capsa.engine.service_context import ServiceContext

        self.args = args
        self.ctx: ServiceContext = ServiceContext.from_roots(args.roots)
        self.rec: ContainerRecord = self.ctx.store.get(args.id)
        self.paths: ContainerPaths = self.ctx.paths(self.rec.id)
        self.clients: list[int] = list(args.clients)
        self.wants: dict[str, dict[str, Any]] = {}

    def report(self, message: dict[str, Any]) -> None:
        fd = self.args.ready_fd
        if fd >= 0:
            try:
                os.write(fd, json.dumps(message).encode() + b"\n")
                os.close(fd)
            except OSError:
                pass
            self.args = replace(self.args, ready_fd=-1)

    def start(self) -> FinishArgs | None:
        """Create and start the container and supervise it. A short-lived container is
        supervised right here (its exit goes straight to the finish phase, returned); a
        container still running after HANDOFF_AFTER seconds is handed over, so idle
        containers cost little memory: to the monitor host that forked this monitor
        (this process then becomes the container's shim: it never returns), or else to
        a fresh, lean process (``exec``)."""
        from capsa.cleanup import CleanupStack
        from capsa.engine.monitor.loop import Loop, exec_module

        with CleanupStack() as cleanup:
            launch, warnings = self._launch(cleanup)
            cleanup.release()
        self.report({"ok": True, "pid": launch.pid, "warnings": warnings})
        loop = Loop(launch)
        self._tell_host("standby", *loop.standby())
        result = loop.run(until=time.monotonic() + HANDOFF_AFTER)
        # a healthcheck in flight, or input on its way in, stays here until done
        while result is None and (loop.probing or not loop.movable()):
            result = loop.run(until=time.monotonic() + 0.2)
        if result is None:
            self._hand_to_host(loop)  # returns only if there is no host to take it
            exec_module("capsa.engine.monitor.loop", loop.handoff_args())
        self._tell_host("exited", result or LoopResult(), [])
        loop.close()
        return loop.finish_args(result or LoopResult())

    def _tell_host(self, op: str, args: LoopArgs | LoopResult, fds: list[int]) -> None:
        """Keep the monitor host (our parent) informed, so that it can take over if this
        process is killed: the loop's copy ("standby"), then how the container ended
        ("exited"). The host is a subreaper: the container's init becomes its child."""
        host = self.args.host_fd
        if host >= 0:
            from capsa.engine.monitor import client as monitor_client

            monitor_client.tell(host, op, args, fds)

    def _hand_to_host(self, loop: Loop) -> None:
        """Give the running container to the monitor host, then become the container's
        shim (``capsa.engine.monitor.shim``): the init stays this process's child, so its
        exit status and output outlive any supervisor. The host is our parent, or else
        (a monitor the API server spawned) the run root's host, started if need be.
        Never returns once the host has the loop; returns if no host takes it."""
        from capsa.engine.monitor import client as monitor_client
        from capsa.engine.monitor import shim as monitor_shim
        from capsa.linux.proc import start_time

        host = self.args.host_fd
        conn = None
        if host < 0:
            linger = self.ctx.settings.monitor_linger
            self.ctx.close()  # a host started from here must not inherit the databases
            conn = monitor_client.connect_host(self.args.roots.runroot, linger)
            if conn is None:
                return
            host = conn.fileno()
        fds = monitor_shim.prepare(self.paths.run)
        loop.notify = fds.notify_read
        standby, kept = loop.standby()
        monitor_shim.write_record(self.paths.run, standby, fds)
        me = os.getpid()
        args = replace(loop.handoff_args(), shim=me, shim_start=start_time(me) or 0)
        if not monitor_client.tell(host, "adopt", args, loop.handoff_fds()):
            loop.notify = -1
            monitor_shim.discard(self.paths.run, fds)
            return
        self.ctx.close()
        title = f"{monitor_shim.TITLE} {self.rec.name}"
        monitor_shim.become(fds, loop.pid, title, kept)
        from capsa.linux.shim import hold  # no shim program could start: be it here

        hold(loop.pid, fds.status, fds.notify_write)

    def _launch(self, cleanup: Any) -> tuple[LoopArgs, list[str]]:
        """Create and start the container: its loop's arguments, and what the runtime
        could not enforce."""
        from capsa.engine.containers import bundle

        rec, ctx = self.rec, self.ctx
        try:  # a fresh start: the previous run's health does not carry over
            os.unlink(os.path.join(self.paths.run, "health.json"))
        except FileNotFoundError:
            pass
        from capsa.engine.containers import netwire

        bundle.build(
            rec,
            self.paths,
            ctx.content,
            ctx.snapshots,
            ctx.volumes,
            cleanup,
            netwire.dns_servers(ctx, rec.spec),
            _shared_namespaces(ctx, rec),
        )
        backend = ctx.backend(rec.spec.runtime)
        stdio, ours = _stdio(rec.spec.tty, rec.spec.stdin_open)
        created = backend.create(rec.id, self.paths.bundle, stdio)
        cleanup.push(backend.delete, rec.id, True)
        endpoints = netwire.attach(ctx, rec, created.pid)
        if endpoints:
            cleanup.push(netwire.detach, ctx, rec.id)
            netwire.add_own_address(self.paths, rec.spec.hostname or rec.id[:12], endpoints)
        for fd in (stdio.stdin, stdio.stdout, stdio.stderr):
            if fd > 2:
                os.close(fd)
        if created.master >= 0:
            ours = {"master": created.master}
        listener = self.args.listener_fd
        self.args = replace(self.args, listener_fd=-1)  # the loop's now
        if listener < 0:
            listener = listen(self.paths.attach_socket)
        if self.args.wait_attach:
            fd, wants = _accept_one(listener, timeout=30.0)
            self.clients.append(fd)
            self.wants[str(fd)] = wants
            size = wants.get("size")
            if created.master >= 0 and isinstance(size, list) and len(size) == 2:
                attach.set_size(created.master, int(size[0]), int(size[1]))
        if ctx.store.get(rec.id).stopped_by_user:  # stopped while it was being restarted
            raise FailedPrecondition(f"container {rec.name} was stopped")
        backend.start(rec.id)
        from capsa.linux.proc import start_time

        started = now_rfc3339()
        ctx.store.update(
            rec.id,
            State.RUNNING,
            pid=created.pid,
            pid_start=start_time(created.pid) or 0,
            started_at=started,
            monitor_pid=os.getpid(),
            monitor_start=start_time(os.getpid()) or 0,
            error="",
            stopped_by_user=False,
            oom_killed=False,
        )
        ctx.events.emit("container", "start", rec.id, {"name": rec.name, "image": rec.image_name})
        warnings = list(created.warnings or [])
        for warning in warnings:
            _log_monitor(self.paths, f"warning: {warning}")
        # what the setup phase used up stays here: the loop has its own fds and clients
        monitor = replace(self.args, name=rec.name, ready_fd=-1, wait_attach=False, clients=[])
        loop = LoopArgs(
            monitor=monitor,
            pid=created.pid,
            log=self.paths.log,
            runtime_root=ctx.runtime_root,
            runtime_name=rec.spec.runtime,
            tty=rec.spec.tty,
            started=time.time(),
            log_opts=dict(rec.spec.log_opts),
            health=_health_args(rec, ctx),
            master=ours.get("master", -1),
            stdin=ours.get("stdin", -1),
            stdout=ours.get("stdout", -1),
            stderr=ours.get("stderr", -1),
            listener=listener,
            clients=self.clients,
            wants=self.wants,
        )
        return loop, warnings

    def fail(self, err: BaseException) -> None:
        message = str(err) if isinstance(err, CapsaError) else f"{type(err).__name__}: {err}"
        code = _exit_code_for(err)
        try:
            self.ctx.store.update(
                self.rec.id,
                State.EXITED if self.rec.started_at else State.CREATED,
                error=message,
                exit_code=code,
            )
        except CapsaError:
            pass
        self.report({"error": message, "kind": type(err).__name__, "exit_code": code})
        for fd in self.clients:
            _send(fd, attach.frame(attach.ERROR, message.encode()))
            _send(fd, attach.exit_frame(code))


def _shared_namespaces(ctx: ServiceContext, rec: ContainerRecord) -> dict[str, str]:
    """--pid/--ipc/--network container:NAME: the other container's namespaces."""
    from capsa.engine.containers.types import is_live

    out = {}
    modes = {
        "pid": rec.spec.pid_mode,
        "ipc": rec.spec.ipc_mode,
        "network": rec.spec.network_mode,
        "uts": rec.spec.uts_mode,
    }
    names = {"pid": "pid", "ipc": "ipc", "network": "net", "uts": "uts"}
    for kind, mode in modes.items():
        if not mode.startswith("container:"):
            continue
        other = ctx.store.find(mode.partition(":")[2])
        if is_live(other.state) and other.pid:
            out[kind] = f"/proc/{other.pid}/ns/{names[kind]}"
    return out


def _health_args(rec: ContainerRecord, ctx: ServiceContext) -> HealthArgs | None:
    from capsa.engine.containers.healthspec import effective

    cfg = effective(rec, ctx.content)
    return None if cfg is None else HealthArgs(**cfg)


def _stdio(tty: bool, stdin_open: bool) -> tuple[Any, dict[str, int]]:
    from capsa.engine.backend import Stdio

    if tty:
        return Stdio(terminal=True), {}
    if stdin_open:
        in_r, in_w = os.pipe()
    else:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY), -1
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    for fd in (in_w, out_r, err_r):
        if fd >= 0:
            os.set_inheritable(fd, False)
    return Stdio(stdin=in_r, stdout=out_w, stderr=err_w), {
        "stdin": in_w,
        "stdout": out_r,
        "stderr": err_r,
    }


def listen(path: str) -> int:
    import socket

    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    attach.bind_unix(sock, path)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock.detach()


def _accept_one(listener: int, timeout: float) -> tuple[int, dict[str, bool]]:
    """The client `run` attaches before the start, with the streams it asked for."""
    import select
    import socket

    ready, _, _ = select.select([listener], [], [], timeout)
    if not ready:
        raise CapsaError("no client attached in time")
    sock = socket.socket(fileno=os.dup(listener))
    conn, _ = sock.accept()
    sock.close()
    conn.settimeout(timeout)
    reader = attach.FrameReader()
    frames: list[tuple[int, bytes]] = []
    while not frames:
        data = conn.recv(4096)
        if not data:
            raise CapsaError("the attached client went away")
        frames = reader.feed(data)
    kind, payload = frames[0]
    wants = json.loads(payload) if kind == attach.HELLO else {}
    conn.setblocking(True)
    return conn.detach(), wants


def _send(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:
        pass


def _log_monitor(paths: ContainerPaths, line: str) -> None:
    try:
        with open(paths.monitor_log, "a") as f:
            f.write(f"{now_rfc3339()} {line}\n")
    except OSError:
        pass


def unknown_exit(result: LoopResult) -> str:
    """State.Error of a container whose end nobody saw (see ``capsa.engine.containers.restore``)."""
    why = result.unknown_why or "its monitor was killed and the process was not ours to reap"
    return f"exit status unknown: {why}"


def _code_text(code: int | None) -> str:
    return "unknown" if code is None else str(code)


class Finish(Setup):
    """The container's init exited: record it, clean up, restart or remove."""

    def __init__(self, args: FinishArgs) -> None:
        super().__init__(args.monitor)
        self.finish = args
        self.clients = list(args.clients)

    def run(self) -> MonitorArgs | None:
        """Record the exit; return the setup arguments when the policy restarts."""
        args, result = self.finish, self.finish.result
        code = result.exit_code
        from capsa.engine.monitor import shim as monitor_shim

        claim = monitor_shim.claim(self.paths.run)  # no new host adopts it meanwhile
        oom = self._oom_killed()
        backend = self.ctx.backend(self.rec.spec.runtime)
        backend.delete(self.rec.id, True)
        from capsa.engine.containers import netwire

        # a lingering monitor host takes idle networks down when it exits
        netwire.detach(self.ctx, self.rec.id, keep_idle=self.args.host_linger > 0)
        from capsa.linux.mount import unmount

        try:
            unmount(self.paths.rootfs, detach=True)
        except OSError:
            pass
        self._release_volumes()
        rec = self.ctx.store.get(self.rec.id)
        ran_for = time.time() - (args.started or time.time())
        restart, delay = self._restart_decision(rec, code, ran_for)
        state = State.RESTARTING if restart else State.EXITED
        from capsa.linux.proc import start_time

        me = os.getpid()
        self.ctx.store.update(
            rec.id,
            state,
            exit_code=code,
            error=unknown_exit(result) if code is None else "",
            oom_killed=oom,
            finished_at=now_rfc3339(),
            pid=0,
            restart_count=rec.restart_count + (1 if restart else 0),
            monitor_pid=me,  # this process answers for it now, not the shim
            monitor_start=start_time(me) or 0,
        )
        monitor_shim.release(self.paths.run, claim, args.shim, args.shim_start)  # it may go
        self.ctx.events.emit("container", "oom", rec.id, {"name": rec.name}) if oom else None
        attrs = {"name": rec.name, "image": rec.image_name, "exitCode": _code_text(code)}
        self.ctx.events.emit("container", "die", rec.id, attrs)
        if restart:
            self._wait(delay)
            rec = self.ctx.store.get(rec.id)
            if not rec.stopped_by_user:  # the same monitor, no launcher waiting
                return replace(self.args, ready_fd=-1, listener_fd=-1, clients=self.clients)
            self.ctx.store.update(rec.id, State.EXITED)
        try:
            rec = self.ctx.store.get(rec.id)
            if rec.spec.auto_remove and not rec.restarting:  # gone before `run --rm` returns
                from capsa.engine.containers.removal import remove_container

                remove_container(self.ctx, rec, volumes=True)
            else:
                self.release()
        finally:
            for fd in self.clients:
                if code is None:
                    _send(fd, attach.frame(attach.ERROR, unknown_exit(result).encode()))
                else:
                    _send(fd, attach.exit_frame(code))
                os.close(fd)
        return None

    def release(self) -> None:
        """Nobody monitors the container any more (the host lives on: say so)."""
        try:
            self.ctx.store.update(self.rec.id, monitor_pid=0, monitor_start=0)
        except CapsaError:
            pass

    def _oom_killed(self) -> bool:
        try:
            from capsa.runtime.cgroup import open_cgroup

            cgroup = open_cgroup(f"/capsa-{self.rec.id}")
            return cgroup.exists() and cgroup.oom_kill_count() > 0
        except Exception:
            return False

    def _release_volumes(self) -> None:
        for m in self.rec.spec.mounts:
            if m.type == "volume" and m.source:
                try:
                    self.ctx.volumes.release(m.source, self.rec.id)
                except CapsaError:
                    pass

    def _restart_decision(
        self,
        rec: ContainerRecord,
        code: int | None,
        ran_for: float,
    ) -> tuple[bool, float]:
        from capsa.engine.containers.restart import RestartManager
        from capsa.syntax.policies import parse_restart

        manager = RestartManager(parse_restart(rec.spec.restart), rec.restart_count)
        result = self.finish.result
        if result.health_restart:
            return True, 0.1
        stopped = rec.stopped_by_user or result.health_stop
        restart, _ = manager.should_restart(code, stopped, ran_for)
        # the back-off lives in this monitor across restarts: 100 ms doubling to a
        # minute, back to 100 ms after a run of 10 s or more
        previous = self.args.backoff
        delay = 0.1 if ran_for >= 10 or not previous else min(previous * 2, 60.0)
        self.args = replace(self.args, backoff=delay)
        return restart, delay

    def _wait(self, delay: float) -> None:
        deadline = time.time() + delay
        while time.time() < deadline:
            if self.ctx.store.get(self.rec.id).stopped_by_user:
                return
            time.sleep(min(0.1, max(0.0, deadline - time.time())))


# What a monitor imports while it sets up, supervises and finishes a container, by need:
# the monitor host imports these once so that the monitors it forks start ready.
_WARM = {
    "monitor": (
        "capsa.cleanup",
        "capsa.engine.backend",
        "capsa.engine.containers.bundle",
        "capsa.engine.containers.healthspec",
        "capsa.engine.monitor.loop",
        "capsa.engine.containers.netwire",
        "capsa.engine.network.service",
        "capsa.engine.containers.removal",
        "capsa.engine.containers.restart",
        "capsa.syntax.policies",
        "capsa.engine.volumes.service",
        "capsa.linux.seccomp",
        "capsa.oci.seccomp_default",
        "capsa.runtime.create",
        "capsa.runtime.cgroup",
        "capsa.cgroups.manager",
        "capsa.cgroups.v1",
        "capsa.cgroups.unified",
        "capsa.cgroups.v2",
    ),
    "network": (
        "capsa.engine.network.firewall",
        "capsa.engine.network.nft",
        "pyroute2",
    ),
}


def warm(need: str) -> None:
    """Import what a monitor needs for ``need`` ("monitor", "network")."""
    import importlib

    for module in _WARM.get(need, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            pass


def main(argv: list[str]) -> int:
    """``python -m capsa.engine.monitor.setup ARGS_JSON`` (``args.dumps``)."""
    args = loads(argv[1])
    if isinstance(args, LoopArgs):
        raise SystemExit("monitor: loop arguments are for capsa.engine.monitor.loop")
    return run(args)


def run(first: MonitorArgs | FinishArgs) -> int:
    """Be a container's monitor from ``first`` on, through its restarts: the exit code."""
    _process_setup(monitor_of(first))
    args: MonitorArgs | FinishArgs | None = first
    while args is not None:
        runner: Setup = Finish(args) if isinstance(args, FinishArgs) else Setup(args)
        try:
            args = runner.run() if isinstance(runner, Finish) else runner.start()
        except BaseException as e:
            if isinstance(runner, Finish):
                _log_monitor(runner.paths, f"finish failed: {e!r}")
                runner.release()
            else:
                runner.fail(e)
            return 1
        finally:
            runner.ctx.close()
    return 0


def _process_setup(args: MonitorArgs) -> None:
    from capsa.linux import syscalls as sc

    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from capsa.linux.proc import set_title

    set_title(f"capsa-monitor {args.name or args.id[:12]}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
