"""cpuset controller: cpus and mems; v1 directories inherit them from their parent."""

from __future__ import annotations

from capsa.cgroups import fs
from capsa.cgroups.plan import UNIFIED, Context, Plan
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import CPUResources

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
