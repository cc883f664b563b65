"""Waiting for a container process in the foreground (`run`, `exec` without -d).

The runtime makes itself a child subreaper before forking so the container process,
whose intermediate parent exits, is re-parented to it and can be waited for. Signals
the runtime receives are forwarded; with a terminal, a pty proxy runs until the
process exits.
"""

from __future__ import annotations

import os

from capsa.linux import signals as sig
from capsa.linux import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

FORWARDED = (
    sig.SIGINT,
    sig.SIGTERM,
    sig.SIGHUP,
    sig.SIGQUIT,
    sig.SIGUSR1,
    sig.SIGUSR2,
    sig.SIGCONT,
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

    sig.forward_to(pid, FORWARDED)
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
    for signum in FORWARDED:
        sig.set_handler(signum, sig.SIG_DFL)
    return code
