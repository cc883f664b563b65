"""The monitor host: one process that supervises the running containers of a run root.

Every container still gets a monitor of its own for the work that needs the engine
(creating the container, recording its exit, restarting it: ``capsa.engine.monitor``),
but the host forks those monitors, and once a container has run for a few seconds its
monitor hands the supervision loop (stdio relay, json-file log, attach socket,
healthchecks) over to the host and exits. The host is a subreaper and the monitor's
parent, so the container's init becomes the host's child and the host reaps it. An idle
container then costs a few kilobytes in the host instead of a Python interpreter.

A host crash loses no container: the containers keep running and ``ps`` reports them
from the kernel's view, as after a killed per-container monitor. The host exits as soon
as it supervises nothing; the next ``start`` makes a new one.

Messages (AF_UNIX ``SOCK_SEQPACKET``, JSON, fds as ``SCM_RIGHTS``):

- client -> host on ``<runroot>/monitor-host.sock``: ``{"op": "spawn", "args": {...},
  "fds": [arg names]}`` with one fd per name; the host answers ``{"pid": N}`` once it
  has forked the container's monitor.
- monitor -> host on a socketpair made at the fork: ``{"op": "adopt", "args": {...},
  "fds": [numbers]}`` with those fds, a ``monitor_loop.Loop``'s hand-off state.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from capsa.engine.warm_wire import (
    SOCKET_NAME,
    Request,
    WireError,
    declined,
    finished,
    is_request,
    started,
)
from capsa.errors import Internal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.db_keeper import DatabaseKeeper
    from capsa.engine.monitor_loop import Loop, Waker

LOCK_NAME = "monitor-host.lock"
_MAX_MESSAGE = 1 << 20
_MAX_FDS = 256
_ORPHAN_TTL = 60.0  # seconds an unclaimed exit status is kept for a hand-off


# -- client side -------------------------------------------------------------------------------


def spawn(runroot: str, args: dict[str, Any], fds: dict[str, int], linger: float = 0.0) -> int:
    """Have the run root's host (started here if there is none) fork a container's
    monitor with ``args``, the named ``fds`` set in them. Returns the monitor's pid.
    A host started here stays up ``linger`` seconds once it supervises nothing."""
    path = os.path.join(runroot, SOCKET_NAME)
    message = json.dumps({"op": "spawn", "args": args, "fds": list(fds)}).encode()
    for _ in range(5):  # a host that was just exiting drops the request: ask the next one
        sock = _connect(path) or _start_host(runroot, linger)
        try:
            with sock:
                sock.settimeout(60.0)
                socket.send_fds(sock, [message], list(fds.values()))
                reply = sock.recv(4096)
        except OSError:
            continue
        if reply:
            return int(json.loads(reply)["pid"])
    raise Internal(f"no monitor host answered on {path}")


def adopt(channel: int, args: dict[str, Any], fds: list[int]) -> bool:
    """Hand a running container's loop to the host (from the container's monitor)."""
    message = json.dumps({"op": "adopt", "args": args, "fds": fds}).encode()
    sock = socket.socket(fileno=os.dup(channel))
    try:
        socket.send_fds(sock, [message], fds)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _start_host(runroot: str, linger: float) -> socket.socket:
    import fcntl

    path = os.path.join(runroot, SOCKET_NAME)
    lock = os.open(os.path.join(runroot, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _connect(path)  # another client made one while we waited
        if sock is not None:
            return sock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(64)
        _fork_host(listener, runroot, linger)
        listener.close()
        sock = _connect(path)
        if sock is None:
            raise Internal(f"the monitor host did not listen on {path}")
        return sock
    finally:
        os.close(lock)


def _fork_host(listener: socket.socket, runroot: str, linger: float) -> None:
    """Fork twice so that the host is nobody's child here (no zombie in a long-lived
    caller) and leads its own session."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    code = 1
    try:
        if os.fork() == 0:
            os.setsid()
            _detach_stdio(
                _open_log(os.path.join(runroot, "monitor-host.log")), (listener.fileno(),)
            )
            Host(listener, runroot, linger).serve()
            code = 0
        else:
            code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def run_monitor(args: dict[str, Any], log: int, keep: tuple[int, ...]) -> None:
    """In a freshly forked child: become a container's monitor in a session of its own,
    output to ``log``, no fd but ``keep`` inherited; never returns."""

    code = 1
    try:
        os.setsid()
        from capsa.engine.monitor_loop import Waker

        Waker.forget()  # a host's waker is not the monitor's
        _detach_stdio(log, keep)
        from capsa.engine import monitor

        code = monitor.main(["monitor", json.dumps(args)])
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _open_log(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def _detach_stdio(log: int, keep: tuple[int, ...]) -> None:
    """stdin from /dev/null, stdout and stderr to ``log``, every other fd but ``keep``
    closed (all of them: a host may hold fds numbered past 1024)."""
    from capsa.linux.fds import close_all_except

    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    close_all_except(keep)
    # not closing fd 0 when collected: a forked command replaces sys.stdin, not fd 0
    sys.stdin = open(0, closefd=False)  # noqa: SIM115


# -- the host ------------------------------------------------------------------------------------


class Host:
    def __init__(self, listener: socket.socket, runroot: str, linger: float = 0.0) -> None:
        self.listener = listener
        self.runroot = runroot
        self.linger = linger
        self.idle_since: float | None = None
        self.warmed: set[str] = set()
        self.networked: dict[tuple[str, str, str], dict[str, Any]] = {}  # roots seen bridged
        self.requests: dict[int, socket.socket] = {}  # accepted, not yet read
        self.workers: dict[int, socket.socket] = {}  # monitor pid -> its channel
        self.channels: dict[int, socket.socket] = {}  # fd -> channel (until EOF)
        self.loops: dict[int, Loop] = {}  # container init pid -> its loop
        self.orphans: dict[int, tuple[int, float]] = {}  # reaped unclaimed: status, when
        self.commands: dict[int, socket.socket | None] = {}  # warm command pid -> asker
        self.nofile: tuple[int, int] | None = None  # the open-files limit to give monitors
        self.pins: DatabaseKeeper | None = None  # holds the served roots' databases open
        self.code: dict[str, int] = {}  # capsa's modules as imported here: path -> mtime

    def serve(self) -> None:
        import gc

        from capsa.engine.monitor_loop import Waker
        from capsa.linux import syscalls as sc

        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        from capsa.engine.warm import code_stamps
        from capsa.linux.proc import set_title

        set_title(f"capsa-monitor host {self.runroot}")

        self.code = code_stamps()
        self.nofile = _raise_fd_limit()  # about four fds per container it supervises
        gc.freeze()  # the forked monitors then share the heap instead of copying it
        waker = Waker()
        while True:
            if self._lingered():
                self._teardown_networks()  # still listening: a new client just waits
                if self._close_listener():
                    break
            self._step(waker)
        waker.close()
        if self.pins is not None:
            self.pins.close()

    def _idle(self) -> bool:
        return not (self.requests or self.workers or self.channels or self.loops or self.commands)

    def _lingered(self) -> bool:
        if not self._idle():
            self.idle_since = None
            return False
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        return now - self.idle_since >= self.linger

    def _warm(self, what: list[str]) -> None:
        """Import what the next monitors will need, so that they fork ready."""
        import gc

        from capsa.engine import monitor

        for name in ("monitor", *what):
            if name not in self.warmed:
                self.warmed.add(name)
                monitor.warm(name)
        gc.freeze()

    def _close_listener(self) -> bool:
        """Stop listening unless a client is already waiting (under the start lock, so
        that no client makes a new host while this one still answers)."""
        import fcntl
        import select

        lock = os.open(os.path.join(self.runroot, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ready, _, _ = select.select([self.listener], [], [], 0)
            if ready:
                return False
            try:
                os.unlink(os.path.join(self.runroot, SOCKET_NAME))
            except FileNotFoundError:
                pass
            self.listener.close()
            return True
        finally:
            os.close(lock)

    def _step(self, waker: Waker) -> None:
        watched: dict[int, Loop | None] = {self.listener.fileno(): None, waker.fd: None}
        watched.update(dict.fromkeys(self.requests))
        watched.update(dict.fromkeys(self.channels))
        askers = {conn.fileno(): pid for pid, conn in self.commands.items() if conn is not None}
        watched.update(dict.fromkeys(askers))
        timeouts = []
        for each in self.loops.values():
            watched.update(dict.fromkeys(each.fds(), each))
            timeouts.append(each.timeout())
        if self.idle_since is not None:
            timeouts.append(max(0.0, self.idle_since + self.linger - time.monotonic()))
        timeout = min((t for t in timeouts if t is not None), default=None)
        for fd in waker.select(list(watched), timeout):
            owner = watched.get(fd)
            if owner is not None:
                self._guard(owner, owner.readable, fd)
            elif fd == self.listener.fileno():
                self._accept()
            elif fd in self.requests:
                self._request(self.requests.pop(fd))
            elif fd in self.channels:
                self._channel(fd)
            elif fd in askers:
                self._asker_gone(askers[fd])
        now = time.monotonic()
        for pid, status in waker.reap(*self.loops.values()):
            if pid in self.commands:
                self._command_done(pid, status)
            elif self.pins is not None and pid == self.pins.pid:
                self.pins.close(reaped=True)  # died: a new one comes with the next container
                self.pins = None
            elif self.workers.pop(pid, None) is None:
                self.orphans[pid] = (status, now)
        for pid, (_, when) in list(self.orphans.items()):
            if now - when > _ORPHAN_TTL:  # its pid may come back as another container's
                del self.orphans[pid]
        for loop in list(self.loops.values()):
            self._guard(loop, loop.tick)
            if loop.done:
                self._finish(loop)

    def _guard(self, loop: Loop, call: Any, *args: Any) -> None:
        """One container's trouble (a full disk under its log...) must not take down the
        host and every other container's supervision: log it, stop reading what failed."""
        try:
            call(*args)
        except Exception as e:
            print(f"monitor host: {loop.args.get('id')}: {e!r}", file=sys.stderr, flush=True)
            for fd in args:
                loop.forget(fd)

    # -- clients and monitors ------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.requests[conn.fileno()] = conn

    def _request(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        try:
            data, fds = _receive(conn)
        except OSError:
            conn.close()
            return
        if is_request(data):
            self._command(conn, data, fds)
            return
        with conn:
            args = self._spawn_request(conn, data, fds)
        if args is not None and args.get("root"):
            if self.pins is None:
                from capsa.engine.db_keeper import DatabaseKeeper

                self.pins = DatabaseKeeper()
            self.pins.keep(str(args["root"]))
        if args is not None and self.linger > 0:  # more containers will come: get ready
            self._warm(list(args.get("warm") or []))
            if "network" in (args.get("warm") or ()):
                roots = {k: args.get(k) or "" for k in ("root", "runroot", "config")}
                self.networked[(roots["root"], roots["runroot"], roots["config"])] = roots

    def _spawn_request(
        self, conn: socket.socket, data: bytes, fds: list[int]
    ) -> dict[str, Any] | None:
        try:
            message = json.loads(data)
            args = dict(message["args"])
            args.update(zip(message["fds"], fds, strict=True))
            pid = self._spawn(args, fds)
        except Exception as e:  # a bad request must not take the host down
            print(f"monitor host: bad request: {e!r}", file=sys.stderr, flush=True)
            return None
        finally:
            for fd in fds:
                os.close(fd)
        try:
            conn.send(json.dumps({"pid": pid}).encode())
        except OSError:
            pass
        return args

    # -- warm commands -------------------------------------------------------------------------

    def _command(self, conn: socket.socket, data: bytes, fds: list[int]) -> None:
        """Fork a command for the process asking on ``conn`` (``capsa.engine.warm``)."""
        from capsa.engine import warm

        try:
            request = Request.decode(data)
            uid = _peer_uid(conn)
            reason = warm.refusal(request, fds, uid)
            if reason is None and warm.code_changed(self.code):
                reason = "capsa changed since this host started"
            pid = warm.fork(request, fds, self.nofile) if reason is None else None
        except (WireError, OSError) as e:
            reason, pid = str(e) or type(e).__name__, None
        finally:
            for fd in fds:
                os.close(fd)
        if pid is None:
            with conn:
                _send_quietly(conn, declined(reason or "refused"))
            return
        self.commands[pid] = conn
        if not _send_quietly(conn, started(pid)):
            self._asker_gone(pid)
        entry = request.entry
        if entry not in self.warmed:  # the next command forks with it imported
            self.warmed.add(entry)
            try:
                warm.warm(entry)
            except Exception as e:
                print(f"monitor host: warm {entry}: {e!r}", file=sys.stderr, flush=True)
            self.code = {**warm.code_stamps(), **self.code}  # an earlier change still shows
            import gc

            gc.freeze()

    def _asker_gone(self, pid: int) -> None:
        """The asking process went away (killed): its command goes with it, as a cold
        command would have. The host still reaps it."""
        conn = self.commands.get(pid)
        if conn is not None:
            conn.close()
            self.commands[pid] = None
        import signal

        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _command_done(self, pid: int, status: int) -> None:
        conn = self.commands.pop(pid)
        if conn is not None:
            with conn:
                _send_quietly(conn, finished(status))

    def _teardown_networks(self) -> None:
        """The monitors of a lingering host leave idle networks up for the next container
        (no bridge deleted and made again per ``run --rm``); the host takes them down."""
        from capsa.engine.service_context import ServiceContext

        networked, self.networked = self.networked, {}
        for roots in networked.values():
            if not os.path.isdir(roots["root"]):  # removed under us: nothing to look up
                continue
            ctx = ServiceContext.from_args(roots)
            try:
                ctx.networks.teardown_idle()
            except Exception as e:
                print(f"monitor host: tear down networks: {e!r}", file=sys.stderr, flush=True)
            finally:
                ctx.close()

    def _channel(self, fd: int) -> None:
        from capsa.engine.monitor_loop import Loop, remap_fds

        channel = self.channels[fd]
        try:
            data, fds = _receive(channel)
        except OSError:
            data, fds = b"", []
        if not data:
            del self.channels[fd]
            channel.close()
            return
        try:
            message = json.loads(data)
            args = remap_fds(message["args"], dict(zip(message["fds"], fds, strict=True)))
            loop = Loop(args)
        except Exception as e:
            print(f"monitor host: bad hand-off: {e!r}", file=sys.stderr, flush=True)
            for passed in fds:
                os.close(passed)
            return
        self.loops[loop.pid] = loop
        orphan = self.orphans.pop(loop.pid, None)
        if orphan is not None:
            status = orphan[0]  # it exited while its monitor was handing it over
            loop.reaped(loop.pid, status)

    def _finish(self, loop: Loop) -> None:
        """The container exited: a fresh monitor records it and restarts or removes it."""
        del self.loops[loop.pid]
        try:
            result = loop.result()
        except OSError:  # the log could not be closed: the exit still gets recorded
            result = {"exit_code": loop.exit_code}
        finish = loop.finish_args(result)
        loop.close()
        clients = list(loop.clients)
        try:
            self._spawn(finish, clients)
        except OSError as e:
            print(f"monitor host: cannot finish {finish.get('id')}: {e!r}", file=sys.stderr)
        for fd in clients:
            os.close(fd)

    def _spawn(self, args: dict[str, Any], passed: list[int]) -> int:
        """Fork a container's monitor; ``passed`` are fds of ours named in ``args``."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log = os.path.join(args["runroot"], "containers", args["id"], "monitor.log")
        pid = os.fork()
        if pid == 0:
            if self.nofile is not None:  # containers get the limits a CLI would give them
                import resource

                resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
            channel = theirs.fileno()
            args = {**args, "host_fd": channel, "host_linger": self.linger}
            run_monitor(args, _open_log(log), (*passed, channel))
        theirs.close()
        self.workers[pid] = mine
        self.channels[mine.fileno()] = mine
        return pid


def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, _MAX_FDS)
    for fd in fds:
        os.set_inheritable(fd, False)
    return data, fds


def _peer_uid(conn: socket.socket) -> int:
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _send_quietly(conn: socket.socket, message: bytes) -> bool:
    try:
        conn.send(message)
    except OSError:
        return False
    return True


def _raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one; the limits it had."""
    import resource

    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limits[0] < limits[1]:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits[1], limits[1]))
    return limits
