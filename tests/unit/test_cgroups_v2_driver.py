"""The v2 driver over a temp-dir fake cgroupfs; conversions as runc does them."""

from __future__ import annotations

from pathlib import Path

import pytest

from capsa.cgroups import devices_bpf, fs, open_manager, parse_mountinfo
from capsa.cgroups.blkio import weight_to_io
from capsa.cgroups.cpu import shares_to_weight
from capsa.cgroups.devices_bpf import Rule
from capsa.cgroups.v2 import V2Manager
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import (
    BlockIOResources,
    CPUResources,
    DeviceCgroup,
    HugepageLimit,
    MemoryResources,
    NetworkResources,
    PidsResources,
    Resources,
    ThrottleDevice,
)

CONTROLLERS = "cpuset cpu io memory hugetlb pids"
LEAF = {
    "cgroup.controllers": CONTROLLERS,
    "cgroup.subtree_control": "",
    "cgroup.procs": "",
    "cgroup.freeze": "0",
    "cgroup.events": "populated 1\nfrozen 0\n",
    "cgroup.kill": "",
    "memory.max": "max",
    "memory.swap.max": "max",
    "memory.low": "0",
    "memory.high": "max",
    "memory.current": "8192",
    "memory.peak": "16384",
    "memory.swap.current": "4096",
    "memory.events": "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n",
    "memory.stat": "anon 4096\nfile 123\n",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.max.burst": "0",
    "cpu.stat": "usage_usec 10\nuser_usec 7\nsystem_usec 3\nnr_periods 4\n"
    "nr_throttled 1\nthrottled_usec 2\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "pids.max": "max",
    "pids.current": "2",
    "io.weight": "default 100",
    "io.max": "",
    "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
    "hugetlb.2MB.max": "max",
    "hugetlb.2MB.current": "0",
    "hugetlb.2MB.events": "max 1\n",
}


@pytest.fixture
def cg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[V2Manager, Path]:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text(CONTROLLERS)
    (root / "cgroup.subtree_control").write_text("")
    layout = parse_mountinfo(
        f"29 23 0:26 / {root} rw - cgroup2 cgroup2 rw\n",
        str(root),
        unified_controllers=frozenset(CONTROLLERS.split()),
        hugepage_sizes=("2MB",),
    )
    mgr = open_manager("/capsa/c1", layout=layout)
    assert isinstance(mgr, V2Manager)
    enabled: list[tuple[str, str]] = []
    real = fs.write

    def write(directory: str, name: str, value: str) -> None:
        if name == "cgroup.subtree_control":
            enabled.append((directory, value))
        real(directory, name, value)

    monkeypatch.setattr(fs, "write", write)
    (root / "capsa").mkdir()
    (root / "capsa" / "cgroup.controllers").write_text(CONTROLLERS)
    (root / "capsa" / "cgroup.subtree_control").write_text("")
    mgr.create()
    assert (str(root), "+memory") in enabled and (str(root / "capsa"), "+pids") in enabled
    for name, value in LEAF.items():
        (root / "capsa" / "c1" / name).write_text(value)
    return mgr, root


def leaf(root: Path, name: str) -> str:
    return (root / "capsa" / "c1" / name).read_text()


def test_conversions() -> None:
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(0) == 0
    assert weight_to_io(10) == 1
    assert weight_to_io(1000) == 10000
    assert weight_to_io(500) == 4950


def test_apply_writes_limits(cg: tuple[V2Manager, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    mgr, root = cg
    installed: list[tuple[str, list[Rule]]] = []
    monkeypatch.setattr(devices_bpf, "install", lambda d, r: installed.append((d, r)))
    res = Resources(
        memory=MemoryResources(limit=64 << 20, swap=96 << 20, reservation=1 << 20, swappiness=5),
        cpu=CPUResources(
            shares=1024,
            quota=50000,
            period=100000,
            burst=10,
            cpus="0",
            mems="0",
            realtime_runtime=1000,
        ),
        pids=PidsResources(limit=16),
        block_io=BlockIOResources(
            weight=500,
            throttle_read_bps_device=[ThrottleDevice(8, 0, 1000)],
            throttle_write_iops_device=[ThrottleDevice(8, 0, 0)],
        ),
        hugepage_limits=[HugepageLimit("2MB", 2 << 20)],
        network=NetworkResources(class_id=1),
        unified={"memory.high": "50000000"},
        devices=[DeviceCgroup(allow=False), DeviceCgroup(allow=True, type="c", major=1, minor=3)],
    )
    warnings = mgr.apply(res)
    assert leaf(root, "memory.max") == str(64 << 20)
    assert leaf(root, "memory.swap.max") == str(32 << 20)  # swap only, not mem+swap
    assert leaf(root, "memory.low") == str(1 << 20)
    assert leaf(root, "cpu.weight") == "39"
    assert leaf(root, "cpu.max") == "50000 100000"
    assert leaf(root, "cpu.max.burst") == "10"
    assert leaf(root, "cpuset.cpus") == "0"
    assert leaf(root, "pids.max") == "16"
    assert leaf(root, "io.weight") == "default 4950"
    assert leaf(root, "io.max") == "8:0 wiops=max"  # last write; the fake keeps only one
    assert leaf(root, "hugetlb.2MB.max") == str(2 << 20)
    assert leaf(root, "memory.high") == "50000000"
    assert installed and installed[0][0] == str(root / "capsa" / "c1")
    assert [r.allow for r in installed[0][1]] == [False, True]
    joined = "\n".join(warnings)
    assert "swappiness" in joined and "realtime" in joined and "classID" in joined


@pytest.mark.parametrize(
    "mem",
    [
        MemoryResources(swap=1 << 20),  # swap without a memory limit
        MemoryResources(limit=2 << 20, swap=1 << 20),
    ],
)
def test_invalid_swap(cg: tuple[V2Manager, Path], mem: MemoryResources) -> None:
    mgr, root = cg
    with pytest.raises(InvalidArgument):
        mgr.apply(Resources(memory=mem, pids=PidsResources(limit=3)))
    assert leaf(root, "pids.max") == "max"


def test_update_only_given_fields(cg: tuple[V2Manager, Path]) -> None:
    mgr, root = cg
    mgr.apply(
        Resources(
            memory=MemoryResources(limit=64 << 20, swap=128 << 20),
            cpu=CPUResources(quota=20000, period=50000),
        )
    )
    mgr.update(Resources(memory=MemoryResources(swap=96 << 20), cpu=CPUResources(period=80000)))
    assert leaf(root, "memory.max") == str(64 << 20)
    assert leaf(root, "memory.swap.max") == str(32 << 20)  # from the limit in force
    assert leaf(root, "cpu.max") == "20000 80000"  # quota kept
    mgr.update(Resources(memory=MemoryResources(limit=-1)))
    assert leaf(root, "memory.max") == "max" and leaf(root, "memory.swap.max") == "max"


def test_unified_rejects_bad_keys(cg: tuple[V2Manager, Path]) -> None:
    mgr, _ = cg
    for key in ("cgroup.procs", "memory/../x", "rdma.max", "memory.nosuchfile"):
        with pytest.raises(InvalidArgument):
            mgr.apply(Resources(unified={key: "1"}))


def test_read_back(cg: tuple[V2Manager, Path]) -> None:
    mgr, root = cg
    res = Resources(
        pids=PidsResources(limit=0),
        cpu=CPUResources(quota=1000),
        block_io=BlockIOResources(throttle_read_bps_device=[ThrottleDevice(8, 0, 5)]),
    )
    mgr.apply(res)
    (root / "capsa" / "c1" / "cpu.max").write_text("1000 100000\n")
    (root / "capsa" / "c1" / "io.max").write_text("8:0 rbps=5 wbps=max riops=max wiops=max\n")
    got = {e.name: e for e in mgr.read_back(res)}
    assert got["pids.limit"].ok and got["pids.limit"].in_force == "max"
    assert got["cpu.quota"].ok
    assert got["blockIO.read_bps_device"].ok


def test_freeze_kill_and_stats(cg: tuple[V2Manager, Path]) -> None:
    mgr, root = cg
    (root / "capsa" / "c1" / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    mgr.freeze()
    assert leaf(root, "cgroup.freeze") == "1" and mgr.is_frozen()
    mgr.kill_all(9)
    assert leaf(root, "cgroup.kill") == "1"
    assert mgr.oom_kill_count() == 2
    data = mgr.stats().to_runc_json()
    assert data["cpu"]["usage"]["total"] == 10_000 and data["cpu"]["usage"]["user"] == 7_000
    assert data["cpu"]["throttling"] == {"periods": 4, "throttledPeriods": 1, "throttledTime": 2000}
    assert data["memory"]["usage"] == {
        "limit": fs.UNLIMITED,
        "usage": 8192,
        "max": 16384,
        "failcnt": 5,
    }
    assert data["memory"]["swap"]["usage"] == 8192 + 4096
    assert data["memory"]["cache"] == 123
    assert data["pids"] == {"current": 2}  # runc's omitempty: no limit
    assert data["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 100},  # minor 0 left out, as runc does
        {"major": 8, "op": "Write", "value": 200},
    ]
    assert data["hugetlb"] == {"2MB": {"failcnt": 1}}
    assert data["cpuset"] == {  # runc reads no cpuset stats on cgroup v2
        "cpu_exclusive": 0,
        "mem_hardwall": 0,
        "mem_exclusive": 0,
        "memory_migrate": 0,
        "memory_spread_page": 0,
        "memory_spread_slab": 0,
        "memory_pressure": 0,
        "sched_load_balance": 0,
        "sched_relax_domain_level": 0,
    }
    assert mgr.mount_plan()[0].host_path == str(root / "capsa" / "c1")
    for f in (root / "capsa" / "c1").iterdir():
        f.unlink()  # a real cgroupfs has no files to remove; the fake has
    mgr.destroy()
    assert not mgr.exists() and (root / "capsa").is_dir()
