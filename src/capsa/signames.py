"""Signal names as runc, Docker and podman read them (``9``, ``KILL``, ``SIGKILL``,
``sigkill``, ``SIGRTMIN+3``), for every layer: pure, with no kernel access."""

from __future__ import annotations

from capsa.errors import InvalidArgument

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
