"""Cgroup statistics as typed dataclasses, and runc's ``events --stats`` JSON shape."""

from __future__ import annotations

from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class CpuStats:
    total: int = 0  # nanoseconds
    percpu: list[int] = field(default_factory=list)
    kernel: int = 0
    user: int = 0
    periods: int = 0
    throttled_periods: int = 0
    throttled_time: int = 0  # nanoseconds


@record
class MemoryEntry:
    limit: int = 0
    usage: int = 0
    max: int = 0
    failcnt: int = 0

    def to_json(self) -> dict[str, int]:
        return {"limit": self.limit, "usage": self.usage, "max": self.max, "failcnt": self.failcnt}


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
        return {"major": self.major, "minor": self.minor, "op": self.op, "value": self.value}


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
    memory: MemoryStats = field(default_factory=MemoryStats)
    pids: PidsStats = field(default_factory=PidsStats)
    blkio: BlkioStats = field(default_factory=BlkioStats)
    hugetlb: dict[str, HugetlbStats] = field(default_factory=dict)

    def to_runc_json(self) -> dict[str, Any]:
        """The "data" object of ``runc events --stats``."""
        c, m = self.cpu, self.memory
        return {
            "cpu": {
                "usage": {
                    "total": c.total,
                    "percpu": list(c.percpu),
                    "kernel": c.kernel,
                    "user": c.user,
                },
                "throttling": {
                    "periods": c.periods,
                    "throttledPeriods": c.throttled_periods,
                    "throttledTime": c.throttled_time,
                },
            },
            "memory": {
                "cache": m.cache,
                "usage": m.usage.to_json(),
                "swap": m.swap.to_json(),
                "kernel": m.kernel.to_json(),
                "kernelTCP": m.kernel_tcp.to_json(),
                "raw": dict(m.raw),
            },
            "pids": {"current": self.pids.current, "limit": self.pids.limit},
            "blkio": {
                "ioServiceBytesRecursive": [e.to_json() for e in self.blkio.service_bytes],
                "ioServicedRecursive": [e.to_json() for e in self.blkio.serviced],
            },
            "hugetlb": {
                size: {"usage": h.usage, "max": h.max, "failcnt": h.failcnt}
                for size, h in self.hugetlb.items()
            },
        }


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
