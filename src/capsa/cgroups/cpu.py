"""cpu (and cpuacct) controller: shares/weight, CFS quota/period/burst, realtime, idle."""

from __future__ import annotations

import os

from capsa.cgroups import fs
from capsa.cgroups.plan import UNIFIED, Context, Plan
from capsa.cgroups.stats import CpuStats
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import CPUResources

H = "cpu"


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2-262144] -> v2 cpu.weight [1-10000], as runc converts."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def validate(cpu: CPUResources) -> None:
    if cpu.shares is not None and cpu.shares < 0:
        raise InvalidArgument(f"invalid cpu shares {cpu.shares}")
    if cpu.quota is not None and cpu.quota < -1:
        raise InvalidArgument(f"invalid cpu quota {cpu.quota}")
    if cpu.period is not None and cpu.period != 0 and not 1000 <= cpu.period <= 1_000_000:
        raise InvalidArgument(f"invalid cpu period {cpu.period} (1000-1000000)")
    if cpu.burst is not None and cpu.burst < 0:
        raise InvalidArgument(f"invalid cpu burst {cpu.burst}")
    for name, value in (
        ("realtime runtime", cpu.realtime_runtime),
        ("realtime period", cpu.realtime_period),
    ):
        if value is not None and value < -1:
            raise InvalidArgument(f"invalid cpu {name} {value}")


def _optional(ctx: Context, plan: Plan, h: str, file: str, value: int | None, name: str) -> None:
    if value is None:
        return
    if ctx.has(h, file):
        plan.add(h, file, value, name)
    else:
        plan.warn(f"{name} not enforced: {file} missing")


def plan_v1(cpu: CPUResources | None, ctx: Context, plan: Plan) -> None:
    if cpu is None:
        return
    validate(cpu)
    if not ctx.mounted(H):
        if cpu.shares or cpu.quota or cpu.period:
            plan.warn("cpu limits not enforced: cpu controller not mounted")
        return
    if cpu.shares:
        plan.add(H, "cpu.shares", cpu.shares, "cpu.shares")
    if cpu.period:
        plan.add(H, "cpu.cfs_period_us", cpu.period, "cpu.period")
    if cpu.quota:
        plan.add(H, "cpu.cfs_quota_us", cpu.quota, "cpu.quota")
    _optional(ctx, plan, H, "cpu.cfs_burst_us", cpu.burst, "cpu.burst")
    if cpu.realtime_period:
        _optional(ctx, plan, H, "cpu.rt_period_us", cpu.realtime_period, "cpu.realtimePeriod")
    if cpu.realtime_runtime:
        _optional(ctx, plan, H, "cpu.rt_runtime_us", cpu.realtime_runtime, "cpu.realtimeRuntime")
    _optional(ctx, plan, H, "cpu.idle", cpu.idle, "cpu.idle")


def _cpu_max(cpu: CPUResources, ctx: Context) -> str | None:
    if not cpu.quota and not cpu.period:
        return None
    if cpu.quota:
        quota = "max" if cpu.quota == -1 else str(cpu.quota)
    else:  # only the period changes: keep the quota in force
        current = (ctx.read(UNIFIED, "cpu.max") or "max").split()
        quota = current[0] if current else "max"
    return f"{quota} {cpu.period}" if cpu.period else quota


def plan_v2(cpu: CPUResources | None, ctx: Context, plan: Plan) -> None:
    if cpu is None:
        return
    validate(cpu)
    if cpu.realtime_runtime or cpu.realtime_period:
        plan.warn("realtime cpu limits not enforced: not supported by cgroup v2")
    wanted = cpu.shares or cpu.quota or cpu.period or cpu.burst is not None
    if "cpu" not in ctx.unified_controllers:
        if wanted or cpu.idle is not None:
            plan.warn("cpu limits not enforced: cpu controller not enabled")
        return
    if cpu.shares:
        plan.add(UNIFIED, "cpu.weight", shares_to_weight(cpu.shares), "cpu.shares")
    cpu_max = _cpu_max(cpu, ctx)
    if cpu_max is not None:
        plan.add(UNIFIED, "cpu.max", cpu_max, "cpu.quota")
    _optional(ctx, plan, UNIFIED, "cpu.max.burst", cpu.burst, "cpu.burst")
    _optional(ctx, plan, UNIFIED, "cpu.idle", cpu.idle, "cpu.idle")


def _percpu(directory: str) -> list[int]:
    text = fs.read_optional(directory, "cpuacct.usage_percpu") or ""
    return [int(v) for v in text.split() if v.isdigit()]


def _percpu_modes(directory: str) -> tuple[list[int], list[int]]:
    """(kernel, user) nanoseconds per cpu from ``cpuacct.usage_all``, as runc reads them:
    a ``cpu user system`` header, then one row per cpu."""
    text = fs.read_optional(directory, "cpuacct.usage_all") or ""
    kernel: list[int] = []
    user: list[int] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            user.append(int(fields[1]))
            kernel.append(int(fields[2]))
    return kernel, user


def stats_v1(cpu_dir: str | None, cpuacct_dir: str | None) -> CpuStats:
    out = CpuStats()
    if cpuacct_dir is not None:
        out.total = fs.read_uint(cpuacct_dir, "cpuacct.usage")
        out.percpu = _percpu(cpuacct_dir)
        out.percpu_kernel, out.percpu_user = _percpu_modes(cpuacct_dir)
        if fs.has(cpuacct_dir, "cpuacct.usage_user"):
            out.user = fs.read_uint(cpuacct_dir, "cpuacct.usage_user")
            out.kernel = fs.read_uint(cpuacct_dir, "cpuacct.usage_sys")
        else:
            ticks = os.sysconf("SC_CLK_TCK") or 100
            stat = fs.read_flat_keyed(cpuacct_dir, "cpuacct.stat")
            out.user = stat.get("user", 0) * 1_000_000_000 // ticks
            out.kernel = stat.get("system", 0) * 1_000_000_000 // ticks
    if cpu_dir is not None:
        stat = fs.read_flat_keyed(cpu_dir, "cpu.stat")
        out.periods = stat.get("nr_periods", 0)
        out.throttled_periods = stat.get("nr_throttled", 0)
        out.throttled_time = stat.get("throttled_time", 0)
    return out


def stats_v2(directory: str) -> CpuStats:
    stat = fs.read_flat_keyed(directory, "cpu.stat")
    return CpuStats(
        total=stat.get("usage_usec", 0) * 1000,
        user=stat.get("user_usec", 0) * 1000,
        kernel=stat.get("system_usec", 0) * 1000,
        periods=stat.get("nr_periods", 0),
        throttled_periods=stat.get("nr_throttled", 0),
        throttled_time=stat.get("throttled_usec", 0) * 1000,
    )
