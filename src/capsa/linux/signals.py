"""Passing the signals a process receives on to another one."""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


def forward_to(pid: int, signals: Iterable[int]) -> None:
    """From now on, each of ``signals`` this process receives goes to ``pid`` instead
    (one that has exited is ignored)."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in signals:
        signal.signal(sig, forward)
