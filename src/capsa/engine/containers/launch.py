"""Starting a container's monitor, and the pipe it answers on (``ContainerService.start``).

The monitor is forked from the run root's monitor host when there is one (nothing
imported twice: ``monitor.client``), else from this process when it is single
threaded and the frontend's policy (``ServiceContext.monitor_start``) is ``fork``; a
server's policy is ``spawn``, and a threaded caller must not fork anyway: then
``python -m capsa.engine.monitor.setup`` starts in a fresh interpreter. For
``run``/``start -a`` the attach socket is made and connected here before the monitor
runs, so the client waits in the listen backlog instead of polling for the socket.
"""

from __future__ import annotations

import os
import sys
import time

from capsa import fastjson
from capsa.engine.monitor.args import MonitorArgs, dumps
from capsa.errors import CapsaError, Internal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.config import Settings
    from capsa.engine.containers.service import ContainerService
    from capsa.engine.containers.types import ContainerRecord


def _single_threaded() -> bool:
    import threading

    return threading.active_count() == 1


def _fork_monitor(args: MonitorArgs, log: int, keep: tuple[int, ...]) -> None:
    """Start the monitor by forking this (single-threaded) process: it already has the
    engine imported, which saves a fresh interpreter's start and imports. A threaded
    caller (the API server) must not fork; it spawns ``python -m capsa.engine.monitor.setup``."""
    if os.fork() == 0:
        from capsa.engine.monitor.client import run_monitor

        run_monitor(args, log, keep)


def _ask_host(settings: Settings, args: MonitorArgs, fds: dict[str, int], fork: bool) -> bool:
    """Have the run root's monitor host (see ``monitor.host``) fork the monitor; False
    when there is none. With ``fork`` a host is started (a fork of this process) if
    there is none; a server's policy starts none."""
    from capsa.engine.monitor import client as monitor_client

    linger = settings.monitor_linger
    try:
        monitor_client.spawn(settings.runroot, args, fds, linger, start_host=fork)
    except (OSError, Internal):
        return False
    return True


def _spawn_monitor(args: MonitorArgs, log: int, passed: tuple[int, ...]) -> None:
    import subprocess

    from capsa.engine import children

    children.reap()
    children.track(
        subprocess.Popen(
            [sys.executable, "-m", "capsa.engine.monitor.setup", dumps(args)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=passed,
            start_new_session=True,
            close_fds=True,
        )
    )


def _needs_netlink(mode: str) -> bool:
    return mode not in ("none", "host") and not mode.startswith("container:")


class Launch:
    """A monitor being started, and the pipe it reports readiness on."""

    def __init__(self, service: ContainerService, rec: ContainerRecord, wait_attach: bool):
        self.service = service
        self.rec = rec
        ctx = service.ctx
        r, w = os.pipe()
        paths = ctx.paths(rec.id)
        os.makedirs(paths.run, mode=0o700, exist_ok=True)
        self.client = -1
        listener = -1
        if wait_attach:
            # make the attach socket here and connect at once: no waiting for the
            # monitor to get there (the connection waits in the listen backlog)
            from capsa.engine.monitor.setup import listen

            listener = listen(paths.attach_socket)
            import socket

            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            from capsa.engine.containers.attach import connect_unix

            connect_unix(sock, paths.attach_socket)
            self.client = sock.detach()
        args = MonitorArgs(
            roots=ctx.roots(),
            id=rec.id,
            name=rec.name,
            ready_fd=w,
            listener_fd=listener,
            wait_attach=wait_attach,
            warm=["network"] if _needs_netlink(rec.spec.network_mode) else [],
        )
        fds = {"ready_fd": w, **({"listener_fd": listener} if listener >= 0 else {})}
        passed = tuple(fds.values())
        log = os.open(
            paths.monitor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        try:
            fork = ctx.monitor_start == "fork" and _single_threaded()
            if fork:
                ctx.close()  # nothing shared may cross the fork
            if not _ask_host(ctx.settings, args, fds, fork):
                # forked here, or (a server) a fresh interpreter: nothing of ours
                (_fork_monitor if fork else _spawn_monitor)(args, log, passed)
        finally:
            for fd in (*passed, log):
                os.close(fd)
        self.ready = r
        self.attach_socket = paths.attach_socket
        self.warnings: list[str] = []  # what the runtime could not enforce

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        import select

        ready, _, _ = select.select([self.ready], [], [], timeout)
        data = os.read(self.ready, 65536) if ready else b""
        os.close(self.ready)
        if not data:
            raise Internal(
                f"the monitor of {self.rec.name} exited without a word (see "
                f"{self.service.ctx.paths(self.rec.id).monitor_log})"
            )
        message: dict[str, Any] = fastjson.loads(data.splitlines()[0])
        self.warnings = list(message.get("warnings") or [])
        if "error" in message:
            from capsa import errors

            kind = getattr(errors, message.get("kind", ""), None)
            if not (isinstance(kind, type) and issubclass(kind, CapsaError)):
                kind = errors.FailedPrecondition
            raise kind(message["error"])
        return message

    def connect(self, timeout: float = 30.0) -> int:
        """The attach connection: made at launch for ``wait_attach``, else now."""
        if self.client >= 0:
            return self.client
        import select
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.attach_socket):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    from capsa.engine.containers.attach import connect_unix

                    connect_unix(sock, self.attach_socket)
                    return sock.detach()
                except OSError:
                    sock.close()
            ready, _, _ = select.select([self.ready], [], [], 0.01)
            if ready:  # the monitor failed before listening
                self.wait_ready()
        raise Internal(f"the monitor of {self.rec.name} did not open its attach socket")
