"""freezer: v1 freezer.state, v2 cgroup.freeze; freezing waits until the kernel is done."""

from __future__ import annotations

import time

from capsa.cgroups import fs
from capsa.errors import Conflict

H = "freezer"
_TIMEOUT = 10.0


def _pause(attempt: int) -> None:
    time.sleep(min(0.0005 * (attempt + 1), 0.01))


def state_v1(directory: str) -> str:
    return fs.read(directory, "freezer.state").strip()


def freeze_v1(directory: str, timeout: float = _TIMEOUT) -> None:
    """Write FROZEN until the state reads FROZEN (tasks in D state can delay it)."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        if attempt % 100 == 99:
            # like runc: thaw now and then so tasks stuck in the kernel can move on
            fs.write(directory, "freezer.state", "THAWED")
            time.sleep(0.01)
        fs.write(directory, "freezer.state", "FROZEN")
        if state_v1(directory) == "FROZEN":
            return
        if time.monotonic() > deadline:
            fs.write(directory, "freezer.state", "THAWED")
            raise Conflict(f"cannot freeze cgroup {directory}: still freezing")
        _pause(attempt)
        attempt += 1


def thaw_v1(directory: str) -> None:
    fs.write(directory, "freezer.state", "THAWED")


def frozen_v2(directory: str) -> bool:
    return fs.read_flat_keyed(directory, "cgroup.events").get("frozen", 0) == 1


def _wait_v2(directory: str, frozen: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    attempt = 0
    while frozen_v2(directory) != frozen:
        if time.monotonic() > deadline:
            return False
        _pause(attempt)
        attempt += 1
    return True


def freeze_v2(directory: str, timeout: float = _TIMEOUT) -> None:
    fs.write(directory, "cgroup.freeze", "1")
    if not _wait_v2(directory, True, timeout):
        fs.write(directory, "cgroup.freeze", "0")
        raise Conflict(f"cannot freeze cgroup {directory}: still freezing")


def thaw_v2(directory: str, timeout: float = _TIMEOUT) -> None:
    fs.write(directory, "cgroup.freeze", "0")
    if not _wait_v2(directory, False, timeout):
        raise Conflict(f"cannot thaw cgroup {directory}")
