"""Signal numbers and handlers, and passing the signals a process receives on.

Numbers and ``set_handler`` come from ``_signal``, the C module that the stdlib's
``signal`` wraps: ``signal`` turns them into enums when imported, which pulls in
``enum``, ``functools`` and ``collections`` (about 4 ms of ``capsa-runtime``'s start).
Here they are plain ints, the values the kernel uses.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _impl
else:
    import _signal as _impl

NSIG: int = _impl.NSIG
SIG_DFL = _impl.SIG_DFL
SIGCHLD: int = _impl.SIGCHLD
SIGCONT: int = _impl.SIGCONT
SIGHUP: int = _impl.SIGHUP
SIGINT: int = _impl.SIGINT
SIGKILL: int = _impl.SIGKILL
SIGPIPE: int = _impl.SIGPIPE
SIGQUIT: int = _impl.SIGQUIT
SIGTERM: int = _impl.SIGTERM
SIGUSR1: int = _impl.SIGUSR1
SIGUSR2: int = _impl.SIGUSR2
SIGXFSZ: int = _impl.SIGXFSZ
SIG_SETMASK: int = _impl.SIG_SETMASK
set_handler = _impl.signal
get_handler = _impl.getsignal
set_mask = _impl.pthread_sigmask

__all__ = [
    "NSIG",
    "SIGCHLD",
    "SIGCONT",
    "SIGHUP",
    "SIGINT",
    "SIGKILL",
    "SIGPIPE",
    "SIGQUIT",
    "SIGTERM",
    "SIGUSR1",
    "SIGUSR2",
    "SIGXFSZ",
    "SIG_DFL",
    "SIG_SETMASK",
    "defaults",
    "get_handler",
    "set_handler",
    "set_mask",
]


def defaults() -> None:
    """Every signal at its default disposition and none blocked, as a new program
    should start: Python ignores SIGPIPE and SIGXFSZ and handles SIGINT, and whoever
    started this process (a monitor, a shell with ``nohup``) may ignore or block more.
    Ignored signals stay ignored across ``execve``; handlers and the mask do not
    reset either way, so both are cleared here."""
    for signum in range(1, NSIG):
        if signum in (SIGKILL, _SIGSTOP) or get_handler(signum) == SIG_DFL:
            continue
        try:
            set_handler(signum, SIG_DFL)
        except (OSError, ValueError):  # the C library's own (32, 33): reset by execve
            pass
    set_mask(SIG_SETMASK, ())


_SIGSTOP: int = _impl.SIGSTOP
