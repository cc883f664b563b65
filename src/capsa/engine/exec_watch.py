"""``exec --detach``: a watcher process that outlives the command and sees the exec end.

A detached exec's process is nobody's child once the runtime's entering process exits,
so nothing could tell its exit code, and Docker's ``exec_die`` event (with ``exitCode``)
was never written. The command forks a watcher first: in its own session, a child
subreaper, it starts the exec (the process is re-parented to it), tells the command how
the start went, lets go of the command's terminal and pipes, waits for the process, and
reports its end. The command returns as soon as the process runs.
"""

from __future__ import annotations

import json
import os

from capsa import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from capsa.engine.backend import Created

# errors a start can raise that the command re-raises as they were
_KINDS: dict[str, type[errors.CapsaError]] = {
    cls.__name__: cls
    for cls in (
        errors.NotFound,
        errors.CommandNotFound,
        errors.CommandNotRunnable,
        errors.AlreadyExists,
        errors.Conflict,
        errors.InvalidArgument,
        errors.FailedPrecondition,
        errors.PermissionDenied,
        errors.Unavailable,
        errors.Internal,
    )
}


def watch_detached(start: Callable[[], Created], died: Callable[[int], None]) -> None:
    """Run ``start`` in a watcher; return once it has started the process (or raise
    what it raised); the watcher calls ``died(exit code)`` when the process ends."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _watcher(w, start, died)
    os.close(w)
    try:
        report = _read_all(r)
    finally:
        os.close(r)
    if report.get("ok"):
        return
    if not report:  # the watcher died before it could say
        os.waitpid(pid, 0)
        raise errors.Internal("exec: the detached exec's watcher died")
    cls = _KINDS.get(str(report.get("kind")), errors.Internal)
    os.waitpid(pid, 0)  # it exits right after a failed start
    raise cls(str(report.get("message") or "exec failed"))


def _watcher(w: int, start: Callable[[], Created], died: Callable[[int], None]) -> NoReturn:
    from capsa.linux import syscalls as sc
    from capsa.linux.fds import close_all_except
    from capsa.runtime import foreground

    try:
        os.setsid()
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        done = start()
    except BaseException as e:
        report: dict[str, object] = {"kind": type(e).__name__, "message": str(e)}
        _send(w, report)
        os._exit(1)
    try:
        if done.master >= 0:
            os.close(done.master)
        _send(w, {"ok": True})
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        close_all_except(())
        code = foreground.wait_foreground(done.pid)
        died(code)
    finally:
        os._exit(0)


def _send(w: int, report: dict[str, object]) -> None:
    try:
        os.write(w, json.dumps(report).encode())
    finally:
        os.close(w)


def _read_all(fd: int) -> dict[str, object]:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    try:
        report = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}
