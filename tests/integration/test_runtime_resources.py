"""cgroup limits through the runtime: memory/OOM, pids, cpu quota, freezer, update, stats."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.helpers import cgroup_dir, wait_for
from tests.helpers.bundle import BundleFactory, sh
from tests.helpers.probe import parse_probe
from tests.helpers.runtime import Runtime

from capsa.oci.runtime_spec import (
    CPUResources,
    MemoryResources,
    PidsResources,
    Resources,
    Spec,
)

pytestmark = pytest.mark.root

MiB = 1024 * 1024
IDLE = 'trap "exit 0" TERM; while :; do sleep 0.05; done'


def _resources(spec: Spec) -> Resources:
    assert spec.linux is not None
    if spec.linux.resources is None:
        spec.linux.resources = Resources()
    return spec.linux.resources


def _start(runtime: Runtime, bundle: Path) -> tuple[str, int]:
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(bundle), cid)
    return cid, int(runtime.state(cid)["pid"])


def _memory_limit(spec: Spec) -> None:
    # swap == limit: no swap, so the hog is OOM-killed rather than swapped out
    _resources(spec).memory = MemoryResources(limit=32 * MiB, swap=32 * MiB)


def test_memory_limit_oom_kills_a_hog(runtime: Runtime, bundle: BundleFactory) -> None:
    # dd allocates (and fills) a 100 MiB buffer
    script = "dd if=/dev/zero bs=100M count=1 of=/dev/null; echo $? > /tmp/rc; " + IDLE
    b = bundle(sh(script), edit=_memory_limit)
    cid, pid = _start(runtime, b)
    rc = b / "rootfs/tmp/rc"
    wait_for(rc.exists, timeout=30, what="the hog to end")
    assert rc.read_text().strip() == str(128 + 9)
    memory = cgroup_dir(pid, "memory")
    assert int((memory / "memory.limit_in_bytes").read_text()) == 32 * MiB
    oom = dict(line.split() for line in (memory / "memory.oom_control").read_text().splitlines())
    assert int(oom["oom_kill"]) >= 1
    stats = json.loads(runtime.run("events", "--stats", cid).stdout)
    usage = stats["data"]["memory"]["usage"]
    assert usage["limit"] == 32 * MiB
    assert usage["max"] == 32 * MiB  # the hog reached the limit (failcnt stays 0 on 6.x)


def test_memory_limit_seen_inside(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(["/probe", "cgroups"], edit=_memory_limit)
    proc = runtime.run("run", "--bundle", str(b), runtime.new_id())
    assert parse_probe(proc.stdout).number("mem_limit") == 32 * MiB


def test_pids_limit_stops_a_fork_loop(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        _resources(spec).pids = PidsResources(limit=20)

    script = "for i in $(seq 40); do sleep 30 & done; echo all-forked"
    proc = runtime.run(
        "run", "--bundle", str(bundle(sh(script), edit=edit)), runtime.new_id(), check=False
    )
    assert proc.returncode != 0
    assert "all-forked" not in proc.stdout
    assert "fork" in proc.stderr


def test_pids_limit_applied(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        _resources(spec).pids = PidsResources(limit=20)

    _, pid = _start(runtime, bundle(sh(IDLE), edit=edit))
    assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "20"


def _cpu_usage_ns(pid: int) -> int:
    return int((cgroup_dir(pid, "cpuacct") / "cpuacct.usage").read_text())


def test_cpu_quota_half_a_core(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        _resources(spec).cpu = CPUResources(quota=50_000, period=100_000)

    # two busy loops: without the quota they would use both cores
    b = bundle(sh("while :; do :; done & while :; do :; done"), edit=edit)
    _, pid = _start(runtime, b)
    cpu = cgroup_dir(pid, "cpu")
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    time.sleep(0.3)
    used0, t0 = _cpu_usage_ns(pid), time.monotonic()
    time.sleep(2)
    used1, t1 = _cpu_usage_ns(pid), time.monotonic()
    share = (used1 - used0) / 1e9 / (t1 - t0)
    assert 0.4 <= share <= 0.6, f"used {share:.2f} of a core"


def _counter(b: Path) -> int:
    text = (b / "rootfs/tmp/count").read_text().strip()
    return int(text or 0)


def test_pause_freezes_and_resume_continues(runtime: Runtime, bundle: BundleFactory) -> None:
    script = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.01; done"
    b = bundle(sh(script))
    cid, pid = _start(runtime, b)
    wait_for(lambda: (b / "rootfs/tmp/count").exists() and _counter(b) > 0, what="counter")
    runtime.run("pause", cid)
    assert runtime.status(cid) == "paused"
    assert (cgroup_dir(pid, "freezer") / "freezer.state").read_text().strip() == "FROZEN"
    frozen = _counter(b)
    time.sleep(0.3)
    assert _counter(b) == frozen
    runtime.run("resume", cid)
    assert runtime.status(cid) == "running"
    wait_for(lambda: _counter(b) > frozen + 2, what="counter to advance after resume")


def test_pause_requires_running(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = runtime.new_id()
    runtime.run("create", "--bundle", str(bundle(sh(IDLE))), cid)
    assert runtime.run("resume", cid, check=False).returncode != 0
    runtime.run("start", cid)
    assert runtime.run("resume", cid, check=False).returncode != 0
    assert runtime.status(cid) == "running"


def test_update_memory(runtime: Runtime, bundle: BundleFactory) -> None:
    cid, pid = _start(runtime, bundle(sh(IDLE), edit=_memory_limit))
    limit = cgroup_dir(pid, "memory") / "memory.limit_in_bytes"
    runtime.run("update", "--memory", str(64 * MiB), "--memory-swap", str(64 * MiB), cid)
    assert int(limit.read_text()) == 64 * MiB


def test_update_from_resources_file(
    runtime: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    cid, pid = _start(runtime, bundle(sh(IDLE)))
    resources = tmp_path / "resources.json"
    resources.write_text(
        json.dumps({"cpu": {"quota": 20_000, "period": 100_000}, "pids": {"limit": 50}})
    )
    runtime.run("update", "--resources", str(resources), cid)
    assert (cgroup_dir(pid, "cpu") / "cpu.cfs_quota_us").read_text().strip() == "20000"
    assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "50"


def test_events_stats(runtime: Runtime, bundle: BundleFactory) -> None:
    cid, _ = _start(runtime, bundle(sh(IDLE)))
    event = json.loads(runtime.run("events", "--stats", cid).stdout)
    assert event["type"] == "stats"
    assert event["id"] == cid
    data = event["data"]
    assert data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    assert data["pids"]["current"] >= 1
