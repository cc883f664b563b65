"""Docker's ranges for a container's settings: why a value is refused, or None.

One place for both callers: the engine refuses a spec from any frontend with these
reasons (``refusal``), and the command line, which knows the flag and the text the user
typed, wraps the same reason as Docker's CLI does (``invalid argument "-1" for "--cpus"
flag: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available``).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.types import ContainerSpec, Resources

INT64_MAX = 2**63 - 1
MIN_MEMORY = 6 * 1024 * 1024
OUT_OF_RANGE = "value out of range"
# the rlimits Docker's --ulimit knows (go-units' ulimitNameMapping)
ULIMITS = frozenset(
    {
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    }
)


def _int64(value: int) -> str | None:
    return OUT_OF_RANGE if not -INT64_MAX - 1 <= value <= INT64_MAX else None


def memory(value: int) -> str | None:
    if value < 0:
        return "memory limit can not be negative"
    if 0 < value < MIN_MEMORY:
        return "minimum memory limit allowed is 6MB"
    return _int64(value)


def memory_swap(value: int) -> str | None:
    if value < -1:
        return "memory swap limit can not be negative (-1 is unlimited)"
    return _int64(value)


def memory_reservation(value: int) -> str | None:
    return "memory reservation can not be negative" if value < 0 else _int64(value)


def nano_cpus(value: int) -> str | None:
    ncpu = os.cpu_count() or 1
    if value and not 10_000_000 <= value <= ncpu * 1_000_000_000:
        return f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
    return None


def cpu_shares(value: int) -> str | None:
    if value < 0:
        return f"invalid CPU shares ({value}): value must be a positive integer"
    return _int64(value)


def cpu_period(value: int) -> str | None:
    if value and not 1000 <= value <= 1_000_000:
        return (
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    return None


def cpu_quota(value: int) -> str | None:
    if value < -1:
        return "CPU cfs quota can not be negative (-1 is unlimited)"
    if 0 < value < 1000:
        return "CPU cfs quota can not be less than 1ms (i.e. 1000)"
    return _int64(value)


def pids_limit(value: int) -> str | None:
    return _int64(value)  # zero or less: unlimited, as Docker takes it


def blkio_weight(value: int) -> str | None:
    if value and not 10 <= value <= 1000:
        return "range of blkio weight is from 10 to 1000"
    return None


def shm_size(value: int) -> str | None:
    return "SHM size can not be less than 0" if value < 0 else _int64(value)


def oom_score_adj(value: int) -> str | None:
    if not -1000 <= value <= 1000:
        return f"invalid value {value}, range for oom score adj is [-1000, 1000]"
    return None


def stop_timeout(value: int) -> str | None:
    return OUT_OF_RANGE if not -1 <= value <= 2**31 - 1 else None


def rlimit(value: int) -> str | None:
    """A soft or hard --ulimit value (-1: unlimited)."""
    return OUT_OF_RANGE if not -1 <= value <= INT64_MAX else None


def _resource_checks(r: Resources) -> list[str | None]:
    return [
        memory(r.memory),
        memory_swap(r.memory_swap),
        memory_reservation(r.memory_reservation),
        nano_cpus(r.nano_cpus),
        cpu_shares(r.cpu_shares),
        cpu_period(r.cpu_period),
        cpu_quota(r.cpu_quota),
        pids_limit(r.pids_limit),
        blkio_weight(r.blkio_weight),
        combined(r),
    ]


def combined(r: Resources) -> str | None:
    """What two settings together rule out, in Docker's words."""
    if r.nano_cpus and r.cpu_period:
        return "conflicting options: Nano CPUs and CPU Period cannot both be set"
    if r.nano_cpus and r.cpu_quota:
        return "conflicting options: Nano CPUs and CPU Quota cannot both be set"
    if r.memory and r.memory_swap > 0 and r.memory_swap < r.memory:
        return "minimum memoryswap limit should be larger than memory limit, see usage"
    if not r.memory and r.memory_swap > 0:
        return "you should always set the memory limit when using memoryswap limit, see usage"
    if r.memory and r.memory_reservation > r.memory:
        return "minimum memory limit can not be less than memory reservation limit, see usage"
    return None


def refusal(spec: ContainerSpec) -> str | None:
    """The first reason the engine refuses ``spec``'s limits, if any."""
    checks = _resource_checks(spec.resources)
    checks.append(shm_size(spec.shm_size))
    if spec.oom_score_adj is not None:
        checks.append(oom_score_adj(spec.oom_score_adj))
    if spec.stop_timeout is not None:
        checks.append(stop_timeout(spec.stop_timeout))
    return next((why for why in checks if why), None)
