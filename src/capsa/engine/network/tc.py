"""Bandwidth limits with a token bucket (tbf) as the root qdisc of an interface.

A qdisc shapes what an interface *sends*: the host end of a veth limits traffic into
the container, the container end (inside its netns) limits traffic out of it. Rates
are read from text (``10mbit``) by ``capsa.syntax.sizes.parse_rate``.
"""

from __future__ import annotations

from capsa.engine.network.bridge import netlink_error
from capsa.errors import Internal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyroute2 import IPRoute

ENOENT = 2
EINVAL = 22
MAX_RATE = (1 << 32) - 1  # bytes/s in tc_tbf_qopt.rate (about 34 gbit)
LATENCY = "200ms"
MIN_BURST = 32 * 1024


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
