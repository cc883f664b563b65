"""Closing what a forked child inherited."""

from __future__ import annotations

import os


def close_all_except(keep: tuple[int, ...] = ()) -> None:
    """Close every fd from 3 up but ``keep`` (all of them: a parent may hold fds
    numbered past 1024)."""
    import resource

    start = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
