"""pids controller: pids.max (-1 or 0 mean unlimited)."""

from __future__ import annotations

from capsa.cgroups import fs
from capsa.cgroups.plan import UNIFIED, Context, Plan
from capsa.cgroups.stats import PidsStats
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import PidsResources

H = "pids"


def _value(pids: PidsResources) -> str:
    if pids.limit < -1:
        raise InvalidArgument(f"invalid pids limit {pids.limit}")
    return "max" if pids.limit in (0, -1) else str(pids.limit)


def plan_v1(pids: PidsResources | None, ctx: Context, plan: Plan) -> None:
    if pids is None:
        return
    value = _value(pids)
    if not ctx.mounted(H):
        plan.warn("pids limit not enforced: pids controller not mounted")
        return
    plan.add(H, "pids.max", value, "pids.limit")


def plan_v2(pids: PidsResources | None, ctx: Context, plan: Plan) -> None:
    if pids is None:
        return
    value = _value(pids)
    if "pids" not in ctx.unified_controllers:
        plan.warn("pids limit not enforced: pids controller not enabled")
        return
    plan.add(UNIFIED, "pids.max", value, "pids.limit")


def stats(directory: str) -> PidsStats:
    limit = fs.read_uint(directory, "pids.max", fs.UNLIMITED)
    return PidsStats(
        current=fs.read_uint(directory, "pids.current"),
        limit=0 if limit == fs.UNLIMITED else limit,
    )
