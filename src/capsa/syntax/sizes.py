"""Sizes (``512m``, ``1.5GiB``), ``--cpus``, rates (``10mbit``) and device throttles.

Sizes are Docker's ``units.RAMInBytes``: binary units, as ``--memory``, ``--shm-size``,
``--tmpfs size=``, ``--device-read-bps`` and the json-file ``max-size`` read them.
"""

from __future__ import annotations

from capsa.engine.containers.limits import INT64_MAX
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.types import ThrottleSpec

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DIGITS = frozenset("0123456789")


def ram_in_bytes(text: str) -> int | None:
    """Docker's RAMInBytes (``512m``, ``1.5GiB``, ``1024``), or None if ``text`` is not
    one: digits with an optional fraction, an optional space, unit, ``i`` and ``b``."""
    t = text.strip().lower()
    t = t.removesuffix("b")
    t = t.removesuffix("i")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    number = t[: len(t) - len(unit)].removesuffix(" ")
    whole, dot, frac = number.partition(".")
    if not whole or not set(whole) <= _DIGITS or (dot and not frac) or not set(frac) <= _DIGITS:
        return None
    if len(whole) > 20:
        return None
    frac = frac[:20]  # finer than a byte: what a float would have kept is plenty
    value = int(whole) * _UNITS[unit] + int(frac or "0") * _UNITS[unit] // 10 ** len(frac)
    return value if value <= INT64_MAX else None


def parse_bytes(text: str, what: str = "size") -> int:
    """A size; InvalidArgument ``invalid WHAT: 'TEXT'`` otherwise."""
    value = ram_in_bytes(text)
    if value is None:
        raise InvalidArgument(f"invalid {what}: '{text}'")
    return value


def parse_cpus(text: str) -> int:
    """``--cpus 1.5`` in billionths of a CPU, as Docker's ParseCPUs reads it (the range
    is the engine's: ``capsa.engine.containers.limits.nano_cpus``)."""
    from decimal import Decimal, InvalidOperation

    try:
        cpus = Decimal(text)
    except InvalidOperation:
        cpus = Decimal("NaN")
    if not cpus.is_finite() or not -(10**30) < cpus < 10**30:
        raise InvalidArgument(f"failed to parse {text} as a rational number")
    nano = cpus * 1_000_000_000
    if nano != nano.to_integral_value():
        raise InvalidArgument("value is too precise")
    return int(nano)


def parse_throttle(text: str, iops: bool) -> ThrottleSpec:
    """``--device-read-bps /dev/sda:10m`` (a size), ``--device-read-iops /dev/sda:100``."""
    from capsa.engine.containers.types import ThrottleSpec

    path, _, rate = text.rpartition(":")
    if not path.startswith("/dev/"):
        raise InvalidArgument(f"invalid device path in {text!r}")
    if iops:
        if not (rate and set(rate) <= _DIGITS) or int(rate) > INT64_MAX:
            raise InvalidArgument(
                f"invalid rate for device: {text}. The correct format is "
                "<device-path>:<number>. Number must be a positive integer"
            )
        return ThrottleSpec(path=path, rate=int(rate))
    return ThrottleSpec(path=path, rate=parse_bytes(rate, "rate"))


_RATE_UNITS = {
    "": 1,
    "bit": 1,
    "k": 1000,
    "kbit": 1000,
    "m": 10**6,
    "mbit": 10**6,
    "g": 10**9,
    "gbit": 10**9,
    "kbps": 8000,
    "mbps": 8 * 10**6,
    "gbps": 8 * 10**9,
}


def parse_rate(text: str) -> int:
    """``10mbit``, ``512kbit``, ``1gbit``, ``2mbps`` (bytes), a bare number (bit/s) -> bit/s
    (``--network-rate-in``/``--network-rate-out``, shaped by ``capsa.engine.network.tc``)."""
    raw = text.strip().lower()
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits) :]
    try:
        value = float(digits)
    except ValueError:
        raise InvalidArgument(f"invalid rate {text}") from None
    bits = value * _RATE_UNITS.get(unit, 0)
    if unit not in _RATE_UNITS or not 0 <= bits < 2**64:  # also inf and nan
        raise InvalidArgument(f"invalid rate {text}")
    return int(bits)
