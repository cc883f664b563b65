"""The monitor's supervision loop (see ``capsa.engine.monitor``).

Single-threaded and lean on purpose: it imports only what it runs while the
container lives (stdio relay, json-file logs, the attach socket, healthchecks through
``capsa-runtime exec``), because one of these runs per container. When the
container's init exits it execs the monitor's *finish* phase with the exit code.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

from capsa.engine import attach
from capsa.engine.logs import LogWriter, parse_log_opts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CHUNK = 65536


class Client:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader = attach.FrameReader()
        self.wants = {"stdin": False, "stdout": True, "stderr": True}
        self.greeted = False


class Loop:
    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.pid = int(args["pid"])
        self.tty = bool(args.get("tty"))
        self.master = int(args.get("master", -1))
        self.stdin = int(args.get("stdin", -1))
        self.outputs: dict[int, str] = {}
        if self.tty:
            self.outputs[self.master] = "stdout"
        else:
            self.outputs[int(args["stdout"])] = "stdout"
            self.outputs[int(args["stderr"])] = "stderr"
        for fd in self.outputs:
            os.set_blocking(fd, False)
        self.listener = int(args["listener"])
        self.clients: dict[int, Client] = {}
        for fd in args.get("clients", []):
            c = Client(fd)
            wants = (args.get("wants") or {}).get(str(fd))
            if wants is not None:  # greeted before the start (run's own client)
                c.wants.update(wants)
                c.greeted = True
            self.clients[fd] = c
        self.log = LogWriter(args["log"], parse_log_opts(args.get("log_opts") or {}))
        self.exit_code: int | None = None
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        self.health: Any = None
        if args.get("health"):
            from capsa.engine.health_runner import HealthRunner

            self.health = HealthRunner(args, self.pid)

    # -- I/O ------------------------------------------------------------------

    def _broadcast(self, stream: str, data: bytes) -> None:
        kind = attach.STDOUT if stream == "stdout" else attach.STDERR
        frame = attach.frame(kind, data)
        for c in list(self.clients.values()):
            if c.greeted and c.wants.get(stream):
                try:
                    os.write(c.fd, frame)
                except OSError:
                    self._drop(c)

    def _read_output(self, fd: int) -> bool:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError:  # EIO: the pty's other side is gone
            data = b""
        stream = self.outputs[fd]
        if not data:
            self.log.flush_partial()
            del self.outputs[fd]
            return False
        self.log.write(stream, data)
        self._broadcast(stream, data)
        return True

    def _accept(self) -> None:
        import socket

        sock = socket.socket(fileno=os.dup(self.listener))
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        finally:
            sock.close()
        fd = conn.detach()
        self.clients[fd] = Client(fd)

    def _client_input(self, c: Client) -> None:
        try:
            data = os.read(c.fd, _CHUNK)
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return
        for kind, payload in c.reader.feed(data):
            self._client_frame(c, kind, payload)

    def _client_frame(self, c: Client, kind: int, payload: bytes) -> None:
        if kind == attach.HELLO:
            c.wants.update(json.loads(payload or b"{}"))
            c.greeted = True
            size = c.wants.get("size")
            if self.tty and isinstance(size, list) and len(size) == 2:
                attach.set_size(self.master, int(size[0]), int(size[1]))
        elif kind == attach.STDIN and c.wants.get("stdin"):
            target = self.master if self.tty else self.stdin
            if target >= 0:
                try:
                    os.write(target, payload)
                except OSError:
                    pass
        elif kind == attach.STDIN_CLOSE and not self.tty and self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1
        elif kind == attach.RESIZE and self.tty:
            rows, cols = (int(x) for x in payload.split())
            import fcntl
            import struct
            import termios

            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _drop(self, c: Client) -> None:
        self.clients.pop(c.fd, None)
        try:
            os.close(c.fd)
        except OSError:
            pass

    # -- processes -------------------------------------------------------------

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                if self.exit_code < 0:
                    self.exit_code = 128 - self.exit_code
            elif self.health is not None:
                self.health.reaped(pid, status)

    # -- main loop ----------------------------------------------------------------

    def run(self, until: float | None = None) -> dict[str, Any] | None:
        """Relay until the init exits (the result), or until ``until`` (None: hand off)."""
        self._reap()
        while self.exit_code is None:
            if until is not None and time.monotonic() >= until:
                return None
            timeout = self._timeout()
            if until is not None:
                left = max(0.0, until - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
            self._step(timeout)
        deadline = time.monotonic() + 2.0  # drain what the container wrote before it died
        while self.outputs and time.monotonic() < deadline:
            self._step(0.05, draining=True)
        self.log.close()
        result: dict[str, Any] = {"exit_code": self.exit_code}
        if self.health is not None:
            result.update(self.health.finish())
        return result

    def _timeout(self) -> float | None:
        if self.health is None:
            return None
        return max(0.0, self.health.next_due() - time.time())

    def _step(self, timeout: float | None, draining: bool = False) -> None:
        fds = [*self.outputs, self.wake_r]
        if not draining:
            fds += [self.listener, *self.clients]
            if self.health is not None:
                fds += self.health.fds()
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            ready = []
        for fd in ready:
            if fd in self.outputs:
                self._read_output(fd)
            elif fd == self.wake_r:
                try:
                    os.read(self.wake_r, 512)
                except BlockingIOError:
                    pass
            elif fd == self.listener:
                self._accept()
            elif fd in self.clients:
                self._client_input(self.clients[fd])
            elif self.health is not None:
                self.health.readable(fd)
        self._reap()
        if self.health is not None and not draining:
            self.health.tick(time.time())

    def close(self) -> None:
        for fd in (self.master, self.stdin, self.listener):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        signal.set_wakeup_fd(-1)

    def finish_args(self, result: dict[str, Any]) -> dict[str, Any]:
        keep = ("id", "name", "root", "runroot", "config", "started", "backoff")
        finish = {k: v for k, v in self.args.items() if k in keep}
        finish.update(result, phase="finish", clients=list(self.clients))
        return finish

    def handoff_args(self) -> dict[str, Any]:
        """The loop's state for a fresh process (``exec`` of this module)."""
        self.log.flush_partial()
        self.log.close()
        args = dict(self.args)
        args["clients"] = list(self.clients)
        args["wants"] = {str(fd): c.wants for fd, c in self.clients.items() if c.greeted}
        for fd in [*self.clients, *self.outputs, self.master, self.stdin, self.listener]:
            if fd >= 0:
                os.set_inheritable(fd, True)
        return args


def exec_module(module: str, args: dict[str, Any]) -> None:
    for fd in args.get("clients") or []:
        os.set_inheritable(fd, True)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, json.dumps(args)])


def main(argv: list[str]) -> int:
    args: dict[str, Any] = json.loads(argv[1])
    loop = Loop(args)
    result = loop.run()
    assert result is not None
    loop.close()
    exec_module("capsa.engine.monitor", loop.finish_args(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
