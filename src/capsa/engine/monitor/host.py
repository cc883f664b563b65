"""The monitor host: one process that supervises the running containers of a run root.

Every container still gets a monitor of its own for the work that needs the engine
(creating the container, recording its exit, restarting it: ``capsa.engine.monitor.setup``),
but the host forks those monitors, and once a container has run for a few seconds its
monitor hands the supervision loop (stdio relay, json-file log, attach socket,
healthchecks) over to the host and becomes the container's *shim*: a few hundred bytes
of machine code that stay the init's parent and keep its exit status and copies of its
output pipes (``capsa.engine.monitor.shim``). An idle container then costs a few
kilobytes in the host and a shim of tens of KiB, instead of a Python interpreter.

The host itself costs little while nothing happens (``capsa.engine.monitor.sleep``):
it forks warm-start commands and monitors with the engine imported, but a few seconds
after the last of those it drops these modules (it execs a lean interpreter of itself),
and once its containers have been quiet for a moment it goes to sleep: it execs a tiny
program that holds every fd and execs the interpreter again when one of them is
readable (output, an exit, an attach, a command) or a healthcheck is due.

A killed monitor or host loses no container, no exit status and no output where the
kernel still lets us have them: the host keeps a copy of each of its monitors' loops and
takes over a monitor that dies (``capsa.engine.monitor.standby``; it is their parent and
a subreaper, so their containers' inits become its children); a killed host leaves the
shims, and the next host (started by the next ``capsa`` command that finds a shim with
no host, or by ``capsa system restore``) adopts them. The host exits once it has
supervised nothing for ``linger`` seconds; the next ``start`` makes a new one.

Messages (AF_UNIX ``SOCK_SEQPACKET``, JSON, fds as ``SCM_RIGHTS``):

- client -> host on ``<runroot>/monitor-host.sock``: ``{"op": "spawn", "args": {...},
  "fds": [field names]}`` (a ``MonitorArgs`` and the names of its fd fields,
  ``args.SPAWN_FDS``) with one fd per name; the host answers ``{"pid": N}`` once it
  has forked the container's monitor. Warm-start requests (``capsa.engine.monitor.warm_wire``)
  come on the same socket.
- monitor -> host on a socketpair made at the fork: ``{"op": "adopt", "args": {...},
  "fds": [numbers]}`` with those fds, a ``monitor.loop.Loop``'s hand-off state (a
  ``LoopArgs``, the shim's pid and notification pipe among them); ``"standby"`` (same
  shape: a copy of the loop, ``Loop.standby``) and ``"exited"`` (``args``: the loop's
  ``LoopResult``) keep the host ready to take over.

Every ``args`` is a record of ``capsa.engine.monitor.args`` in its wire form.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from capsa.engine.monitor import sleep as monitor_sleep
from capsa.engine.monitor.client import LOCK_NAME, open_log, run_monitor
from capsa.engine.monitor.commands import WarmCommands
from capsa.engine.monitor.warm_wire import ASLEEP, SOCKET_NAME, is_request, wake_entry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.monitor.args import FinishArgs, LoopResult, MonitorArgs, Roots
    from capsa.engine.monitor.db_keeper import DatabaseKeeper
    from capsa.engine.monitor.loop import Loop, Waker
    from capsa.engine.monitor.standby import Standby

_MAX_MESSAGE = 1 << 20
_MAX_FDS = 256
_ORPHAN_TTL = 60.0  # seconds an unclaimed exit status is kept for a hand-off


# -- the host ------------------------------------------------------------------------------------


class Host:
    def __init__(self, listener: socket.socket, runroot: str, linger: float = 0.0) -> None:
        self.listener = listener
        self.runroot = runroot
        self.linger = linger
        self.senders: dict[int, int] = {}  # channel fd -> the monitor's pid
        self.standby: dict[int, Standby] = {}  # monitor pid -> a copy of its loop
        self.idle_since: float | None = None
        self.warmed: set[str] = set()
        self.networked: set[Roots] = set()  # roots seen with networked containers
        self.requests: dict[int, socket.socket] = {}  # accepted, not yet read
        self.workers: dict[int, socket.socket] = {}  # monitor pid -> its channel
        self.channels: dict[int, socket.socket] = {}  # fd -> channel (until EOF)
        self.loops: dict[int, Loop] = {}  # container init pid -> its loop
        self.orphans: dict[int, tuple[int, float]] = {}  # reaped unclaimed: status, when
        self.commands = WarmCommands()
        self.nofile: tuple[int, int] | None = None  # the open-files limit to give monitors
        self.pins: DatabaseKeeper | None = None  # holds the served roots' databases open
        self.code: dict[str, int] = {}  # capsa's modules as imported here: path -> mtime
        self.shims: set[int] = set()  # our children that became containers' shims
        self.finishing: dict[int, str] = {}  # monitor pid -> id of the container it records
        self.fat = True  # the engine's modules imported (False in a lean interpreter)
        self.resumed = False  # woken up from sleep, or re-executed lean
        self.alive = -1  # the lock on ALIVE_NAME, held while this host lives
        self.warm_until = 0.0  # monotonic: keep the engine imported until then
        self.last_activity = time.monotonic()
        self.executable = sys.executable  # what a lean or woken host runs
        self.sys_path = list(sys.path)

    def serve(self) -> None:
        """Supervise, fork and rest until nothing is left to supervise for ``linger``
        seconds (a host woken up or re-executed comes back here: ``monitor.sleep``)."""
        import gc

        from capsa.engine.monitor.loop import Waker

        if not self.resumed:  # a subreaper stays one across exec
            from capsa.linux import syscalls as sc

            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        from capsa.engine.monitor.warm import code_stamps
        from capsa.linux.proc import set_title

        set_title(f"capsa-monitor host {self.runroot}")
        if self.alive < 0:  # started here rather than by monitor_client
            from capsa.engine.monitor.client import lock_alive

            self.alive = lock_alive(self.runroot)
        self.code = code_stamps()
        limits = raise_fd_limit()  # about four fds per container it supervises
        self.nofile = self.nofile or limits  # a host woken up knows the first ones
        gc.freeze()  # the forked monitors then share the heap instead of copying it
        waker = Waker()
        self._reap(waker)  # what exited while it slept
        if self.resumed:
            monitor_sleep.rename_socket(self.runroot, asleep=False)  # commands come warm
        else:
            self._adopt()
        while True:
            if self._lingered():
                self._teardown_networks()  # still listening: a new client just waits
                if self._close_listener():
                    break
            self._step(waker)
            monitor_sleep.rest(self)
        waker.close()
        if self.pins is not None:
            self.pins.close()
        monitor_sleep.forget_state(self.runroot)

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

        from capsa.engine.monitor import setup as monitor

        for name in ("monitor", *what):
            if name not in self.warmed:
                self.warmed.add(name)
                monitor.warm(name)
        self.fat = True
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
            for name in (SOCKET_NAME, SOCKET_NAME + ASLEEP):
                try:
                    os.unlink(os.path.join(self.runroot, name))
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
        askers = self.commands.watched()
        watched.update(dict.fromkeys(askers))
        timeouts = [monitor_sleep.rest_in(self)]
        for each in self.loops.values():
            watched.update(dict.fromkeys(each.fds(), each))
            timeouts.append(each.timeout())
        if self.idle_since is not None:
            timeouts.append(max(0.0, self.idle_since + self.linger - time.monotonic()))
        timeout = min((t for t in timeouts if t is not None), default=None)
        writes = [fd for each in self.loops.values() for fd in each.write_fds()]
        ready = waker.select(list(watched), timeout, writes)
        if ready:
            self.last_activity = time.monotonic()
        for fd in ready:
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
                self.commands.asker_gone(askers[fd])
        self._reap(waker)
        for loop in list(self.loops.values()):
            if loop.pending:
                self._guard(loop, loop.flush)
            self._guard(loop, loop.tick)
            if loop.shim_lost:
                self._shim_lost(loop)
            if loop.done:
                self._finish(loop)

    def _reap(self, waker: Waker) -> None:
        now = time.monotonic()
        for pid, status in waker.reap(*self.loops.values()):
            if pid in self.commands:
                self.commands.done(pid, status)
            elif self.pins is not None and pid == self.pins.pid:
                self.pins.close(reaped=True)  # died: a new one comes with the next container
                self.pins = None
            elif pid in self.workers:
                del self.workers[pid]
                self._worker_gone(pid, status)
            elif pid in self.shims:  # released once its container's exit was recorded
                self.shims.discard(pid)
                self._shim_gone(pid)
            else:
                self.orphans[pid] = (status, now)
        for pid, loop in list(self.loops.items()):  # taken over in this very batch
            if pid in self.orphans and not loop.draining:
                loop.reaped(pid, self.orphans.pop(pid)[0])
        for pid, (_, when) in list(self.orphans.items()):
            if now - when > _ORPHAN_TTL:  # its pid may come back as another container's
                del self.orphans[pid]

    def _shim_lost(self, loop: Loop) -> None:
        """A loop's shim died before saying how the container ended. A shim of ours
        (our child) left us its init, to be reaped here once the shim itself is; the
        init of another host's shim is nobody's to reap any more."""
        if loop.shim in self.shims:
            return  # wait for the shim's own exit (``_shim_gone``)
        loop.shim_lost = False
        loop.ended_unknown("its shim was killed")

    def _shim_gone(self, shim: int) -> None:
        for loop in list(self.loops.values()):
            if loop.shim != shim or loop.ended:
                continue
            loop.shim_lost = False
            if loop.pid in self.orphans:
                loop.reaped(loop.pid, self.orphans.pop(loop.pid)[0])
            else:
                from capsa.engine.monitor.standby import is_child

                if not is_child(loop.pid):  # the shim had reaped it, and died
                    loop.ended_unknown("its shim was killed")

    def _adopt(self) -> None:
        """Supervise the run root's shims that nobody supervises (a host killed before
        us, a monitor killed while recording an exit)."""
        from capsa.engine.monitor import shim as monitor_shim
        from capsa.engine.monitor.loop import Loop

        skip = {loop.args.monitor.id for loop in self.loops.values()}
        skip.update(self.finishing.values())
        for args, status in monitor_shim.adopt(self.runroot, skip):
            container = args.monitor.id
            try:
                if args.pid in self.loops:
                    raise ValueError("supervised already")
                loop = Loop(args)
            except Exception as e:
                print(f"monitor host: cannot adopt {container}: {e!r}", file=sys.stderr)
                for name in monitor_shim.ADOPTED_FDS:
                    if getattr(args, name) >= 0:
                        os.close(getattr(args, name))
                continue
            print(f"monitor host: adopted {container}", file=sys.stderr, flush=True)
            self.loops[loop.pid] = loop
            if status is not None:
                loop.shim_status(status)
            self._note_network(args.monitor)

    def _note_network(self, args: MonitorArgs) -> None:
        if "network" in args.warm:
            self.networked.add(args.roots)

    def _guard(self, loop: Loop, call: Any, *args: Any) -> None:
        """One container's trouble (a full disk under its log...) must not take down the
        host and every other container's supervision: log it, stop reading what failed."""
        try:
            call(*args)
        except Exception as e:
            print(f"monitor host: {loop.args.monitor.id}: {e!r}", file=sys.stderr, flush=True)
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
        self.warm_until = time.monotonic() + monitor_sleep.WARM_LINGER
        if is_request(data):
            entry = self.commands.start(conn, data, fds, self.nofile, self.code)
            if entry is not None:
                self._warm_entry(entry)
            return
        entry = wake_entry(data)
        if entry is not None:  # a command that ran cold while we slept: get warm
            conn.close()
            for fd in fds:
                os.close(fd)
            self._warm_entry(entry)
            return
        with conn:
            args = self._spawn_request(conn, data, fds)
        if args is not None and args.roots.root:
            self._pin(args.roots.root)
        if args is not None and self.linger > 0:  # more containers will come: get ready
            self._warm(list(args.warm))
            self._note_network(args)

    def _pin(self, root: str) -> None:
        """Have the root's databases held open by a keeper child (``monitor.db_keeper``)
        while the host forks commands and monitors: they then skip SQLite's checkpoint
        and WAL removal on close. The keeper goes when the host rests."""
        if self.pins is None:
            from capsa.engine.monitor.db_keeper import DatabaseKeeper

            self.pins = DatabaseKeeper()
        self.pins.keep(root)

    def _spawn_request(
        self, conn: socket.socket, data: bytes, fds: list[int]
    ) -> MonitorArgs | None:
        if data.startswith(b'{"op": "adopt"'):  # a monitor that is not our child (tell)
            self._channel_message(0, data, fds)
            return None
        try:
            args = _spawn_args(json.loads(data), fds)
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

    def _warm_entry(self, entry: str) -> None:
        """Import a command entry point, so that the next command forks with it."""
        from capsa.engine.monitor import warm

        if entry in self.warmed or not entry.startswith("capsa."):
            return
        self.warmed.add(entry)
        try:
            warm.warm(entry)
        except Exception as e:
            print(f"monitor host: warm {entry}: {e!r}", file=sys.stderr, flush=True)
        self.code = {**warm.code_stamps(), **self.code}  # an earlier change still shows
        self.fat = True
        import gc

        gc.freeze()

    def _teardown_networks(self) -> None:
        """The monitors of a lingering host leave idle networks up for the next container
        (no bridge deleted and made again per ``run --rm``); the host takes them down."""
        from capsa.engine.service_context import ServiceContext

        networked, self.networked = self.networked, set()
        for roots in networked:
            if not os.path.isdir(roots.root):  # removed under us: nothing to look up
                continue
            ctx = ServiceContext.from_roots(roots)
            try:
                ctx.networks.teardown_idle()
            except Exception as e:
                print(f"monitor host: tear down networks: {e!r}", file=sys.stderr, flush=True)
            finally:
                ctx.close()

    def _channel(self, fd: int) -> None:
        channel = self.channels[fd]
        try:
            data, fds = _receive(channel)
        except OSError:
            data, fds = b"", []
        if not data:  # the monitor exited: its status (reaped) says how
            del self.channels[fd]
            self.senders.pop(fd, None)
            channel.close()
            return
        self._channel_message(self.senders.get(fd, 0), data, fds)

    def _channel_message(self, sender: int, data: bytes, fds: list[int]) -> None:
        try:
            self._message(sender, json.loads(data), fds)
        except Exception as e:
            print(f"monitor host: bad message: {e!r}", file=sys.stderr, flush=True)
            for passed in fds:
                os.close(passed)

    def _message(self, sender: int, message: dict[str, Any], fds: list[int]) -> None:
        from capsa.engine.monitor import standby as monitor_standby
        from capsa.engine.monitor.args import LoopResult, from_wire
        from capsa.engine.monitor.loop import Loop

        op = message.get("op")
        if op == "exited":
            entry = self.standby.get(sender)
            if entry is not None:
                entry.result = from_wire(LoopResult, message["args"])
            return
        copy = monitor_standby.received(message, fds)
        old = self.standby.pop(sender, None)
        if old is not None:  # a restart's new run, or handed over
            old.close()
        if op == "standby":
            self.standby[sender] = copy
            return
        # "adopt": the fds are the loop's now, and the monitor becomes the container's
        # shim (it stays our child, but is no monitor any more)
        if self.workers.pop(sender, None) is not None:
            self.shims.add(sender)
        self.finishing.pop(sender, None)
        loop = Loop(copy.args)
        duplicate = self.loops.pop(loop.pid, None)
        if duplicate is not None:  # adopted from its shim meanwhile: this one is whole
            duplicate.close()
        self._supervise(loop)

    def _supervise(self, loop: Loop, took_over: bool = False) -> None:
        self.loops[loop.pid] = loop
        orphan = self.orphans.pop(loop.pid, None)
        if orphan is not None:
            status = orphan[0]  # it exited while its monitor was handing it over
            loop.reaped(loop.pid, status)
        if took_over:
            from capsa.engine.monitor.standby import record_supervisor

            try:
                record_supervisor(loop.args)
            except Exception as e:
                print(f"monitor host: record {loop.args.monitor.id}: {e!r}", file=sys.stderr)

    def _worker_gone(self, pid: int, status: int) -> None:
        """A monitor exited; if it was killed with a container to supervise, take over;
        if it was killed recording an exit, adopt the shim it left."""
        from capsa.engine.monitor.standby import died_abnormally

        if self.finishing.pop(pid, None) is not None and died_abnormally(status):
            self._adopt()
        entry = self.standby.pop(pid, None)
        if entry is None:
            return
        if not died_abnormally(status) or entry.pid in self.loops:
            entry.close()
            return
        print(f"monitor host: monitor {pid} died: taking over", file=sys.stderr, flush=True)
        self.take_over(entry)

    def take_over(self, entry: Standby) -> None:
        """Supervise a container from the copy of a loop whose owner died."""
        from capsa.engine.monitor.args import LoopResult
        from capsa.engine.monitor.loop import Loop
        from capsa.engine.monitor.standby import is_child

        try:
            loop = Loop(entry.args)
        except Exception as e:
            print(f"monitor host: cannot take over: {e!r}", file=sys.stderr, flush=True)
            entry.close()
            return
        if entry.result is not None:  # it ended; its monitor was recording that
            self._finish(loop, entry.result)
        elif loop.pid in self.orphans or is_child(loop.pid):
            self._supervise(loop, took_over=True)
        else:  # reaped by a process that died before saying how it ended
            why = "its supervisor was killed after reaping it"
            self._finish(loop, LoopResult(exit_code=None, unknown_why=why))

    def _finish(self, loop: Loop, result: LoopResult | None = None) -> None:
        """The container exited: a fresh monitor records it and restarts or removes it
        (and then releases its shim)."""
        from capsa.engine.monitor.args import LoopResult

        self.loops.pop(loop.pid, None)
        self.warm_until = time.monotonic() + monitor_sleep.WARM_LINGER
        try:
            done = loop.result()
        except OSError:  # the log could not be closed: the exit still gets recorded
            done = LoopResult(exit_code=loop.exit_code, unknown_why=loop.unknown_why)
        finish = loop.finish_args(result if result is not None else done)
        loop.close()
        clients = list(loop.clients)
        container = finish.monitor.id
        try:
            self.finishing[self._spawn(finish, clients)] = container
        except OSError as e:
            print(f"monitor host: cannot finish {container}: {e!r}", file=sys.stderr)
        for fd in clients:
            os.close(fd)

    def _spawn(self, args: MonitorArgs | FinishArgs, passed: list[int]) -> int:
        """Fork a container's monitor; ``passed`` are fds of ours named in ``args``."""
        from capsa.engine.monitor.args import monitor_of, with_host
        from capsa.engine.monitor.warm import code_changed

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        monitor = monitor_of(args)
        log = os.path.join(monitor.roots.runroot, "containers", monitor.id, "monitor.log")
        fresh = code_changed(self.code)
        pid = os.fork()
        if pid == 0:
            if self.nofile is not None:  # containers get the limits a CLI would give them
                import resource

                resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
            channel = theirs.fileno()
            args = with_host(args, channel, self.linger)
            run_monitor(args, open_log(log), (*passed, channel), fresh)
        theirs.close()
        self.workers[pid] = mine
        self.channels[mine.fileno()] = mine
        self.senders[mine.fileno()] = pid
        return pid


def _spawn_args(message: dict[str, Any], fds: list[int]) -> MonitorArgs:
    """The monitor's arguments a spawn request carries, the fds it passed set in them."""
    from capsa.engine.monitor.args import SPAWN_FDS, MonitorArgs, from_wire
    from capsa.errors import InvalidArgument
    from capsa.record import replace

    names = [str(name) for name in message["fds"]]
    if not set(names) <= set(SPAWN_FDS) or len(names) != len(fds):
        raise InvalidArgument(f"spawn request: fds {names} for {len(fds)} passed")
    args = from_wire(MonitorArgs, message["args"], "spawn request: args")
    return replace(args, **dict(zip(names, fds, strict=True)))


def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, _MAX_FDS)
    for fd in fds:
        os.set_inheritable(fd, False)
    return data, fds


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one; the limits it had."""
    import resource

    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limits[0] < limits[1]:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits[1], limits[1]))
    return limits
