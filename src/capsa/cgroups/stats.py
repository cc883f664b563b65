"""Cgroup statistics as typed records, and runc's ``events --stats`` JSON shape.

``to_runc_json`` writes what runc 1.1's ``types.Stats`` marshals to: its field order,
its ``omitempty`` fields left out when zero, Go maps with sorted keys. Scripts compare
the two runtimes' output, so the shape follows runc even where it is odd.
"""

from __future__ import annotations

from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class CpuStats:
    total: int = 0  # nanoseconds
    percpu: list[int] = field(default_factory=list)
    percpu_kernel: list[int] = field(default_factory=list)
    percpu_user: list[int] = field(default_factory=list)
    kernel: int = 0
    user: int = 0
    periods: int = 0
    throttled_periods: int = 0
    throttled_time: int = 0  # nanoseconds


@record
class CpusetStats:
    """v1's cpuset files (runc reports none on cgroup v2: all zero there)."""

    cpus: list[int] = field(default_factory=list)
    cpu_exclusive: int = 0
    mems: list[int] = field(default_factory=list)
    mem_hardwall: int = 0
    mem_exclusive: int = 0
    memory_migrate: int = 0
    memory_spread_page: int = 0
    memory_spread_slab: int = 0
    memory_pressure: int = 0
    sched_load_balance: int = 0
    sched_relax_domain_level: int = 0


@record
class MemoryEntry:
    limit: int = 0
    usage: int = 0
    max: int = 0
    failcnt: int = 0

    def to_json(self) -> dict[str, int]:
        """runc's ``MemoryEntry``: ``usage`` and ``max`` only when not zero."""
        return _omit_zero(
            {"limit": self.limit, "usage": self.usage, "max": self.max, "failcnt": self.failcnt},
            ("usage", "max"),
        )


@record
class MemoryStats:
    cache: int = 0
    usage: MemoryEntry = field(default_factory=MemoryEntry)
    swap: MemoryEntry = field(default_factory=MemoryEntry)
    kernel: MemoryEntry = field(default_factory=MemoryEntry)
    kernel_tcp: MemoryEntry = field(default_factory=MemoryEntry)
    raw: dict[str, int] = field(default_factory=dict)
    oom_kill: int = 0


@record
class PidsStats:
    current: int = 0
    limit: int = 0  # 0 = unlimited


@record(frozen=True)
class BlkioEntry:
    major: int
    minor: int
    op: str
    value: int

    def to_json(self) -> dict[str, Any]:
        """runc's ``BlkioEntry``: every field only when not zero."""
        entry = {"major": self.major, "minor": self.minor, "op": self.op, "value": self.value}
        return _omit_zero(entry, ("major", "minor", "op", "value"))


@record
class BlkioStats:
    service_bytes: list[BlkioEntry] = field(default_factory=list)
    serviced: list[BlkioEntry] = field(default_factory=list)


@record
class HugetlbStats:
    usage: int = 0
    max: int = 0
    failcnt: int = 0


@record
class CgroupStats:
    cpu: CpuStats = field(default_factory=CpuStats)
    cpuset: CpusetStats = field(default_factory=CpusetStats)
    memory: MemoryStats = field(default_factory=MemoryStats)
    pids: PidsStats = field(default_factory=PidsStats)
    blkio: BlkioStats = field(default_factory=BlkioStats)
    hugetlb: dict[str, HugetlbStats] = field(default_factory=dict)

    def to_runc_json(self) -> dict[str, Any]:
        """The "data" object of ``runc events --stats`` (runc 1.1's ``types.Stats``)."""
        return {
            "cpu": _cpu_json(self.cpu),
            "cpuset": _cpuset_json(self.cpuset),
            "memory": _memory_json(self.memory),
            "pids": _omit_zero(
                {"current": self.pids.current, "limit": self.pids.limit}, ("current", "limit")
            ),
            "blkio": _blkio_json(self.blkio),
            "hugetlb": {
                size: _omit_zero(
                    {"usage": h.usage, "max": h.max, "failcnt": h.failcnt}, ("usage", "max")
                )
                for size, h in sorted(self.hugetlb.items())
            },
            "intel_rdt": {},
            "network_interfaces": None,
        }


def _omit_zero(data: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    """Go's ``omitempty``: drop the ``optional`` keys whose value is zero or empty."""
    return {k: v for k, v in data.items() if k not in optional or v}


def _cpu_json(c: CpuStats) -> dict[str, Any]:
    usage = {
        "total": c.total,
        "percpu": list(c.percpu),
        "percpu_kernel": list(c.percpu_kernel),
        "percpu_user": list(c.percpu_user),
        "kernel": c.kernel,
        "user": c.user,
    }
    throttling = {
        "periods": c.periods,
        "throttledPeriods": c.throttled_periods,
        "throttledTime": c.throttled_time,
    }
    return {
        "usage": _omit_zero(usage, ("total", "percpu", "percpu_kernel", "percpu_user")),
        "throttling": _omit_zero(throttling, tuple(throttling)),
    }


def _cpuset_json(c: CpusetStats) -> dict[str, Any]:
    data = {
        "cpus": list(c.cpus),
        "cpu_exclusive": c.cpu_exclusive,
        "mems": list(c.mems),
        "mem_hardwall": c.mem_hardwall,
        "mem_exclusive": c.mem_exclusive,
        "memory_migrate": c.memory_migrate,
        "memory_spread_page": c.memory_spread_page,
        "memory_spread_slab": c.memory_spread_slab,
        "memory_pressure": c.memory_pressure,
        "sched_load_balance": c.sched_load_balance,
        "sched_relax_domain_level": c.sched_relax_domain_level,
    }
    return _omit_zero(data, ("cpus", "mems"))


def _memory_json(m: MemoryStats) -> dict[str, Any]:
    data = {
        "cache": m.cache,
        "usage": m.usage.to_json(),
        "swap": m.swap.to_json(),
        "kernel": m.kernel.to_json(),
        "kernelTCP": m.kernel_tcp.to_json(),
        "raw": dict(sorted(m.raw.items())),
    }
    return _omit_zero(data, ("cache", "raw"))


def _blkio_json(b: BlkioStats) -> dict[str, Any]:
    data = {
        "ioServiceBytesRecursive": [e.to_json() for e in b.service_bytes],
        "ioServicedRecursive": [e.to_json() for e in b.serviced],
    }
    return _omit_zero(data, tuple(data))


def parse_blkio_v1(text: str) -> list[BlkioEntry]:
    """``8:0 Read 4096`` lines of blkio.*_recursive; the ``Total`` line is skipped."""
    out: list[BlkioEntry] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        try:
            out.append(BlkioEntry(int(major), int(minor), parts[1], int(parts[2])))
        except ValueError:
            continue
    return out


_IO_STAT_OPS = {
    "rbytes": ("bytes", "Read"),
    "wbytes": ("bytes", "Write"),
    "rios": ("ios", "Read"),
    "wios": ("ios", "Write"),
}


def parse_io_stat(text: str) -> BlkioStats:
    """v2 io.stat (``8:0 rbytes=1 wbytes=2 rios=3 ...``) in v1's naming, as runc does."""
    out = BlkioStats()
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if key not in _IO_STAT_OPS or not value.isdigit():
                continue
            table, op = _IO_STAT_OPS[key]
            entry = BlkioEntry(int(major), int(minor), op, int(value))
            (out.service_bytes if table == "bytes" else out.serviced).append(entry)
    return out
