"""cpuset controller: cpus and mems; v1 directories inherit them from their parent."""

from __future__ import annotations

from capsa.cgroups import fs
from capsa.cgroups.plan import UNIFIED, Context, Plan
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import CPUResources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups.stats import CpusetStats

H = "cpuset"


def _is_list(text: str) -> bool:
    """``0-3,5,7-8``: comma-separated numbers and ranges (no ``re`` at import)."""
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not (low.isdecimal() and low.isascii()):
            return False
        if dash and not (high.isdecimal() and high.isascii()):
            return False
    return True


def validate(cpu: CPUResources) -> None:
    for name, value in (("cpus", cpu.cpus), ("mems", cpu.mems)):
        if value and not _is_list(value.replace(" ", "")):
            raise InvalidArgument(f"invalid cpuset {name} {value!r}")


def _plan(cpu: CPUResources | None, plan: Plan, h: str) -> None:
    if cpu is None:
        return
    if cpu.cpus:
        plan.add(h, "cpuset.cpus", cpu.cpus.replace(" ", ""), "cpu.cpus")
    if cpu.mems:
        plan.add(h, "cpuset.mems", cpu.mems.replace(" ", ""), "cpu.mems")


def plan_v1(cpu: CPUResources | None, ctx: Context, plan: Plan) -> None:
    if cpu is None or not (cpu.cpus or cpu.mems):
        return
    validate(cpu)
    if not ctx.mounted(H):
        plan.warn("cpuset not enforced: cpuset controller not mounted")
        return
    _plan(cpu, plan, H)


def plan_v2(cpu: CPUResources | None, ctx: Context, plan: Plan) -> None:
    if cpu is None or not (cpu.cpus or cpu.mems):
        return
    validate(cpu)
    if "cpuset" not in ctx.unified_controllers:
        plan.warn("cpuset not enforced: cpuset controller not enabled")
        return
    _plan(cpu, plan, UNIFIED)


def inherit_v1(parent: str, child: str) -> None:
    """Copy cpuset.cpus/mems from ``parent`` into ``child`` where the child's are empty.

    A v1 cpuset directory starts empty, and no task can join it until both are set.
    """
    for name in ("cpuset.cpus", "cpuset.mems"):
        current = fs.read_optional(child, name)
        if current is None or current.strip():
            continue
        value = (fs.read_optional(parent, name) or "").strip()
        if value:
            fs.write(child, name, value)


def _list_values(text: str) -> list[int]:
    """``0-2,5`` -> [0, 1, 2, 5]."""
    out: list[int] = []
    for part in text.strip().split(","):
        low, dash, high = part.partition("-")
        if low.isdigit() and (not dash or high.isdigit()):
            out.extend(range(int(low), int(high if dash else low) + 1))
    return out


def _int(directory: str, name: str) -> int:
    text = (fs.read_optional(directory, name) or "").strip()
    try:
        return int(text)
    except ValueError:
        return 0


_COUNTERS = (
    "cpu_exclusive",
    "mem_hardwall",
    "mem_exclusive",
    "memory_migrate",
    "memory_spread_page",
    "memory_spread_slab",
    "memory_pressure",
    "sched_load_balance",
    "sched_relax_domain_level",
)


def stats_v1(directory: str) -> CpusetStats:
    """What runc reports of a v1 cpuset directory."""
    from capsa.cgroups.stats import CpusetStats  # stats readers only: not on the run path

    out = CpusetStats(
        cpus=_list_values(fs.read_optional(directory, "cpuset.cpus") or ""),
        mems=_list_values(fs.read_optional(directory, "cpuset.mems") or ""),
    )
    for name in _COUNTERS:
        setattr(out, name, _int(directory, f"cpuset.{name}"))
    return out
