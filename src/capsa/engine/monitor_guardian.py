"""The monitor host's guardian: its parent, ready to become the host if the host dies.

The containers a host supervises are its children. Were the host killed, the kernel
would give them to the nearest living subreaper among its ancestors; without one, to
init, which reaps them and throws their exit status away, and nothing would read their
output any more. So the process that starts a host (``monitor_client``) first makes
this guardian: a subreaper in a session of its own that forks the host and then only
waits. For each container the host supervises it keeps a copy of the loop
(``Loop.standby``: arguments and duplicates of the output fds, unread), sent by the host
("keep", "drop"). It also keeps the host's listening socket, and holds the served roots'
SQLite databases open ("pin", the job of ``capsa.engine.db_keeper`` for a host without
a guardian): it forked the host before opening any, so no fork inherits SQLite's state.

If the host exits cleanly (it lingered with nothing to supervise) the guardian exits
with it. If the host dies any other way the containers become the guardian's children,
and the guardian becomes the host: it builds the loops from its copies, reaps the
containers (their real exit status), writes their logs and answers on the same socket
(``Host.resume``). The new host has no guardian of its own; the next host started from
scratch has one again.

The guardian is a fork of the process that started the host, like the host itself, and
touches little memory of its own: most of its pages stay shared with the host's.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.monitor_loop import Waker
    from capsa.engine.monitor_standby import Standby
    from capsa.store.db import Pins

_MAX_MESSAGE = 1 << 20
_MAX_FDS = 256


class Guardian:
    def __init__(self, listener: socket.socket, runroot: str, linger: float) -> None:
        self.listener = listener
        self.runroot = runroot
        self.linger = linger
        self.standby: dict[int, Standby] = {}  # container init pid -> a copy of its loop
        self.orphans: dict[int, tuple[int, float]] = {}  # reaped here: status, when
        self.nofile: tuple[int, int] | None = None  # the open-files limit we started with
        self.pins: Pins | None = None  # the served roots' databases, held open

    def run(self) -> None:
        """Fork the host and watch it; take its place if it dies."""
        import gc

        from capsa.linux import syscalls as sc

        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        _import_for_both()
        gc.freeze()  # the host shares our heap instead of copying it
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        host = os.fork()
        if host == 0:
            mine.close()
            _run_host(self.listener, self.runroot, self.linger, theirs)
        theirs.close()
        from capsa.engine.monitor_host import raise_fd_limit
        from capsa.linux.proc import set_title

        set_title(f"capsa-monitor guardian {self.runroot}")
        # a few fds per container; raised after the fork, as the host gives its monitors
        # the limits it was started with (and so will this process if it takes over)
        self.nofile = raise_fd_limit()
        status = self._watch(host, mine)
        mine.close()
        if self.pins is not None:  # closed before a fork: the last close checkpoints
            self.pins.close()
        if os.waitstatus_to_exitcode(status) == 0:
            return
        print(f"guardian: the host died ({status}): taking over", file=sys.stderr, flush=True)
        self._become_host()

    def _watch(self, host: int, channel: socket.socket) -> int:
        """Keep the host's copies until the host exits; its wait status."""
        from capsa.engine.monitor_loop import Waker

        waker = Waker()
        try:
            watched = [channel.fileno(), waker.fd]
            while True:
                for fd in waker.select(watched, None):
                    if fd == channel.fileno() and not self._receive(channel):
                        watched.remove(fd)  # the host is gone or going: wait for its status
                status = self._reap(waker, host)
                if status is not None:
                    return status
        finally:
            waker.close()

    def _reap(self, waker: Waker, host: int) -> int | None:
        """Reap children; the host's status if it was among them (the containers it held
        are ours now; those that exited already are kept for the loops)."""
        for pid, status in waker.reap():
            if pid == host:
                return status
            self.orphans[pid] = (status, time.monotonic())
        return None

    def _receive(self, channel: socket.socket) -> bool:
        from capsa.engine import monitor_standby

        try:
            data, fds, _, _ = socket.recv_fds(channel, _MAX_MESSAGE, _MAX_FDS)
        except OSError:
            return False
        if not data:
            return False
        try:
            message = json.loads(data)
            if message.get("op") == "drop":
                self._drop(int(message["args"]["pid"]))
            elif message.get("op") == "pin":
                self._pin(str(message["args"]["root"]))
            else:  # "keep"
                copy = monitor_standby.received(message, fds)
                self._drop(copy.pid)
                self.standby[copy.pid] = copy
        except Exception as e:
            print(f"guardian: bad message: {e!r}", file=sys.stderr, flush=True)
            for fd in fds:
                os.close(fd)
        return True

    def _pin(self, root: str) -> None:
        if self.pins is None:
            from capsa.store.db import Pins

            self.pins = Pins()
        self.pins.pin(root)

    def _drop(self, pid: int) -> None:
        old = self.standby.pop(pid, None)
        if old is not None:
            old.close()

    def _become_host(self) -> None:
        from capsa.engine.monitor_host import Host

        host = Host(self.listener, self.runroot, self.linger)
        host.nofile = self.nofile
        host.resume(list(self.standby.values()), self.orphans)
        self.standby = {}
        host.serve()


def _import_for_both() -> None:
    """What the host imports as it starts and the guardian needs, imported once here
    before the fork: the pages stay shared instead of each process having its own."""
    import sqlite3  # noqa: F401  (the pins)

    from capsa.engine import monitor_host, monitor_standby, warm  # noqa: F401
    from capsa.linux import proc  # noqa: F401


def _run_host(
    listener: socket.socket, runroot: str, linger: float, guardian: socket.socket
) -> None:
    """In the guardian's child: be the host; never returns."""
    code = 1
    try:
        os.setsid()  # a session of its own, as when it had no guardian
        from capsa.engine.monitor_host import Host

        Host(listener, runroot, linger, guardian=guardian).serve()
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)
