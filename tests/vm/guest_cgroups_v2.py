"""The v2 driver on a real cgroup2 kernel; run inside the guest by test_cgroups_v2_vm.py.

Skips itself unless /sys/fs/cgroup is cgroup2. The guest's CPU is ~15x slower than the
host's: few processes, small allocations.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from capsa.cgroups import CgroupManager, detect, open_manager
from capsa.oci.runtime_spec import (
    BlockIOResources,
    CPUResources,
    DeviceCgroup,
    MemoryResources,
    PidsResources,
    Resources,
)


def _unified() -> bool:
    try:
        return detect().mode == "unified"
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _unified(), reason="/sys/fs/cgroup is not cgroup2")


@pytest.fixture
def cg() -> Iterator[CgroupManager]:
    parent = f"capsa-test-{secrets.token_hex(4)}"
    mgr = open_manager(f"{parent}/c1")
    mgr.create()
    try:
        yield mgr
    finally:
        if mgr.exists():
            mgr.kill_all(signal.SIGKILL)
            for _ in range(200):
                if not mgr.pids():
                    break
                time.sleep(0.05)
        mgr.destroy()
        open_manager(parent).destroy()


def _spawn(cg: CgroupManager, argv: list[str]) -> subprocess.Popen[bytes]:
    """``argv`` waits for a line on stdin, so it runs inside ``cg`` from its start."""
    proc = subprocess.Popen(
        ["sh", "-c", 'read x; exec "$@"', "sh", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    cg.add(proc.pid)
    return proc


def run_in(cg: CgroupManager, argv: list[str], timeout: int = 240) -> tuple[int, str]:
    proc = _spawn(cg, argv)
    out, _ = proc.communicate(b"go\n", timeout=timeout)
    return proc.returncode, out.decode(errors="replace")


def start_in(cg: CgroupManager, argv: list[str]) -> subprocess.Popen[bytes]:
    proc = _spawn(cg, argv)
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    return proc


def test_limits_read_back(cg: CgroupManager) -> None:
    res = Resources(
        memory=MemoryResources(limit=64 << 20, swap=64 << 20, reservation=8 << 20),
        cpu=CPUResources(shares=512, quota=50000, period=100000),
        pids=PidsResources(limit=30),
        block_io=BlockIOResources(weight=100),
    )
    warnings = cg.apply(res)
    got = {e.file: e for e in cg.read_back(res)}
    assert all(e.ok for e in got.values()), got
    assert got["memory.max"].in_force == str(64 << 20)
    assert got["memory.swap.max"].in_force == "0"
    assert got["cpu.weight"].in_force == "20"
    assert got["cpu.max"].in_force == "50000 100000"
    assert "io.weight" in got or "io.bfq.weight" in got or any("blkio" in w for w in warnings)
    if "io.weight" in got:
        assert got["io.weight"].in_force == "default 910"


def test_oom_kill_counted(cg: CgroupManager) -> None:
    cg.apply(Resources(memory=MemoryResources(limit=32 << 20, swap=32 << 20)))
    code = "b = b'x' * (100 << 20); print('NOT KILLED', len(b))"
    rc, out = run_in(cg, [sys.executable, "-S", "-c", code])
    assert rc == -signal.SIGKILL, out
    assert cg.oom_kill_count() >= 1


def test_pids_limit(cg: CgroupManager) -> None:
    cg.apply(Resources(pids=PidsResources(limit=4)))
    script = "for i in 1 2 3 4 5 6 7 8; do sleep 3 & done 2>/dev/null; wait; echo done"
    run_in(cg, ["sh", "-c", script])
    with open(os.path.join(f"/sys/fs/cgroup{cg.path}", "pids.events")) as f:
        events = f.read()
    assert "max 0" not in events, events


def test_cpu_max_throttles(cg: CgroupManager) -> None:
    cg.apply(Resources(cpu=CPUResources(quota=20000, period=100000)))
    run_in(cg, ["timeout", "1", "sh", "-c", "while :; do :; done"])
    stats = cg.stats().to_runc_json()
    assert stats["cpu"]["throttling"]["throttledPeriods"] >= 1, stats["cpu"]
    assert stats["cpu"]["usage"]["total"] > 0


def test_device_filter(cg: CgroupManager) -> None:
    cg.apply(
        Resources(
            devices=[
                DeviceCgroup(allow=True, access="rwm"),
                DeviceCgroup(allow=False, type="c", major=1, minor=3, access="rwm"),
            ]
        )
    )
    assert any(e.name == "devices" and e.ok for e in cg.read_back(Resources(devices=[])))
    code = (
        "import errno\n"
        "for p in ('/dev/null', '/dev/zero'):\n"
        "    try:\n"
        "        open(p, 'rb').close(); print(p, 'ok')\n"
        "    except OSError as e:\n"
        "        print(p, errno.errorcode[e.errno])\n"
    )
    _, out = run_in(cg, [sys.executable, "-S", "-c", code])
    assert "/dev/null EPERM" in out, out
    assert "/dev/zero ok" in out, out


def test_freeze_thaw_stats_destroy(cg: CgroupManager) -> None:
    proc = start_in(cg, ["sleep", "300"])
    time.sleep(0.2)
    assert cg.pids() == [proc.pid]
    cg.freeze()
    assert cg.is_frozen()
    cg.thaw()
    assert not cg.is_frozen()
    data = cg.stats().to_runc_json()
    assert data["pids"]["current"] == 1
    assert data["memory"]["usage"]["usage"] > 0
    cg.kill_all(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    for _ in range(200):
        if not cg.pids():
            break
        time.sleep(0.05)
    cg.destroy()
    assert not cg.exists()
