"""Which controller plans which section of ``linux.resources``, for either driver.

A controller's module is imported only when the spec sets its section: a default spec
(most container starts) sets none but the device rules, and every module imported
is a fraction of a millisecond of ``capsa-runtime``'s start.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups.plan import Context, Plan
    from capsa.oci.runtime_spec import Resources


def plan_resources(res: Resources, ctx: Context, plan: Plan, version: int) -> None:
    """Add every write ``res`` needs to ``plan`` (v2 device rules are a BPF program the
    v2 driver installs itself, not writes)."""
    v1 = version == 1
    if res.memory is not None:
        from capsa.cgroups import memory

        (memory.plan_v1 if v1 else memory.plan_v2)(res.memory, ctx, plan)
    if res.cpu is not None:
        from capsa.cgroups import cpu, cpuset

        (cpu.plan_v1 if v1 else cpu.plan_v2)(res.cpu, ctx, plan)
        (cpuset.plan_v1 if v1 else cpuset.plan_v2)(res.cpu, ctx, plan)
    if res.pids is not None:
        from capsa.cgroups import pids

        (pids.plan_v1 if v1 else pids.plan_v2)(res.pids, ctx, plan)
    if res.block_io is not None:
        from capsa.cgroups import blkio

        (blkio.plan_v1 if v1 else blkio.plan_v2)(res.block_io, ctx, plan)
    if res.hugepage_limits:
        from capsa.cgroups import hugetlb

        (hugetlb.plan_v1 if v1 else hugetlb.plan_v2)(res.hugepage_limits, ctx, plan)
    if res.network is not None:
        from capsa.cgroups import network

        (network.plan_v1 if v1 else network.plan_v2)(res.network, ctx, plan)
    if res.unified:
        from capsa.cgroups import unified

        (unified.plan_v1 if v1 else unified.plan_v2)(res.unified, ctx, plan)
    if v1 and res.devices is not None:
        from capsa.cgroups import devices

        devices.plan_v1(res.devices, ctx, plan)
