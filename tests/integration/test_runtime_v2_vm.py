"""capsa-runtime on cgroup v2, tested for real in a cgroup2-only qemu guest.

One boot for the module: the guest runs tests/vm/guest_runtime_v2.py with pytest and
this module checks that it passed. Skips (with the harness's reason) when qemu, the
kernel image or its modules are missing.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
from tests.helpers.cg2vm import GuestResult, run_in_guest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.timeout(1200)]

GUEST_TESTS = REPO / "tests" / "vm" / "guest_runtime_v2.py"


@pytest.fixture(scope="module")
def guest() -> GuestResult:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    python = shlex.quote(sys.executable)
    script = (
        f"cd {shlex.quote(str(REPO))} || exit 98\n"
        f"{python} -m pytest -q -p no:cacheprovider -o addopts= --timeout=900 "
        f"{shlex.quote(str(GUEST_TESTS))} -rA\n"
    )
    return run_in_guest(script, timeout=1140)


def test_guest_runtime_suite_passes(guest: GuestResult) -> None:
    assert guest.rc == 0, guest.output
    assert " passed" in guest.output and "skipped" not in guest.output, guest.output
