"""The v1/hybrid driver on this machine's real cgroups (root)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from capsa.cgroups import CgroupManager, detect, open_manager
from capsa.cgroups.layout import CgroupLayout
from capsa.oci.runtime_spec import (
    BlockIOResources,
    CPUResources,
    HugepageLimit,
    MemoryResources,
    PidsResources,
    Resources,
)

pytestmark = pytest.mark.root


def _layout() -> CgroupLayout:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    layout = detect()
    if layout.version != 1:
        pytest.skip(f"host cgroups are {layout.mode}, not v1/hybrid")
    return layout


@pytest.fixture
def cg() -> Iterator[CgroupManager]:
    layout = _layout()
    parent = f"capsa-test-{secrets.token_hex(4)}"
    mgr = open_manager(f"{parent}/c1", layout=layout)
    try:
        yield mgr
    finally:
        if mgr.exists():
            mgr.kill_all(signal.SIGKILL)
        mgr.destroy()
        top = open_manager(parent, layout=layout)
        top.destroy()
        assert not top.exists()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"])


def test_limits_applied_and_read_back(cg: CgroupManager) -> None:
    cg.create()
    cg.create()  # idempotent
    res = Resources(
        memory=MemoryResources(limit=64 << 20, swap=96 << 20, reservation=16 << 20, swappiness=20),
        cpu=CPUResources(shares=256, quota=20000, period=100000, cpus="0", mems="0"),
        pids=PidsResources(limit=50),
        block_io=BlockIOResources(weight=200),
    )
    if "2MB" in detect().hugepage_sizes:
        res.hugepage_limits = [HugepageLimit("2MB", 2 << 21)]
    warnings = cg.apply(res)
    assert all("\n" not in w for w in warnings)
    enforced = cg.read_back(res)
    assert enforced and all(e.ok for e in enforced), enforced
    cg.update(Resources(memory=MemoryResources(limit=200 << 20, swap=400 << 20)))
    cg.update(Resources(memory=MemoryResources(limit=8 << 20, swap=8 << 20)))
    small = cg.read_back(Resources(memory=MemoryResources(limit=8 << 20, swap=8 << 20)))
    assert all(e.ok for e in small), small


def test_process_lifecycle(cg: CgroupManager) -> None:
    cg.create()
    cg.apply(Resources(pids=PidsResources(limit=20)))
    proc = _sleeper()
    try:
        cg.add(proc.pid)
        assert cg.pids() == [proc.pid]
        stats = cg.stats()
        assert stats.pids.current == 1 and stats.pids.limit == 20
        assert "usage" in stats.to_runc_json()["memory"]
        cg.freeze()
        assert cg.is_frozen()
        assert _state(proc.pid) in ("D", "T")
        cg.thaw()
        assert not cg.is_frozen()
        assert _state(proc.pid) == "S"
        cg.kill_all(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert cg.pids() == []
    plan = cg.mount_plan()
    assert {m.name for m in plan} >= {"memory", "pids", "freezer"}
    assert all(m.host_path.endswith(cg.path) for m in plan)
    cg.destroy()
    assert not cg.exists()
    assert all(not os.path.exists(m.host_path) for m in plan)


def test_memory_limit_oom_kills(cg: CgroupManager) -> None:
    cg.create()
    cg.apply(Resources(memory=MemoryResources(limit=32 << 20, swap=32 << 20)))
    code = "import sys; sys.stdin.readline(); b = b'x' * (100 << 20); print(len(b))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        cg.add(proc.pid)
        out, _ = proc.communicate(b"go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, out
    assert cg.oom_kill_count() >= 1
    assert cg.stats().memory.usage.max > 0


def _fork_and_join(cg: CgroupManager) -> tuple[int, str]:
    """From a single-threaded helper (capsa-runtime is one; a pytest-xdist worker is
    not), fork through the entry and join; return (pid, what the child saw)."""
    cg.create()
    r, w = os.pipe()
    helper = os.fork()
    if helper == 0:  # pragma: no cover - child
        try:
            entry = cg.open_entry()
            pid = entry.fork()
            if pid == 0:
                entry.join()
                with open("/proc/self/cgroup") as f:
                    seen = f.read()
                os.write(w, f"{int(entry.born_inside)}\n{seen}".encode())
                os._exit(0)
            entry.close()
            os.waitpid(pid, 0)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(helper, 0)
    return helper, out


def _assert_inside(cg: CgroupManager, proc_cgroup: str) -> None:
    lines = proc_cgroup.splitlines()
    assert len(lines) >= len(cg.layout.hierarchies)
    for line in lines:
        _, _, path = line.split(":", 2)
        assert path.endswith(cg.path), line


def test_entry_child_joins_every_hierarchy_by_itself(cg: CgroupManager) -> None:
    _, out = _fork_and_join(cg)
    born_inside, seen = out.split("\n", 1)
    _assert_inside(cg, seen)
    if cg.layout.unified is not None:
        assert born_inside == "1"  # clone3(CLONE_INTO_CGROUP) into the unified tree


def test_entry_falls_back_to_cgroup_procs_without_clone3(
    cg: CgroupManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from capsa.linux import clone

    def refuse(fd: int, namespaces: int = 0) -> int:
        raise OSError(errno.ENOSYS, "clone3 filtered")

    monkeypatch.setattr(clone, "fork_into_cgroup", refuse)
    _, out = _fork_and_join(cg)
    born_inside, seen = out.split("\n", 1)
    assert born_inside == "0"
    _assert_inside(cg, seen)


def test_entry_of_a_missing_cgroup_is_a_clear_error() -> None:
    from capsa.errors import NotFound

    gone = open_manager(f"capsa-test-gone-{secrets.token_hex(4)}", layout=_layout())
    with pytest.raises(NotFound, match="tasks"):
        gone.open_entry()
