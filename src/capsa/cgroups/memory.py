"""memory controller: limit, reservation, swap, swappiness, OOM killer; stats."""

from __future__ import annotations

from capsa.cgroups import fs
from capsa.cgroups.plan import UNIFIED, Context, Plan
from capsa.cgroups.stats import MemoryEntry, MemoryStats
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import MemoryResources

H = "memory"
MEMSW = "memory.memsw.limit_in_bytes"


def _set(value: int | None) -> int | None:
    """0 means "not set", as in runc."""
    return None if value in (None, 0) else value


def validate(mem: MemoryResources) -> None:
    limit, swap = _set(mem.limit), _set(mem.swap)
    for name, value in (("limit", limit), ("swap", swap), ("reservation", mem.reservation)):
        if value is not None and value < -1:
            raise InvalidArgument(f"invalid memory {name} {value}")
    if limit is not None and limit > 0 and swap is not None and 0 < swap < limit:
        raise InvalidArgument(f"memory+swap limit {swap} is below memory limit {limit}")
    if mem.swappiness is not None and mem.swappiness > 100:
        raise InvalidArgument(f"invalid memory swappiness {mem.swappiness} (0-100)")


def _warn_ignored(mem: MemoryResources, plan: Plan) -> None:
    if mem.kernel:
        plan.warn("kernel memory limit ignored: not supported by the kernel")
    if mem.kernel_tcp:
        plan.warn("kernel TCP memory limit ignored: not supported by the kernel")


def _current_limit(ctx: Context) -> int:
    text = ctx.read(H, "memory.limit_in_bytes")
    return fs.parse_uint(text) if text and text.strip() else fs.UNLIMITED


def plan_v1(mem: MemoryResources | None, ctx: Context, plan: Plan) -> None:
    if mem is None:
        return
    validate(mem)
    _warn_ignored(mem, plan)
    limit, swap = _set(mem.limit), _set(mem.swap)
    has_memsw = ctx.has(H, MEMSW)
    if limit == -1 and swap is None and has_memsw:
        swap = -1
    if swap is not None and not has_memsw:
        plan.warn("swap limit not enforced: memory.memsw.limit_in_bytes missing")
        swap = None
    mem_first = True
    if limit is not None and swap is not None:
        # The kernel wants memsw >= limit at every moment: raise swap first when growing.
        mem_first = not (swap == -1 or _current_limit(ctx) < swap)
    elif swap is not None:
        mem_first = False
    order = [("limit", limit), ("swap", swap)]
    for what, value in order if mem_first else reversed(order):
        if value is None:
            continue
        file = "memory.limit_in_bytes" if what == "limit" else MEMSW
        plan.add(H, file, value, f"memory.{what}")
    if mem.reservation not in (None, 0):
        plan.add(H, "memory.soft_limit_in_bytes", mem.reservation, "memory.reservation")
    if mem.disable_oom_killer:
        plan.add(H, "memory.oom_control", "1", "memory.disableOOMKiller", check=False)
    if mem.swappiness is not None and mem.swappiness >= 0:
        plan.add(H, "memory.swappiness", mem.swappiness, "memory.swappiness")


def _num(value: int) -> str:
    return "max" if value == -1 else str(value)


def swap_v2(swap: int | None, limit: int | None, ctx: Context) -> int | None:
    """Spec memory+swap -> v2 memory.swap.max (swap only), as runc converts it."""
    if limit == -1 and swap is None:
        return -1
    if swap is None or swap == -1:
        return swap
    if limit is None:
        current = ctx.read(UNIFIED, "memory.max")
        limit = -1 if current is None or current.strip() == "max" else int(current)
    if limit == -1:
        raise InvalidArgument("cannot set a swap limit without a memory limit")
    return swap - limit


def plan_v2(mem: MemoryResources | None, ctx: Context, plan: Plan) -> None:
    if mem is None:
        return
    validate(mem)
    _warn_ignored(mem, plan)
    limit = _set(mem.limit)
    swap = swap_v2(_set(mem.swap), limit, ctx)
    if swap is not None:
        if ctx.has(UNIFIED, "memory.swap.max"):
            plan.add(UNIFIED, "memory.swap.max", _num(swap), "memory.swap")
        else:
            plan.warn("swap limit not enforced: memory.swap.max missing")
    if limit is not None:
        plan.add(UNIFIED, "memory.max", _num(limit), "memory.limit")
    if mem.reservation not in (None, 0):
        plan.add(UNIFIED, "memory.low", _num(mem.reservation or 0), "memory.reservation")
    if mem.swappiness is not None and mem.swappiness >= 0:
        plan.warn("memory swappiness not enforced: no such setting in cgroup v2")
    if mem.disable_oom_killer:
        plan.warn("disabling the OOM killer is not possible in cgroup v2")


def _entry_v1(directory: str, prefix: str) -> MemoryEntry:
    return MemoryEntry(
        limit=fs.read_uint(directory, f"{prefix}.limit_in_bytes"),
        usage=fs.read_uint(directory, f"{prefix}.usage_in_bytes"),
        max=fs.read_uint(directory, f"{prefix}.max_usage_in_bytes"),
        failcnt=fs.read_uint(directory, f"{prefix}.failcnt"),
    )


def stats_v1(directory: str) -> MemoryStats:
    raw = fs.read_flat_keyed(directory, "memory.stat")
    return MemoryStats(
        cache=raw.get("cache", 0),
        usage=_entry_v1(directory, "memory"),
        swap=_entry_v1(directory, "memory.memsw"),
        kernel=_entry_v1(directory, "memory.kmem"),
        kernel_tcp=_entry_v1(directory, "memory.kmem.tcp"),
        raw=raw,
        oom_kill=oom_kills_v1(directory),
    )


def stats_v2(directory: str) -> MemoryStats:
    raw = fs.read_flat_keyed(directory, "memory.stat")
    events = fs.read_flat_keyed(directory, "memory.events")
    usage = MemoryEntry(
        limit=fs.read_uint(directory, "memory.max", fs.UNLIMITED),
        usage=fs.read_uint(directory, "memory.current"),
        max=fs.read_uint(directory, "memory.peak"),
        failcnt=events.get("max", 0),
    )
    swap = MemoryEntry(
        limit=fs.read_uint(directory, "memory.swap.max", fs.UNLIMITED),
        usage=fs.read_uint(directory, "memory.swap.current"),
        max=fs.read_uint(directory, "memory.swap.peak"),
    )
    # like runc: report mem+swap, as v1 does
    swap.usage += usage.usage
    if swap.limit != fs.UNLIMITED and usage.limit != fs.UNLIMITED:
        swap.limit += usage.limit
    else:
        swap.limit = fs.UNLIMITED
    return MemoryStats(
        cache=raw.get("file", 0),
        usage=usage,
        swap=swap,
        raw=raw,
        oom_kill=events.get("oom_kill", 0),
    )


def oom_kills_v1(directory: str) -> int:
    return fs.read_flat_keyed(directory, "memory.oom_control").get("oom_kill", 0)


def oom_kills_v2(directory: str) -> int:
    return fs.read_flat_keyed(directory, "memory.events").get("oom_kill", 0)
