"""A handed-over container's shim, from the engine's side: made, adopted, released.

Once a container has run for a few seconds its monitor hands the supervision loop over
to the monitor host and then *becomes* the container's shim (``capsa.linux.shim``: it
execs a tiny program, keeping its pid, so the init stays its child). The shim holds
what must survive any supervisor: the init's exit status (the kernel keeps it for the
parent only; the shim writes it to ``shim.status`` in the container's run directory
and to a notification pipe the host watches) and copies of the output pipes' read ends
(or the pty master), the attach socket and that pipe (so the container never gets
``SIGPIPE``, and ``attach`` connections wait in the backlog). Its record, ``shim.json``
beside it, says which of its fds is which and holds the loop's arguments.

A host that starts (or wakes) *adopts* every shim of its run root it does not already
supervise: it opens the shim with ``pidfd_open``, copies its fds with ``pidfd_getfd``
and builds the loop from the record; an exit the shim saw meanwhile is in its status
file, and output written meanwhile waited in the pipes. The monitor that records the
exit *claims* the record first (an exclusive ``flock``: adopters skip a claimed one),
and *releases* the shim once the exit is in the database: the files go, the shim is
killed. One that dies before that leaves the record unclaimed, for the next adopter.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys

from capsa.record import record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.monitor.args import LoopArgs

RECORD_FILE = "shim.json"
STATUS_FILE = "shim.status"
TITLE = "capsa-monitor shim"
# the shim's fds a new host takes over, by the field of LoopArgs that names them
ADOPTED_FDS = ("stdout", "stderr", "master", "listener", "notify")


@record
class ShimFds:
    """The fds a monitor opens for the shim it becomes (numbers in the monitor)."""

    status: int  # shim.status, written once with the init's wait status
    notify_read: int  # the host's end (a copy goes to the host, one stays in the shim)
    notify_write: int


def prepare(run_dir: str) -> ShimFds:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    status = os.open(os.path.join(run_dir, STATUS_FILE), flags, 0o600)
    read, write = os.pipe2(os.O_CLOEXEC)
    return ShimFds(status=status, notify_read=read, notify_write=write)


def discard(run_dir: str, fds: ShimFds) -> None:
    """Undo ``prepare`` (and ``write_record``): the hand-over did not happen."""
    for fd in (fds.status, fds.notify_read, fds.notify_write):
        os.close(fd)
    _unlink_files(run_dir)


def write_record(run_dir: str, args: LoopArgs, fds: ShimFds) -> None:
    """``shim.json``: this process (the shim-to-be), its fds and the loop's arguments
    (``Loop.standby``'s form: output fds, listener, no stdin nor clients)."""
    from capsa.engine.monitor.args import to_wire
    from capsa.linux.atomicfile import write_atomic
    from capsa.linux.proc import start_time

    me = os.getpid()
    held = {name: getattr(args, name) for name in ADOPTED_FDS[:-1]}
    held = {name: fd for name, fd in held.items() if fd >= 0}
    held["notify"] = fds.notify_read
    doc = {"shim": me, "shim_start": start_time(me) or 0, "fds": held, "args": to_wire(args)}
    write_atomic(os.path.join(run_dir, RECORD_FILE), json.dumps(doc).encode(), durable=False)


def become(fds: ShimFds, init_pid: int, title: str, keep: list[int]) -> None:
    """Exec the shim, keeping ``keep`` (the loop's output fds, listener) and the shim's
    own; every other fd is closed. Returns only if no form of the shim could start."""
    from capsa.linux import shim
    from capsa.linux.fds import close_all_except

    kept = (fds.status, fds.notify_read, fds.notify_write, *keep)
    sys.stdout.flush()
    sys.stderr.flush()
    close_all_except(kept)
    for fd in kept:
        os.set_inheritable(fd, True)
    try:
        shim.exec_program(shim.program(init_pid, fds.status, fds.notify_write), [title])
    except (shim.Unsupported, OSError) as e:
        print(f"monitor: no machine-code shim ({e}): a Python one", file=sys.stderr)
    argv = shim.python_shim_argv(title, init_pid, fds.status, fds.notify_write)
    os.execv(argv[0], argv)


# -- a new host ---------------------------------------------------------------------------


def adopt(runroot: str, skip: set[str]) -> list[tuple[LoopArgs, int | None]]:
    """The loops of the run root's shims that no one supervises (none of the containers
    in ``skip``, the ids supervised here, none claimed): their arguments with the fds
    copied into this process, ``notify`` among them, each with the shim's status (the
    raw wait status, -1 for unknown) when the init has exited already, else None."""
    base = os.path.join(runroot, "containers")
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        taken = None if name in skip else _adopt_one(os.path.join(base, name))
        if taken is not None:
            out.append(taken)
    return out


def _adopt_one(run_dir: str) -> tuple[LoopArgs, int | None] | None:
    from capsa.errors import InvalidArgument

    try:
        lock = os.open(os.path.join(run_dir, RECORD_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        with os.fdopen(os.dup(lock), "rb") as f:
            doc = json.loads(f.read())
        return _take(run_dir, doc)
    except InvalidArgument as e:  # not this capsa's record
        print(f"monitor host: {run_dir}: {e}", file=sys.stderr, flush=True)
        return None
    except (OSError, ValueError, KeyError, TypeError):  # claimed, gone, or not ours to read
        return None
    finally:
        os.close(lock)


def _take(run_dir: str, doc: dict[str, Any]) -> tuple[LoopArgs, int | None] | None:
    from capsa.engine.monitor.args import LoopArgs, from_wire
    from capsa.errors import InvalidArgument
    from capsa.linux.proc import start_time
    from capsa.linux.syscalls import pidfd_getfd

    args = from_wire(LoopArgs, doc["args"], f"{RECORD_FILE}: args")
    held = {str(name): int(fd) for name, fd in doc["fds"].items()}
    unknown = sorted(set(held) - set(ADOPTED_FDS))
    if unknown:
        raise InvalidArgument(f"{RECORD_FILE}: fds: unknown name {unknown[0]!r}")
    shim = int(doc["shim"])
    pidfd = os.pidfd_open(shim)
    try:
        if start_time(shim) != int(doc["shim_start"]):  # not our shim any more
            return None
        copied: dict[str, int] = {}
        try:
            for name, fd in held.items():
                copied[name] = pidfd_getfd(pidfd, fd)
        except OSError:
            for fd in copied.values():
                os.close(fd)
            raise
    finally:
        os.close(pidfd)
    args = replace(args, **copied, shim=shim, shim_start=int(doc["shim_start"]))
    return args, read_status(run_dir)


def read_status(run_dir: str) -> int | None:
    """The raw wait status in the shim's status file (-1: unknown); None while the
    container runs."""
    from capsa.linux.shim import read_status as decode

    try:
        with open(os.path.join(run_dir, STATUS_FILE), "rb") as f:
            word = f.read(4)
    except FileNotFoundError:
        return None
    if len(word) < 4:
        return None
    status = decode(word)
    return -1 if status is None else status


# -- the monitor that records the exit ----------------------------------------------------


def claim(run_dir: str) -> int:
    """Hold the shim's record while its exit is being recorded (adopters skip it); the
    lock's fd (-1: no record, a container that never had a shim)."""
    try:
        lock = os.open(os.path.join(run_dir, RECORD_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return -1
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def release(run_dir: str, lock: int, shim: int, shim_start: int) -> None:
    """The exit is recorded: the shim's files go, the shim is killed."""
    _unlink_files(run_dir)
    if lock >= 0:
        os.close(lock)
    if shim > 0:
        kill(shim, shim_start)


def kill(shim: int, shim_start: int) -> None:
    from capsa.linux.proc import start_time

    try:
        pidfd = os.pidfd_open(shim)
    except ProcessLookupError:
        return
    try:
        if start_time(shim) == shim_start:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def _unlink_files(run_dir: str) -> None:
    for name in (RECORD_FILE, STATUS_FILE):
        try:
            os.unlink(os.path.join(run_dir, name))
        except FileNotFoundError:
            pass
