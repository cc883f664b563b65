"""The client side of the monitor host (``capsa.engine.monitor.host``): what a ``capsa``
command and a container's monitor call. Finding the run root's host (or starting one),
asking it to fork a monitor, a monitor telling the host about its loop, how a forked
monitor leaves its parent's state, and starting a host for shims that have none.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys

from capsa.engine.monitor.warm_wire import ASLEEP, SOCKET_NAME
from capsa.errors import Internal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from capsa.engine.monitor.args import FinishArgs, LoopArgs, LoopResult, MonitorArgs

LOCK_NAME = "monitor-host.lock"
ALIVE_NAME = "monitor-host.pid"  # locked by the host while it lives (``host_alive``)


def spawn(
    runroot: str,
    args: MonitorArgs,
    fds: dict[str, int],
    linger: float = 0.0,
    start_host: bool = True,
) -> int:
    """Have the run root's host (started here if there is none and ``start_host``: a
    fork of this process) fork a container's monitor with ``args``, the ``fds`` set in
    them by field name (``args.SPAWN_FDS``). Returns the monitor's pid. A host started
    here stays up ``linger`` seconds once it supervises nothing."""
    from capsa.engine.monitor.args import to_wire

    path = os.path.join(runroot, SOCKET_NAME)
    message = json.dumps({"op": "spawn", "args": to_wire(args), "fds": list(fds)}).encode()
    for _ in range(5):  # a host that was just exiting drops the request: ask the next one
        sock = _connect(path)
        if sock is None and not start_host:
            raise Internal(f"no monitor host on {path}")
        sock = sock or _start_host(runroot, linger)  # or wakes it
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


def connect_host(runroot: str, linger: float) -> socket.socket | None:
    """A connection to the run root's host (started if there is none), for a monitor
    that is not the host's child to hand its container over ("adopt" on it)."""
    path = os.path.join(runroot, SOCKET_NAME)
    try:
        return _connect(path) or _start_host(runroot, linger)
    except (OSError, Internal):
        return None


def tell(channel: int, op: str, args: LoopArgs | LoopResult, fds: list[int]) -> bool:
    """From a container's monitor to the host: "adopt" (hand the running container's
    loop over), "standby" (a copy of it), "exited" (``args``: how it ended)."""
    from capsa.engine.monitor.args import to_wire

    message = json.dumps({"op": op, "args": to_wire(args), "fds": fds}).encode()  # "op" first
    sock = socket.socket(fileno=os.dup(channel))
    try:
        socket.send_fds(sock, [message], fds)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _connect(path: str) -> socket.socket | None:
    """A connection to the host listening at ``path``, or at its name while it sleeps
    (``monitor.sleep.rename_socket``: connecting wakes it)."""
    for name in (path, path + ASLEEP):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(name)
        except OSError:
            sock.close()
            continue
        return sock
    return None


def host_alive(runroot: str) -> bool:
    """Whether a host serves ``runroot`` (awake or asleep): it holds a lock while it
    lives. Asks the host nothing, so a sleeping host sleeps on."""
    import fcntl

    try:
        fd = os.open(os.path.join(runroot, ALIVE_NAME), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def ensure_host(runroot: str, linger: float) -> None:
    """Start a host for ``runroot`` unless one runs: it adopts the containers whose shims
    nobody supervises (their host was killed). The host is a fresh, lean interpreter:
    this process may hold databases open, which a fork must not inherit."""
    if host_alive(runroot):
        return
    with start_lock(runroot):
        if not host_alive(runroot):
            _launch_host(runroot, linger, fresh=True)


@contextlib.contextmanager
def start_lock(runroot: str) -> Iterator[None]:
    """Held while a host is started, and by a host that stops listening."""
    import fcntl

    lock = os.open(os.path.join(runroot, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


def _start_host(runroot: str, linger: float) -> socket.socket:
    path = os.path.join(runroot, SOCKET_NAME)
    with start_lock(runroot):
        sock = _connect(path)  # another client made one while we waited
        if sock is not None:
            return sock
        _launch_host(runroot, linger, fresh=False)
        sock = _connect(path)
        if sock is None:
            raise Internal(f"the monitor host did not listen on {path}")
        return sock


def _launch_host(runroot: str, linger: float, fresh: bool) -> None:
    """Listen on the run root's socket and start the host that serves it, its alive lock
    taken here (a host that is still exiting lets go of it first)."""
    path = os.path.join(runroot, SOCKET_NAME)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    alive = lock_alive(runroot)
    try:
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(64)
        _fork_host(listener, runroot, linger, fresh, alive)
    finally:
        os.close(alive)
        listener.close()


def lock_alive(runroot: str) -> int:
    """The host's alive lock (``host_alive``), taken: an fd for the host to keep."""
    import fcntl

    fd = os.open(os.path.join(runroot, ALIVE_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        raise
    return fd


def _fork_host(
    listener: socket.socket, runroot: str, linger: float, fresh: bool, alive: int
) -> None:
    """Fork twice so that the host is nobody's child here (no zombie in a long-lived
    caller) and leads its own session. The host is this process forked, with the engine
    imported (``fresh``: a new, lean interpreter instead)."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    code = 1
    try:
        if os.fork() == 0:
            os.setsid()
            log = open_log(os.path.join(runroot, "monitor-host.log"))
            detach_stdio(log, (listener.fileno(), alive))
            if fresh:
                _exec_host(listener, runroot, linger, alive)
            from capsa.engine.monitor.host import Host

            host = Host(listener, runroot, linger)
            host.alive = alive
            host.serve()
            code = 0
        else:
            code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _exec_host(listener: socket.socket, runroot: str, linger: float, alive: int) -> None:
    import json

    from capsa.engine.monitor.sleep import STATE_NAME, boot_argv, fresh_state
    from capsa.linux.atomicfile import write_atomic

    state = fresh_state(runroot, linger, listener.fileno(), sys.executable, sys.path)
    state["alive"] = alive
    path = os.path.join(runroot, STATE_NAME)
    write_atomic(path, json.dumps(state).encode(), 0o600, durable=False)
    for fd in (listener.fileno(), alive):
        os.set_inheritable(fd, True)
    argv = boot_argv(sys.executable, path)
    os.execv(argv[0], argv)


def run_monitor(
    args: MonitorArgs | FinishArgs, log: int, keep: tuple[int, ...], fresh: bool = False
) -> None:
    """In a freshly forked child: become a container's monitor in a session of its own,
    output to ``log``, no fd but ``keep`` inherited; never returns. ``fresh``: in a new
    interpreter, because the code this process imported is no longer what is on disk
    (capsa was upgraded under a running host: the container must get the new code)."""

    code = 1
    try:
        os.setsid()
        from capsa.engine.monitor.loop import Waker

        Waker.forget()  # a host's waker is not the monitor's
        detach_stdio(log, keep)
        if fresh:
            print("monitor: capsa changed since the host started; new code", file=sys.stderr)
            sys.stderr.flush()
            for fd in keep:
                os.set_inheritable(fd, True)
            from capsa.engine.monitor.args import dumps

            argv = [sys.executable, "-m", "capsa.engine.monitor.setup", dumps(args)]
            os.execv(sys.executable, argv)
        from capsa.engine.monitor import setup as monitor

        code = monitor.run(args)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def open_log(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def detach_stdio(log: int, keep: tuple[int, ...]) -> None:
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
