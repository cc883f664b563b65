"""Leaving a process without the interpreter's teardown.

Collecting every module at exit costs a command as short as ``capsa ps`` or a
``capsa-runtime`` verb several milliseconds. The callers have closed what they opened by
the time they exit; only the standard streams still hold buffered output.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def exit_now(status: int) -> NoReturn:
    """Flush stdout and stderr (a closed pipe, as in ``| head``, is fine), then ``_exit``."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with that fd closed
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status & 0xFF)
