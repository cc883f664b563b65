"""The client side of the monitor host (``capsa.engine.monitor_host``): what a ``capsa``
command and a container's monitor call. Finding the run root's host (or starting one:
its guardian first, which forks the host), asking it to fork a monitor, a monitor
telling the host about its loop, and how a forked monitor leaves its parent's state.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from capsa.engine.warm_wire import SOCKET_NAME
from capsa.errors import Internal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOCK_NAME = "monitor-host.lock"


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


def tell(channel: int, op: str, args: dict[str, Any], fds: list[int]) -> bool:
    """From a container's monitor to the host: "adopt" (hand the running container's
    loop over), "standby" (a copy of it), "exited" (``args``: how it ended)."""
    message = json.dumps({"op": op, "args": args, "fds": fds}).encode()
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
            detach_stdio(open_log(os.path.join(runroot, "monitor-host.log")), (listener.fileno(),))
            from capsa.engine.monitor_guardian import Guardian

            Guardian(listener, runroot, linger).run()  # forks the host, its child
            code = 0
        else:
            code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def run_monitor(
    args: dict[str, Any], log: int, keep: tuple[int, ...], fresh: bool = False
) -> None:
    """In a freshly forked child: become a container's monitor in a session of its own,
    output to ``log``, no fd but ``keep`` inherited; never returns. ``fresh``: in a new
    interpreter, because the code this process imported is no longer what is on disk
    (capsa was upgraded under a running host: the container must get the new code)."""

    code = 1
    try:
        os.setsid()
        from capsa.engine.monitor_loop import Waker

        Waker.forget()  # a host's waker is not the monitor's
        detach_stdio(log, keep)
        if fresh:
            print("monitor: capsa changed since the host started; new code", file=sys.stderr)
            sys.stderr.flush()
            for fd in keep:
                os.set_inheritable(fd, True)
            argv = [sys.executable, "-m", "capsa.engine.monitor", json.dumps(args)]
            os.execv(sys.executable, argv)
        from capsa.engine import monitor

        code = monitor.main(["monitor", json.dumps(args)])
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
