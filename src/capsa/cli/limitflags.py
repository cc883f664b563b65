"""``run``/``create`` resource flags -> values, refused as Docker's CLI refuses them.

A bad value names the flag and the text the user typed, then why, in Docker's words:
``invalid argument "-1" for "--cpus" flag: range of CPUs is from 0.01 to 2.00, as
there are only 2 CPUs available``. The ranges themselves are the engine's
(``capsa.engine.containers.limits``): a spec from another frontend is refused for the same reasons.
The values' syntaxes (sizes, ``--cpus``, rates, device throttles) are read by
``capsa.syntax.sizes``.
"""

from __future__ import annotations

from capsa.engine.containers import limits
from capsa.engine.containers.types import Resources
from capsa.errors import InvalidArgument
from capsa.syntax.sizes import parse_cpus, parse_rate, parse_throttle, ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# how Docker's CLI names each flag in its errors
FLAGS = {
    "memory": "-m, --memory",
    "memory_swap": "--memory-swap",
    "memory_reservation": "--memory-reservation",
    "cpus": "--cpus",
    "cpu_shares": "-c, --cpu-shares",
    "cpu_period": "--cpu-period",
    "cpu_quota": "--cpu-quota",
    "pids_limit": "--pids-limit",
    "blkio_weight": "--blkio-weight",
    "shm_size": "--shm-size",
    "oom_score_adj": "--oom-score-adj",
    "stop_timeout": "--stop-timeout",
}


def flag_error(key: str, text: object, why: str) -> InvalidArgument:
    return InvalidArgument(f'invalid argument "{text}" for "{FLAGS.get(key, key)}" flag: {why}')


def _bytes_flag(kw: dict[str, Any], key: str, check: Callable[[int], str | None]) -> int:
    text = kw[key]
    if not text:
        return 0
    value = -1 if key == "memory_swap" and text.strip() == "-1" else ram_in_bytes(text)
    if value is None:
        raise flag_error(key, text, f"invalid size: '{text}'")
    why = check(value)
    if why:
        raise flag_error(key, text, why)
    return value


def _int_flag(kw: dict[str, Any], key: str, check: Callable[[int], str | None]) -> int:
    return _optional_int(kw, key, check) or 0


def _optional_int(kw: dict[str, Any], key: str, check: Callable[[int], str | None]) -> int | None:
    value = kw.get(key)
    if value is None:
        return None
    why = check(value)
    if why:
        raise flag_error(key, value, why)
    return int(value)


def nano_cpus(text: str) -> int:
    """``--cpus 1.5`` in billionths of a CPU, refused in Docker's CLI's words."""
    try:
        nano = parse_cpus(text)
    except InvalidArgument as e:
        raise flag_error("cpus", text, e.message) from None
    why = limits.nano_cpus(nano)
    if why:
        raise flag_error("cpus", text, why)
    return nano


def resources(kw: dict[str, Any]) -> Resources:
    r = Resources()
    r.memory = _bytes_flag(kw, "memory", limits.memory)
    r.memory_swap = _bytes_flag(kw, "memory_swap", limits.memory_swap)
    r.memory_reservation = _bytes_flag(kw, "memory_reservation", limits.memory_reservation)
    r.oom_kill_disable = kw["oom_kill_disable"]
    r.nano_cpus = nano_cpus(kw["cpus"]) if kw["cpus"] else 0
    r.cpu_shares = _int_flag(kw, "cpu_shares", limits.cpu_shares)
    r.cpu_quota = _int_flag(kw, "cpu_quota", limits.cpu_quota)
    r.cpu_period = _int_flag(kw, "cpu_period", limits.cpu_period)
    r.cpuset_cpus = kw["cpuset_cpus"] or ""
    r.cpuset_mems = kw["cpuset_mems"] or ""
    r.pids_limit = _int_flag(kw, "pids_limit", limits.pids_limit)
    if r.pids_limit < 0:
        r.pids_limit = -1  # Docker: zero or less is unlimited
    r.blkio_weight = _int_flag(kw, "blkio_weight", limits.blkio_weight)
    r.device_read_bps = [parse_throttle(t, False) for t in kw["device_read_bps"]]
    r.device_write_bps = [parse_throttle(t, False) for t in kw["device_write_bps"]]
    r.device_read_iops = [parse_throttle(t, True) for t in kw["device_read_iops"]]
    r.device_write_iops = [parse_throttle(t, True) for t in kw["device_write_iops"]]
    if kw["network_rate_in"] or kw["network_rate_out"]:
        r.network_rate_in = parse_rate(kw["network_rate_in"]) if kw["network_rate_in"] else 0
        r.network_rate_out = parse_rate(kw["network_rate_out"]) if kw["network_rate_out"] else 0
    why = limits.combined(r)
    if why:
        raise InvalidArgument(why)
    return r


def shm_size(kw: dict[str, Any]) -> int:
    return _bytes_flag(kw, "shm_size", limits.shm_size)


def oom_score_adj(kw: dict[str, Any]) -> int | None:
    return _optional_int(kw, "oom_score_adj", limits.oom_score_adj)


def stop_timeout(kw: dict[str, Any]) -> int | None:
    return _optional_int(kw, "stop_timeout", limits.stop_timeout)
