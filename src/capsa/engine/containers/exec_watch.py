"""An exec's watcher: the process that starts an exec, waits for it and reports its end.

A process ``exec``'d into a container is nobody's child once the runtime's entering
process exits, so whoever wants its exit code must be a child subreaper above it. The
engine does not make its caller one (a frontend may be a server with many execs):
it forks a watcher instead. The watcher, a subreaper, starts the exec (the process is
re-parented to it), tells the caller how the start went (with the pty's master when
there is one), lets go of the caller's terminal and pipes, waits for the process,
writes Docker's ``exec_die`` event and sends the exit code to the caller, if it still
listens. A detached exec's watcher also leaves the caller's session, so that it
outlives the command that started it.
"""

from __future__ import annotations

import array
import json
import os
import socket

from capsa import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from capsa.engine.backend import Created


class ExecSession:
    """A running exec, for the frontend to pump: its ``pid``, its pty's ``master`` (-1
    without a terminal), ``signal`` and ``resize`` it, then ``wait`` for its exit code,
    which the watcher sends on ``reports``."""

    def __init__(self, pid: int, master: int, reports: _Reports) -> None:
        self.pid, self.master, self.reports = pid, master, reports

    def signal(self, signum: int) -> None:
        from capsa.signames import send

        send(self.pid, signum)

    def resize(self, rows: int, cols: int) -> None:
        if self.master >= 0:
            from capsa.ptyio import set_winsize

            set_winsize(self.master, rows, cols)

    def wait(self) -> int:
        """The exec's exit code (255 if the watcher died first); the session closes."""
        try:
            code = self.reports.next().get("exit")
        finally:
            self.close()
        return code if isinstance(code, int) else 255

    def close(self) -> None:
        self.reports.close()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def watch(start: Callable[[], Created], died: Callable[[int], None], detach: bool) -> ExecSession:
    """Run ``start`` in a forked watcher; return once it has started the process (or
    raise what it raised). The watcher calls ``died(exit code)`` when the process ends."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        ours.close()
        _watcher(theirs, start, died, detach)
    theirs.close()
    return _first_report(_Reports(ours), lambda: os.waitpid(pid, 0))


def spawn_watch(request: dict[str, Any], fds: list[int], detach: bool) -> ExecSession:
    """The same, with a fresh interpreter as the watcher (``python -m`` this module):
    ``request`` holds the roots and the exec's plan, ``fds`` its stdio."""
    import subprocess
    import sys

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    request = {**request, "report_fd": theirs.fileno()}
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "capsa.engine.containers.exec_watch", json.dumps(request)],
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(), *fds),
            close_fds=True,
            start_new_session=detach,
        )
    finally:
        theirs.close()
    from capsa.engine import children

    children.track(child)  # it outlives this call: the server reaps it once done
    return _first_report(_Reports(ours), child.wait)


def _first_report(reports: _Reports, reap: Callable[[], object]) -> ExecSession:
    try:
        report = reports.next()
    except BaseException:
        reports.close()
        raise
    if report.get("ok"):
        fds = list(reports.fds)
        reports.fds = array.array("i")
        return ExecSession(int(str(report["pid"])), fds[0] if fds else -1, reports)
    reports.close()
    reap()  # it exits right after a failed start
    if not report:
        raise errors.Internal("exec: the exec's watcher died")
    kind = getattr(errors, str(report.get("kind")), None)
    if not (isinstance(kind, type) and issubclass(kind, errors.CapsaError)):
        kind = errors.Internal
    raise kind(str(report.get("message") or "exec failed"))


def main() -> None:
    """A spawned watcher: the roots and the plan in argv[1], the report socket and the
    stdio fds inherited."""
    import sys

    from capsa.engine.containers.execs import ExecPlan, plan_steps
    from capsa.engine.service_context import ServiceContext
    from capsa.oci.codec import from_dict

    request = json.loads(sys.argv[1])
    sock = socket.socket(fileno=int(request["report_fd"]))
    plan = from_dict(ExecPlan, request["plan"])
    start, died = plan_steps(ServiceContext.from_args(request), plan)
    _watcher(sock, start, died, detach=False)  # the spawn made its session already


def _watcher(
    sock: socket.socket, start: Callable[[], Created], died: Callable[[int], None], detach: bool
) -> NoReturn:
    from capsa.linux import syscalls as sc
    from capsa.linux.fds import close_all_except
    from capsa.runtime.foreground import wait_for

    try:
        if detach:
            os.setsid()
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        done = start()
    except BaseException as e:
        _send(sock, {"kind": type(e).__name__, "message": str(e)})
        os._exit(1)
    try:
        _send(sock, {"ok": True, "pid": done.pid}, [done.master] if done.master >= 0 else [])
        if done.master >= 0:
            os.close(done.master)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        close_all_except((sock.fileno(),))
        code = wait_for(done.pid)
        died(code)
        _send(sock, {"exit": code})
    finally:
        os._exit(0)


def _send(sock: socket.socket, report: dict[str, object], fds: list[int] | None = None) -> None:
    data = json.dumps(report).encode() + b"\n"
    try:
        if fds:
            sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            sock.sendall(data)
    except OSError:
        pass  # the caller is gone (a detached exec's command has exited)


class _Reports:
    """The watcher's report lines, one at a time, and the fds that came with them."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer, self.fds = sock, b"", array.array("i")

    def next(self) -> dict[str, object]:
        """The next report; ``{}`` when the watcher has gone without one."""
        while b"\n" not in self.buffer:
            chunk, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(payload) - len(payload) % self.fds.itemsize
                    self.fds.frombytes(payload[:usable])
            if not chunk:
                return {}
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return _decode(line)

    def close(self) -> None:
        self.sock.close()
        for fd in self.fds:
            os.close(fd)
        self.fds = array.array("i")


def _decode(line: bytes) -> dict[str, object]:
    try:
        report = json.loads(line or b"{}")
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


if __name__ == "__main__":
    main()
