"""Waiting for a container process in the foreground (`run`, `exec` without -d).

The runtime makes itself a child subreaper before forking so the container process,
whose intermediate parent exits, is re-parented to it and can be waited for. Signals
the runtime receives are forwarded; with a terminal, a pty proxy runs until the
process exits.
"""

from __future__ import annotations

import os

from capsa.linux import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket


def become_subreaper() -> None:
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)


def console_pair() -> tuple[socket.socket, socket.socket]:
    """(ours, the container's) ends of a socket carrying the pty master."""
    import socket

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def exit_status(status: int) -> int:
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 255


def wait_foreground(pid: int, master: int | None = None) -> int:
    """Forward signals to ``pid``, proxy its pty if any, return its exit code."""
    from capsa.ptyio import foreground
    from capsa.signames import send

    return foreground(
        -1 if master is None else master, lambda: wait_for(pid), lambda n: send(pid, n)
    )


def wait_for(pid: int) -> int:
    """Reap children until ``pid`` (its exit code; 255 if it is not ours to wait for)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if got == pid:
            return exit_status(status)
