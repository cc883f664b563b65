"""Signal numbers and handlers, and passing the signals a process receives on.

Numbers and ``set_handler`` come from ``_signal``, the C module that the stdlib's
``signal`` wraps: ``signal`` turns them into enums when imported, which pulls in
``enum``, ``functools`` and ``collections`` (about 4 ms of ``capsa-runtime``'s start).
Here they are plain ints, the values the kernel uses.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _impl
    from collections.abc import Iterable
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
set_handler = _impl.signal

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
    "forward_to",
    "set_handler",
]


def forward_to(pid: int, signals: Iterable[int]) -> None:
    """From now on, each of ``signals`` this process receives goes to ``pid`` instead
    (one that has exited is ignored)."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in signals:
        set_handler(sig, forward)
