"""Shared test helpers: busybox rootfs, bundles, the runtime wrapper, probe, leak checks."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

TEST_PREFIX = "capsa-test-"


def unique_name(prefix: str = TEST_PREFIX) -> str:
    """``capsa-test-<8 hex>``: the name of anything a test creates on the kernel."""
    return f"{prefix}{secrets.token_hex(4)}"


def requires(*binaries: str, root: bool = True) -> None:
    """Skip the calling test unless running as root and every binary is found."""
    if root and os.geteuid() != 0:
        pytest.skip("needs root")
    for binary in binaries:
        if shutil.which(binary) is None and not Path(binary).is_file():
            pytest.skip(f"needs {binary}")


def wait_for(predicate: Callable[[], object], timeout: float = 10, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


def cgroup_dir(pid: int, controller: str) -> Path:
    """The host directory of ``pid``'s cgroup for a v1 ``controller`` (e.g. memory)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup", controller, path.lstrip("/"))
    raise LookupError(f"pid {pid} has no {controller} cgroup")
