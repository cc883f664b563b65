"""The v1 (and hybrid) driver over a temp-dir fake cgroupfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from capsa.cgroups import fs, open_manager, parse_mountinfo
from capsa.cgroups.layout import CgroupLayout
from capsa.cgroups.v1 import V1Manager
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
    WeightDevice,
)

BIG = "9223372036854771712"
V1_FILES: dict[str, dict[str, str]] = {
    "memory": {
        "memory.limit_in_bytes": BIG,
        "memory.memsw.limit_in_bytes": BIG,
        "memory.soft_limit_in_bytes": BIG,
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        "memory.usage_in_bytes": "4096",
        "memory.max_usage_in_bytes": "8192",
        "memory.failcnt": "2",
        "memory.memsw.usage_in_bytes": "4096",
        "memory.stat": "cache 100\nrss 200\ntotal_rss 200\n",
    },
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_burst_us": "0",
        "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n",
    },
    "cpuacct": {
        "cpuacct.usage": "123456",
        "cpuacct.usage_percpu": "100000 23456 \n",
        "cpuacct.usage_user": "100",
        "cpuacct.usage_sys": "20",
        "cpuacct.usage_all": "cpu user system\n0 60000 40000\n1 20000 3456\n",
    },
    "cpuset": {
        "cpuset.cpus": "",
        "cpuset.mems": "",
        "cpuset.sched_load_balance": "1",
        "cpuset.sched_relax_domain_level": "-1",
    },
    "pids": {"pids.max": "max", "pids.current": "3"},
    "blkio": {
        "blkio.bfq.weight": "100",
        "blkio.bfq.weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
        "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 0\nTotal 1\n",
    },
    "devices": {"devices.allow": "", "devices.deny": ""},
    "freezer": {"freezer.state": "THAWED"},
}
CONTROLLERS = list(V1_FILES)


class Recorder:
    """Wraps fs.write to log (file, value) and optionally fail on one file."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        real = fs.write

        def write(directory: str, name: str, value: str) -> None:
            self.calls.append((name, value))
            if name == fail_on:
                raise InvalidArgument(f"kernel rejected writing {value!r} to {name}")
            real(directory, name, value)

        monkeypatch.setattr(fs, "write", write)

    def files(self) -> list[str]:
        return [f for f, _ in self.calls]


def make_layout(root: Path, *, unified: bool = True) -> CgroupLayout:
    lines = [f"31 23 0:28 / {root} rw - tmpfs tmpfs rw"]
    for i, c in enumerate(CONTROLLERS):
        (root / c).mkdir(parents=True)
        lines.append(f"{40 + i} 31 0:{40 + i} / {root / c} rw - cgroup cgroup rw,{c}")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    if unified:
        (root / "unified").mkdir()
        (root / "unified" / "cgroup.subtree_control").write_text("")
        (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")
        lines.append(f"60 31 0:60 / {root / 'unified'} rw - cgroup2 cgroup2 rw")
    return parse_mountinfo(
        "\n".join(lines),
        str(root),
        unified_controllers=frozenset({"hugetlb"}) if unified else frozenset(),
        hugepage_sizes=("2MB", "1GB"),
    )


def populate(root: Path, path: str) -> None:
    for c, files in V1_FILES.items():
        d = root / c / path.strip("/")
        for name, value in files.items():
            (d / name).write_text(value)
    u = root / "unified" / path.strip("/")
    if u.is_dir():
        for level in (u, *u.parents):
            if level == root / "unified":
                break
            (level / "cgroup.subtree_control").write_text("")
        (u / "hugetlb.2MB.max").write_text("max")
        (u / "hugetlb.2MB.current").write_text("0")


@pytest.fixture
def cg(tmp_path: Path) -> tuple[V1Manager, Path]:
    root = tmp_path / "cg"
    layout = make_layout(root)
    mgr = open_manager("capsa/c1", layout=layout)
    assert isinstance(mgr, V1Manager)
    mgr.create()
    populate(root, "capsa/c1")
    return mgr, root


def read(root: Path, c: str, name: str) -> str:
    return (root / c / "capsa" / "c1" / name).read_text()


def test_create_is_idempotent_and_inherits_cpuset(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    layout = make_layout(root)
    for level in ("a", "a/b"):
        d = root / "cpuset" / level
        d.mkdir()
        (d / "cpuset.cpus").write_text("")
        (d / "cpuset.mems").write_text("")
    mgr = open_manager("a/b", layout=layout)
    mgr.create()
    mgr.create()
    assert (root / "cpuset" / "a" / "cpuset.cpus").read_text() == "0-1"
    assert (root / "cpuset" / "a" / "b" / "cpuset.mems").read_text() == "0"
    assert all((root / c / "a" / "b").is_dir() for c in [*CONTROLLERS, "unified"])
    assert mgr.exists() and mgr.path == "/a/b"


def test_create_undoes_on_failure(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    layout = make_layout(root)
    (root / "pids" / "x").write_text("a file where a directory should go")
    with pytest.raises(Exception):  # noqa: B017 - any typed error
        open_manager("x/y", layout=layout).create()
    assert not any((root / c / "x").is_dir() for c in CONTROLLERS if c != "pids")


def test_apply_writes_limits(cg: tuple[V1Manager, Path]) -> None:
    mgr, root = cg
    res = Resources(
        memory=MemoryResources(
            limit=64 << 20,
            swap=128 << 20,
            reservation=32 << 20,
            swappiness=10,
            disable_oom_killer=True,
            kernel=1 << 20,
        ),
        cpu=CPUResources(shares=512, quota=50000, period=100000, burst=1000, cpus="1", mems="0"),
        pids=PidsResources(limit=-1),
        block_io=BlockIOResources(
            weight=300,
            weight_device=[WeightDevice(8, 0, weight=200)],
            throttle_read_bps_device=[ThrottleDevice(8, 0, 1 << 20)],
            throttle_write_iops_device=[ThrottleDevice(8, 16, 100)],
        ),
        hugepage_limits=[HugepageLimit("2MB", 4 << 20)],
        network=NetworkResources(class_id=0x100001),
    )
    warnings = mgr.apply(res)
    assert read(root, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert read(root, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert read(root, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(root, "memory", "memory.swappiness") == "10"
    assert read(root, "memory", "memory.oom_control") == "1"
    assert read(root, "cpu", "cpu.shares") == "512"
    assert read(root, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(root, "cpu", "cpu.cfs_burst_us") == "1000"
    assert read(root, "cpuset", "cpuset.cpus") == "1"
    assert read(root, "pids", "pids.max") == "max"
    assert read(root, "blkio", "blkio.bfq.weight") == "300"
    assert read(root, "blkio", "blkio.bfq.weight_device") == "8:0 200"
    assert read(root, "blkio", "blkio.throttle.read_bps_device") == f"8:0 {1 << 20}"
    assert read(root, "blkio", "blkio.throttle.write_iops_device") == "8:16 100"
    # hybrid: hugetlb lives in the unified tree, enabled down the path
    assert read(root, "unified", "hugetlb.2MB.max") == str(4 << 20)
    assert (root / "unified" / "cgroup.subtree_control").read_text() == "+hugetlb"
    assert any("kernel memory" in w for w in warnings)
    assert any("net_cls" in w for w in warnings)
    assert all("\n" not in w for w in warnings)


def test_swap_warning_without_memsw(cg: tuple[V1Manager, Path]) -> None:
    mgr, root = cg
    os.unlink(root / "memory" / "capsa" / "c1" / "memory.memsw.limit_in_bytes")
    warnings = mgr.apply(Resources(memory=MemoryResources(limit=1 << 20, swap=2 << 20)))
    assert read(root, "memory", "memory.limit_in_bytes") == str(1 << 20)
    assert any("swap limit not enforced" in w for w in warnings)


def test_swap_ordering_both_directions(
    cg: tuple[V1Manager, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr, _ = cg
    mgr.apply(Resources(memory=MemoryResources(limit=64 << 20, swap=128 << 20)))
    rec = Recorder(monkeypatch)
    mgr.update(Resources(memory=MemoryResources(limit=256 << 20, swap=512 << 20)))
    assert rec.files() == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    rec.calls.clear()
    mgr.update(Resources(memory=MemoryResources(limit=16 << 20, swap=16 << 20)))
    assert rec.files() == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    rec.calls.clear()
    mgr.update(Resources(memory=MemoryResources(limit=-1)))  # unlimited: swap follows, first
    assert rec.calls == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_failed_apply_is_rolled_back(
    cg: tuple[V1Manager, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr, root = cg
    Recorder(monkeypatch, fail_on="pids.max")
    with pytest.raises(InvalidArgument, match=r"pids\.max"):
        mgr.apply(Resources(memory=MemoryResources(limit=1 << 20), pids=PidsResources(limit=5)))
    assert read(root, "memory", "memory.limit_in_bytes") == BIG


@pytest.mark.parametrize(
    "res",
    [
        Resources(memory=MemoryResources(limit=64 << 20, swap=32 << 20)),
        Resources(memory=MemoryResources(limit=-5)),
        Resources(memory=MemoryResources(swappiness=101)),
        Resources(cpu=CPUResources(period=10)),
        Resources(cpu=CPUResources(cpus="0-x")),
        Resources(pids=PidsResources(limit=-3)),
        Resources(block_io=BlockIOResources(weight=5000)),
        Resources(hugepage_limits=[HugepageLimit("3MB", 1)]),
        Resources(devices=[DeviceCgroup(allow=True, type="x")]),
        Resources(devices=[DeviceCgroup(allow=True, access="rwx")]),
        Resources(unified={"memory.max": "1"}),  # memory is a v1 controller here
        Resources(unified={"../etc": "1"}),
    ],
)
def test_invalid_values_write_nothing(
    cg: tuple[V1Manager, Path], res: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr, _ = cg
    rec = Recorder(monkeypatch)
    with pytest.raises(InvalidArgument):
        mgr.apply(res)
    assert rec.calls == []


def test_unified_key_in_hybrid_tree(cg: tuple[V1Manager, Path]) -> None:
    mgr, root = cg
    mgr.apply(Resources(unified={"hugetlb.2MB.max": "2097152"}))
    assert read(root, "unified", "hugetlb.2MB.max") == "2097152"


def test_devices_deny_all_first(
    cg: tuple[V1Manager, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr, _ = cg
    rec = Recorder(monkeypatch)
    mgr.apply(
        Resources(
            devices=[
                DeviceCgroup(allow=False, access="rwm"),
                DeviceCgroup(allow=True, type="c", major=1, minor=3, access="rw"),
                DeviceCgroup(allow=True, type="c", major=136, access="rwm"),
                DeviceCgroup(allow=False, type="b", major=8, minor=0, access="m"),
            ]
        )
    )
    assert rec.calls == [
        ("devices.deny", "a"),
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 1:3 rw"),
        ("devices.allow", "c 136:* rwm"),
        ("devices.deny", "b 8:0 m"),
    ]


def test_read_back(cg: tuple[V1Manager, Path]) -> None:
    mgr, root = cg
    res = Resources(
        memory=MemoryResources(limit=64 << 20),
        pids=PidsResources(limit=10),
        block_io=BlockIOResources(throttle_read_bps_device=[ThrottleDevice(8, 0, 99)]),
    )
    mgr.apply(res)
    (root / "pids" / "capsa" / "c1" / "pids.max").write_text("7\n")  # someone changed it
    got = {e.name: e for e in mgr.read_back(res)}
    assert got["memory.limit"].ok and got["memory.limit"].in_force == str(64 << 20)
    assert not got["pids.limit"].ok and got["pids.limit"].in_force == "7"
    assert got["blockIO.read_bps_device"].ok


def test_freeze_thaw_pids_and_oom(cg: tuple[V1Manager, Path]) -> None:
    mgr, root = cg
    (root / "freezer" / "capsa" / "c1" / "cgroup.procs").write_text("10\n11\n")
    sub = root / "freezer" / "capsa" / "c1" / "sub"
    sub.mkdir()
    (sub / "cgroup.procs").write_text("12\n")
    assert mgr.pids() == [10, 11, 12]
    mgr.freeze()
    assert mgr.is_frozen()
    mgr.thaw()
    assert not mgr.is_frozen()
    assert mgr.oom_kill_count() == 3


def test_stats(cg: tuple[V1Manager, Path]) -> None:
    mgr, root = cg
    (root / "cpuset" / "capsa" / "c1" / "cpuset.cpus").write_text("0-1,3\n")
    data = mgr.stats().to_runc_json()
    assert data["cpu"]["usage"] == {
        "total": 123456,
        "percpu": [100000, 23456],
        "percpu_kernel": [40000, 3456],
        "percpu_user": [60000, 20000],
        "kernel": 20,
        "user": 100,
    }
    assert data["cpu"]["throttling"] == {
        "periods": 10,
        "throttledPeriods": 4,
        "throttledTime": 5000,
    }
    assert data["memory"]["usage"] == {"limit": int(BIG), "usage": 4096, "max": 8192, "failcnt": 2}
    assert data["memory"]["cache"] == 100 and data["memory"]["raw"]["rss"] == 200
    assert data["pids"] == {"current": 3}  # runc's omitempty: no limit
    assert data["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 4096},  # zero fields left out, as runc does
        {"major": 8, "op": "Write"},
    ]
    assert data["hugetlb"]["2MB"] == {"failcnt": 0}
    assert data["cpuset"]["cpus"] == [0, 1, 3]
    assert "mems" not in data["cpuset"]  # empty: left out, as runc does
    assert data["cpuset"]["sched_relax_domain_level"] == -1
    assert list(data) == [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ]


def test_mount_plan_and_destroy(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    layout = make_layout(root, unified=False)
    layout = parse_mountinfo(
        "\n".join(f"1 1 0:1 / {root / c} rw - cgroup cgroup rw,{c}" for c in CONTROLLERS),
        str(root),
        symlinks={"cpuacct,cpu": "cpu"},
    )
    mgr = open_manager("/capsa/c2", layout=layout)
    mgr.create()
    (root / "memory" / "capsa" / "c2" / "child").mkdir()
    plan = {m.name: m for m in mgr.mount_plan()}
    assert set(plan) == set(CONTROLLERS)
    assert plan["cpu"].symlinks == ("cpuacct,cpu",)
    assert plan["memory"].host_path == str(root / "memory" / "capsa" / "c2")
    assert plan["memory"].fstype == "cgroup"
    mgr.destroy()
    mgr.destroy()
    assert not mgr.exists()
    assert (root / "memory" / "capsa").is_dir()  # ancestors stay
