"""Waiting for a container process in the foreground (`run`, `exec` without -d).

The runtime makes itself a child subreaper before forking so the container process,
whose intermediate parent exits, is re-parented to it and can be waited for. Signals
the runtime receives are forwarded; with a terminal, a pty proxy runs until the
process exits.
"""

from __future__ import annotations

import os
import signal

from capsa.linux import syscalls as sc
from capsa.linux.signals import forward_to

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
)


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

    forward_to(pid, FORWARDED)
    stop = [False]
    proxy_thread = None
    if master is not None:
        from capsa.runtime.console import follow_window_size, proxy

        follow_window_size(master)
        import threading

        proxy_thread = threading.Thread(target=proxy, args=(master, stop), daemon=True)
        proxy_thread.start()
    code = 255
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if got == pid:
            code = exit_status(status)
            break
    if proxy_thread is not None:
        proxy_thread.join(timeout=2)  # drain what the process wrote before it exited
        stop[0] = True
        proxy_thread.join(timeout=1)
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    return code
