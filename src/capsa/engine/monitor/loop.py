"""The monitor's supervision loop (see ``capsa.engine.monitor.setup``).

Single-threaded and lean on purpose: it imports only what it runs while the
container lives (stdio relay, json-file logs, the attach socket, healthchecks through
``capsa-runtime exec``). A ``Loop`` holds one container's supervision state and is
driven from outside: by ``Loop.run`` in a container's own monitor, or together with
other containers' loops by the monitor host (``capsa.engine.monitor.host``). When the
container's init exits, the loop drains its output and yields the *finish* arguments.
A loop starts from a ``LoopArgs`` (``capsa.engine.monitor.args``) and hands its state on
as one.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

from capsa.engine.containers import attach
from capsa.engine.containers.logs import LogWriter
from capsa.engine.monitor.args import LOOP_FDS, FinishArgs, LoopArgs, LoopResult
from capsa.record import replace
from capsa.syntax.policies import parse_log_opts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CHUNK = 65536


_PENDING_MAX = 1 << 20  # bytes of input held for a slow stdin


class Client:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader = attach.FrameReader()
        self.wants = {"stdin": False, "stdout": True, "stderr": True}
        self.greeted = False


class Loop:
    def __init__(self, args: LoopArgs) -> None:
        self.args = args  # as it started: its fds and clients are the attributes below
        self.pid = args.pid
        # the shim's notification pipe (``capsa.engine.monitor.shim``): once the
        # container is handed over, its exit status arrives here, not through waitpid
        self.notify = args.notify
        self.shim = args.shim
        self.shim_lost = False  # it died before the init: the host looks for the status
        self.tty = args.tty
        self.master = args.master
        self.stdin = args.stdin
        self.outputs: dict[int, str] = {}
        if self.tty:
            self.outputs[self.master] = "stdout"
        else:
            for stream, fd in (("stdout", args.stdout), ("stderr", args.stderr)):
                if fd >= 0:  # -1: closed by the container already
                    self.outputs[fd] = stream
        for fd in (*self.outputs, self.notify, self.stdin):
            if fd >= 0:
                os.set_blocking(fd, False)
        # the clients' input on its way to the container's stdin (or terminal): written
        # as the container reads it, never blocking the loop (which must keep reading
        # the container's output meanwhile, or a `cat` would wait on us and we on it)
        self.pending = bytearray()
        self.close_stdin = False  # once ``pending`` is written
        self.listener = args.listener
        self.clients: dict[int, Client] = {}
        for fd in args.clients:
            c = Client(fd)
            wants = args.wants.get(str(fd))
            if wants is not None:  # greeted before the start (run's own client)
                c.wants.update(wants)
                c.greeted = True
            self.clients[fd] = c
        self.log = LogWriter(args.log, parse_log_opts(args.log_opts))
        self.exit_code: int | None = None
        self.ended = False  # the init exited (exit_code None: nobody could know how)
        self.unknown_why = ""
        self.drain_until = 0.0
        self.health: Any = None
        if args.health is not None:
            from capsa.engine.containers.health_runner import HealthRunner

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
            if self._stdin_target() >= 0:
                self.pending += payload
                self.flush()
        elif kind == attach.STDIN_CLOSE and not self.tty and self.stdin >= 0:
            self.close_stdin = True
            self.flush()
        elif kind == attach.RESIZE and self.tty:
            rows, cols = (int(x) for x in payload.split())
            import fcntl
            import struct
            import termios

            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _stdin_target(self) -> int:
        return self.master if self.tty else self.stdin

    def write_fds(self) -> list[int]:
        """What to watch for room: the container's stdin while input waits for it."""
        target = self._stdin_target()
        return [target] if self.pending and target >= 0 and not self.draining else []

    def flush(self) -> None:
        """Write what input the container's stdin has room for; close it when asked
        and all is written."""
        target = self._stdin_target()
        while self.pending and target >= 0:
            try:
                written = os.write(target, self.pending)
            except BlockingIOError:
                break
            except OSError:  # nobody reads it any more: the input goes nowhere
                self.pending.clear()
                break
            del self.pending[:written]
        if self.close_stdin and not self.pending and self.stdin >= 0 and not self.tty:
            os.close(self.stdin)
            self.stdin = -1
            self.close_stdin = False

    def forget(self, fd: int) -> None:
        """Stop watching ``fd`` (an output or a client that failed)."""
        if fd in self.outputs:
            del self.outputs[fd]
        elif fd in self.clients:
            self._drop(self.clients[fd])

    def _drop(self, c: Client) -> None:
        self.clients.pop(c.fd, None)
        try:
            os.close(c.fd)
        except OSError:
            pass

    # -- processes -------------------------------------------------------------

    def reaped(self, pid: int, status: int) -> bool:
        """A child was reaped: the init (the container exited) or a health probe."""
        if pid == self.pid:
            if self.ended:  # the shim said so already
                return True
            code = os.waitstatus_to_exitcode(status)
            self._ended(128 - code if code < 0 else code)
            return True
        if self.probing and self.health.probe["pid"] == pid:
            self.health.reaped(pid, status)
            return True
        return False

    def _ended(self, code: int | None, why: str = "") -> None:
        self.ended, self.exit_code, self.unknown_why = True, code, why
        self.drain_until = time.monotonic() + 2.0  # what it wrote before it died
        self._close_notify()

    def ended_unknown(self, why: str) -> None:
        """The init is gone and nobody could learn how it ended (its shim was killed
        and the init was not ours to reap)."""
        if not self.ended:
            self._ended(None, why)

    def shim_status(self, status: int) -> None:
        """The raw wait status the shim reported (-1: the shim could not know it)."""
        if status < 0:
            self.ended_unknown("the container's init was not its shim's child")
        else:
            self.reaped(self.pid, status)

    def _read_notify(self) -> None:
        try:
            word = os.read(self.notify, 4)
        except BlockingIOError:
            return
        except OSError:
            word = b""
        if len(word) == 4:
            from capsa.linux.shim import read_status

            status = read_status(word)
            self.shim_status(-1 if status is None else status)
        else:  # the shim died without a word: its init is ours to reap, or lost
            self._close_notify()
            self.shim_lost = True

    def _close_notify(self) -> None:
        if self.notify >= 0:
            os.close(self.notify)
            self.notify = -1

    # -- driving ---------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self.ended

    @property
    def done(self) -> bool:
        """The init exited and its output is drained (or the drain timed out)."""
        return self.draining and (not self.outputs or time.monotonic() >= self.drain_until)

    @property
    def probing(self) -> bool:
        return self.health is not None and self.health.probe is not None

    def fds(self) -> list[int]:
        if self.draining:
            return list(self.outputs)
        # input piling up: stop reading the clients until the container catches up
        clients = list(self.clients) if len(self.pending) < _PENDING_MAX else []
        fds = [*self.outputs, self.listener, *clients]
        if self.notify >= 0:
            fds.append(self.notify)
        if self.health is not None:
            fds += self.health.fds()
        return fds

    def timeout(self) -> float | None:
        if self.draining:
            return max(0.0, self.drain_until - time.monotonic())
        if self.health is None:
            return None
        return max(0.0, self.health.next_due() - time.time())

    def readable(self, fd: int) -> None:
        if fd in self.outputs:
            self._read_output(fd)
        elif self.draining:
            return
        elif fd == self.notify:
            self._read_notify()
        elif fd == self.listener:
            self._accept()
        elif fd in self.clients:
            self._client_input(self.clients[fd])
        elif self.health is not None:
            self.health.readable(fd)

    def tick(self) -> None:
        if self.health is not None and not self.draining:
            self.health.tick(time.time())

    def result(self) -> LoopResult:
        self.log.close()
        unknown = self.ended and self.exit_code is None
        return LoopResult(
            exit_code=self.exit_code,
            unknown_why=self.unknown_why if unknown else "",
            health_restart=self.health is not None and self.health.restart,
            health_stop=self.health is not None and self.health.stop,
        )

    def run(self, until: float | None = None) -> LoopResult | None:
        """Relay until the init exits (the result), or until ``until`` (None: hand off)."""
        waker = Waker()
        try:
            waker.reap(self)
            while not self.done:
                if until is not None and not self.draining and time.monotonic() >= until:
                    return None
                timeout = self.timeout()
                if until is not None and not self.draining:
                    left = max(0.0, until - time.monotonic())
                    timeout = left if timeout is None else min(timeout, left)
                for fd in waker.select([*self.fds(), waker.fd], timeout, self.write_fds()):
                    if fd != waker.fd:
                        self.readable(fd)
                self.flush()
                waker.reap(self)
                self.tick()
            return self.result()
        finally:
            waker.close()

    def close(self) -> None:
        self._close_notify()
        for fd in (self.master, self.stdin, self.listener, *self.outputs):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def finish_args(self, result: LoopResult) -> FinishArgs:
        return FinishArgs(
            monitor=self.args.monitor,
            result=result,
            started=self.args.started,
            shim=self.args.shim,
            shim_start=self.args.shim_start,
            clients=list(self.clients),
        )

    def handoff_args(self) -> LoopArgs:
        """The loop's state for another process (``exec`` of this module, or the host)."""
        self.log.close()
        return self.snapshot()

    def _now(self) -> LoopArgs:
        """The loop's arguments as it is now (its fds, clients, output streams still
        open), for another process: the host channel stays with this one."""
        streams = {} if self.tty else {stream: fd for fd, stream in self.outputs.items()}
        return replace(
            self.args,
            monitor=replace(self.args.monitor, host_fd=-1),
            master=self.master,
            stdin=self.stdin,
            stdout=streams.get("stdout", -1),
            stderr=streams.get("stderr", -1),
            listener=self.listener,
            notify=self.notify,
            clients=list(self.clients),
            wants={str(fd): c.wants for fd, c in self.clients.items() if c.greeted},
        )

    def snapshot(self) -> LoopArgs:
        """The loop's state as arguments for a ``Loop`` in another process, or in this
        one after an ``exec`` (``capsa.engine.monitor.sleep``); its fds made inheritable.
        A partial line is logged as it is."""
        self.log.flush_partial()
        args = self._now()
        if self.health is not None:  # the next probe keeps its time
            args = replace(args, health_due=self.health.due)
        for fd in self.handoff_fds():
            os.set_inheritable(fd, True)
        return args

    def standby(self) -> tuple[LoopArgs, list[int]]:
        """A copy of this loop for a process that takes over if this one is killed (the
        monitor host for a monitor, the host's guardian for the host): its arguments and
        the fds to send, which the sender keeps using. Without stdin and clients: the
        container must see its stdin close, and a client its connection end, when this
        process closes them."""
        args = replace(self._now(), stdin=-1, notify=-1, clients=[], wants={})
        fds = (
            (args.master, args.listener) if self.tty else (args.stdout, args.stderr, args.listener)
        )
        return args, [fd for fd in fds if fd >= 0]

    def handoff_fds(self) -> list[int]:
        fds = [*self.clients, *self.outputs, self.master, self.stdin, self.listener, self.notify]
        return [fd for fd in fds if fd >= 0]

    def movable(self) -> bool:
        """Nothing in this process's memory that another would lose: no input waiting
        for the container's stdin, no client's frame read halfway (what is still in the
        sockets begins at a frame)."""
        return not self.pending and not any(c.reader.midframe for c in self.clients.values())

    def portable(self) -> bool:
        """All of this loop is in ``snapshot``: no exit being drained, no client attached
        (their half-read frames), no probe running."""
        return not (self.ended or self.clients or self.probing)

    def sleepable(self) -> bool:
        """Nothing of this loop needs an awake host but its fds becoming readable (and a
        shim keeps the exit status: a loop taken over from a killed monitor has none,
        and its init's exit comes as a SIGCHLD)."""
        return self.portable() and self.notify >= 0

    def sleep_fds(self) -> list[int]:
        """What wakes a sleeping host for this loop: output, attach, the shim's word."""
        return [*self.outputs, self.listener, self.notify]


def remap_fds(args: LoopArgs, moved: dict[int, int]) -> LoopArgs:
    """``args`` of a loop whose fds arrived in another process under new numbers."""
    fds = {key: getattr(args, key) for key in LOOP_FDS}
    return replace(
        args,
        **{key: moved[fd] for key, fd in fds.items() if fd >= 0},
        clients=[moved[fd] for fd in args.clients],
        wants={str(moved[int(fd)]): w for fd, w in args.wants.items()},
    )


class Waker:
    """SIGCHLD (and SIGTERM, ignored) wake ``select`` through a pipe; reaps children."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)
        signal.set_wakeup_fd(self._w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)

    def select(
        self, fds: list[int], timeout: float | None, writes: list[int] | None = None
    ) -> list[int]:
        """The readable (or hung-up) ones of ``fds``, waiting also for room in
        ``writes`` (the caller then writes what it can): poll, as a host watches
        hundreds of containers and select() cannot see an fd numbered 1024 or more."""
        poller = select.poll()
        masks = dict.fromkeys(fds, select.POLLIN)
        for fd in writes or ():
            masks[fd] = masks.get(fd, 0) | select.POLLOUT
        for fd, mask in masks.items():
            poller.register(fd, mask)
        try:
            events = poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999)))
        except InterruptedError:
            return []
        wanted = set(fds)
        ready = [fd for fd, ev in events if fd in wanted and ev & ~select.POLLOUT]
        if self.fd in ready:
            try:
                os.read(self.fd, 512)
            except BlockingIOError:
                pass
        return ready

    def reap(self, *loops: Loop) -> list[tuple[int, int]]:
        """Reap every exited child; the ones no loop claimed are returned."""
        unclaimed = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if not any(loop.reaped(pid, status) for loop in loops):
                unclaimed.append((pid, status))
        return unclaimed

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        for fd in (self.fd, self._w):
            os.close(fd)

    @staticmethod
    def forget() -> None:
        """In a process forked from one with a waker: signals as Python sets them up
        (the pipe's fds are closed with the rest of the inherited ones)."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exec_module(module: str, args: LoopArgs | FinishArgs) -> None:
    """Exec ``python -m module`` with ``args`` (``args.dumps``), its clients inherited."""
    from capsa.engine.monitor.args import dumps

    for fd in args.clients:
        os.set_inheritable(fd, True)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, dumps(args)])


def main(argv: list[str]) -> int:
    """``python -m capsa.engine.monitor.loop ARGS_JSON``: a monitor that handed over to a
    lean process of itself (no host took its container)."""
    from capsa.engine.monitor.args import loads

    args = loads(argv[1])
    if not isinstance(args, LoopArgs):
        raise SystemExit("monitor loop: expected a loop's arguments")
    loop = Loop(args)
    result = loop.run()
    assert result is not None
    loop.close()
    exec_module("capsa.engine.monitor.setup", loop.finish_args(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
