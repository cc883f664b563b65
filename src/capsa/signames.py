"""Signals for every layer: names as runc, Docker and podman read them (``9``,
``KILL``, ``SIGKILL``, ``sigkill``, ``SIGRTMIN+3``), and passing them on to another
process (a foreground container process, a command forked elsewhere)."""

from __future__ import annotations

import os

from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

NSIG = 65  # Linux: signals 1-64


def signal_number(name: str, *, allow_zero: bool = False) -> int:
    """The number ``name`` names. With ``allow_zero`` (runc's ``kill``), ``0`` too: no
    signal, whether the container's init is alive."""
    if name.isdigit():
        num = int(name)
        if (0 if allow_zero else 1) <= num < NSIG:
            return num
    else:
        import signal  # the names: an enum, imported only here

        upper = name.upper()
        upper = upper if upper.startswith("SIG") else "SIG" + upper
        sig = getattr(signal.Signals, upper, None) if upper in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
        if upper.startswith("SIGRTMIN+") and upper[9:].isdigit():
            number = int(signal.SIGRTMIN) + int(upper[9:])
            if number < NSIG:
                return number
    raise InvalidArgument(f"invalid signal {name!r}")


def send(pid: int, signum: int) -> None:
    """``kill(pid, signum)``; a process that has exited meanwhile is no error."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def forward_to(pid: int, signals: Iterable[int]) -> None:
    """From now on, each of ``signals`` this process receives goes to ``pid``."""
    import _signal  # not ``signal``: its enums cost a cold command milliseconds

    for signum in signals:
        _signal.signal(signum, lambda n, _frame: send(pid, n))
