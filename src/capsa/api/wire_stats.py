"""Docker's ``GET /containers/{id}/stats`` document, from the engine's samples."""

from __future__ import annotations

import time

from capsa.engine.containers.stats import NET_FIELDS, memory_limit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.containers.stats import NetStats, Sample

_EMPTY_TIME = "0001-01-01T00:00:00Z"


def rfc3339_nano(ns: int) -> str:
    seconds, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def _cpu_json(s: Sample | None) -> dict[str, Any]:
    if s is None or not s.running:
        return {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
    cpu = s.data.get("cpu") or {}
    usage, thr = cpu.get("usage") or {}, cpu.get("throttling") or {}
    return {
        "cpu_usage": {
            "total_usage": usage.get("total", 0),
            "percpu_usage": list(usage.get("percpu") or []),
            "usage_in_kernelmode": usage.get("kernel", 0),
            "usage_in_usermode": usage.get("user", 0),
        },
        "system_cpu_usage": s.system_cpu,
        "online_cpus": s.online_cpus,
        "throttling_data": {
            "periods": thr.get("periods", 0),
            "throttled_periods": thr.get("throttledPeriods", 0),
            "throttled_time": thr.get("throttledTime", 0),
        },
    }


def _memory_json(s: Sample) -> dict[str, Any]:
    if not s.running:
        return {}
    memory = s.data.get("memory") or {}
    usage = memory.get("usage") or {}
    return {
        "usage": usage.get("usage", 0),
        "max_usage": usage.get("max", 0),
        "stats": dict(memory.get("raw") or {}),
        "failcnt": usage.get("failcnt", 0),
        "limit": memory_limit(memory, s.host_memory),
    }


def _blkio_json(s: Sample) -> dict[str, Any]:
    blkio = s.data.get("blkio") or {}
    keys = ("queue", "service_time", "wait_time", "merged", "time")
    out: dict[str, Any] = {
        "io_service_bytes_recursive": blkio.get("ioServiceBytesRecursive") if s.running else None,
        "io_serviced_recursive": blkio.get("ioServicedRecursive") if s.running else None,
    }
    out.update({f"io_{k}_recursive": None for k in keys})
    out["sectors_recursive"] = None
    return out


def docker_stats_json(current: Sample, previous: Sample | None) -> dict[str, Any]:
    """One document of Docker's ``GET /containers/{id}/stats``."""
    pids = (current.data.get("pids") or {}) if current.running else {}
    doc: dict[str, Any] = {
        "read": rfc3339_nano(current.read_ns) if current.running else _EMPTY_TIME,
        "preread": rfc3339_nano(previous.read_ns)
        if previous is not None and previous.running
        else _EMPTY_TIME,
        "pids_stats": {k: v for k, v in pids.items() if k == "current" or (k == "limit" and v)},
        "blkio_stats": _blkio_json(current),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_json(current),
        "precpu_stats": _cpu_json(previous),
        "memory_stats": _memory_json(current),
        "name": "/" + current.name,
        "id": current.id,
    }
    if current.running and current.networks is not None:
        doc["networks"] = {n: _net_json(v) for n, v in current.networks.items()}
    return doc


def _net_json(net: NetStats) -> dict[str, int]:
    return {f"{d}_{k}": getattr(net, f"{d}_{k}") for d in ("rx", "tx") for k in NET_FIELDS}
