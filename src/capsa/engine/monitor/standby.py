"""Taking over the supervision of a container whose monitor was killed.

Two processes supervise a running container in turn: its own monitor for the first
seconds, then the monitor host (``capsa.engine.monitor.host``), while the monitor
becomes the container's shim (``capsa.engine.monitor.shim``), which keeps the init's
exit status and copies of its output pipes whatever happens to the host. For the first
seconds the host is the monitor's standby: it is the monitor's parent and a subreaper,
and the kernel gives a killed process's children to the nearest living subreaper among
its ancestors, so the container's init becomes the host's child: the host reaps it and
learns its real exit status.

For the output to go on reaching the log, the monitor sends the host a *copy* of the
loop (``Loop.standby``: its arguments and duplicates of the output pipes' read ends,
the pty master and the attach socket) as soon as it has one. The host keeps those fds
unread; when the monitor dies abnormally it builds a ``Loop`` from them and carries on
where the monitor stopped (what the monitor had read and not yet written is lost: at
most one read). Stdin and attached clients are not copied: the container must see its
stdin close, and a client its connection end, when the monitor closes them; after a
takeover ``attach`` still works, through the socket.

When the monitor had already reaped the init (it was recording the exit) it told the
host the result first ("exited"); when nobody can know the status any more (the init
was reaped by a process that died before saying), the exit is recorded as unknown:
``None``, with ``State.Error`` saying why.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.monitor.args import LoopArgs, LoopResult


class Standby:
    """A copy of one container's loop, as received: fds already numbered here."""

    __slots__ = ("args", "fds", "result")

    def __init__(self, args: LoopArgs, fds: list[int]) -> None:
        self.args = args
        self.fds = fds
        self.result: LoopResult | None = None  # how the container ended, if said

    @property
    def pid(self) -> int:
        return self.args.pid

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


def received(message: dict[str, Any], fds: list[int]) -> Standby:
    """The standby a "standby"/"adopt" message carries (``fds`` as received)."""
    from capsa.engine.monitor.args import LoopArgs, from_wire
    from capsa.engine.monitor.loop import remap_fds

    moved = dict(zip(message["fds"], fds, strict=True))
    return Standby(remap_fds(from_wire(LoopArgs, message["args"]), moved), fds)


def is_child(pid: int) -> bool:
    """True if ``pid`` is this process's child (running or a zombie): ours to reap."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def died_abnormally(status: int) -> bool:
    """A supervisor that exits 0 finished its work (or handed it over)."""
    return os.waitstatus_to_exitcode(status) != 0


def record_supervisor(args: LoopArgs) -> None:
    """Write in the container's record that this process supervises it now, so that
    ``ps`` does not take the container for unsupervised and settle it meanwhile."""
    from capsa.engine.service_context import ServiceContext
    from capsa.linux.proc import start_time

    ctx = ServiceContext.from_roots(args.monitor.roots)
    try:
        me = os.getpid()
        ctx.store.update(args.monitor.id, monitor_pid=me, monitor_start=start_time(me) or 0)
    finally:
        ctx.close()
