"""Bandwidth limits with a token bucket (tbf) as the root qdisc of an interface.

A qdisc shapes what an interface *sends*: the host end of a veth limits traffic into
the container, the container end (inside its netns) limits traffic out of it.
"""

from __future__ import annotations

from capsa.engine.network.bridge import netlink_error
from capsa.errors import Internal, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyroute2 import IPRoute

ENOENT = 2
EINVAL = 22
MAX_RATE = (1 << 32) - 1  # bytes/s in tc_tbf_qopt.rate (about 34 gbit)
LATENCY = "200ms"
MIN_BURST = 32 * 1024

_UNITS = {
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
    """``10mbit``, ``512kbit``, ``1gbit``, ``2mbps`` (bytes), a bare number (bit/s) -> bit/s."""
    raw = text.strip().lower()
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits) :]
    try:
        value = float(digits)
    except ValueError:
        raise InvalidArgument(f"invalid rate {text}") from None
    bits = value * _UNITS.get(unit, 0)
    if unit not in _UNITS or not 0 <= bits < 2**64:  # also inf and nan
        raise InvalidArgument(f"invalid rate {text}")
    return int(bits)


def limit(ipr: IPRoute, index: int, bps: int) -> None:
    """Shape what ``index`` sends to ``bps`` bit/s; 0 removes the limit."""
    if bps <= 0:
        clear(ipr, index)
        return
    rate = min(max(bps // 8, 1), MAX_RATE)
    burst = max(rate // 50, MIN_BURST)  # 20 ms worth, enough for GSO segments
    try:
        ipr.tc("replace", "tbf", index, 0x10000, rate=rate, burst=burst, latency=LATENCY)
    except netlink_error() as e:
        raise Internal(f"set rate limit: {e}") from None


def clear(ipr: IPRoute, index: int) -> None:
    """Back to the default qdisc; nothing to remove is fine."""
    try:
        ipr.tc("del", index=index, parent=0xFFFFFFFF)
    except netlink_error() as e:
        if getattr(e, "code", None) not in (ENOENT, EINVAL):
            raise Internal(f"clear rate limit: {e}") from None
