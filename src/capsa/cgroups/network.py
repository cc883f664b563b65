"""net_cls / net_prio (v1 only): class id and per-interface priorities."""

from __future__ import annotations

from capsa.cgroups.plan import Context, Plan
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import NetworkResources


def _validate(net: NetworkResources) -> None:
    if net.class_id is not None and not 0 <= net.class_id <= 0xFFFFFFFF:
        raise InvalidArgument(f"invalid network classID {net.class_id}")
    for prio in net.priorities or []:
        if not prio.name or " " in prio.name or "/" in prio.name or prio.priority < 0:
            raise InvalidArgument(f"invalid network priority {prio.name!r} {prio.priority}")


def plan_v1(net: NetworkResources | None, ctx: Context, plan: Plan) -> None:
    if net is None:
        return
    _validate(net)
    if net.class_id is not None:
        if ctx.mounted("net_cls"):
            plan.add("net_cls", "net_cls.classid", net.class_id, "network.classID")
        else:
            plan.warn("network classID not enforced: net_cls controller not mounted")
    if net.priorities:
        if not ctx.mounted("net_prio"):
            plan.warn("network priorities not enforced: net_prio controller not mounted")
            return
        for prio in net.priorities:
            plan.add(
                "net_prio",
                "net_prio.ifpriomap",
                f"{prio.name} {prio.priority}",
                "network.priorities",
                restorable=False,
                check=False,
            )


def plan_v2(net: NetworkResources | None, ctx: Context, plan: Plan) -> None:
    if net is None:
        return
    _validate(net)
    if net.class_id is not None or net.priorities:
        plan.warn("network classID/priorities not enforced: not available in cgroup v2")
