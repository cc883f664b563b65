"""The spec's ``unified`` map: raw cgroup v2 files (v2, or the unified tree in hybrid mode)."""

from __future__ import annotations

from capsa.cgroups.plan import UNIFIED, Context, Plan
from capsa.errors import InvalidArgument

_FORBIDDEN = frozenset(
    {
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.subtree_control",
        "cgroup.freeze",
        "cgroup.kill",
        "cgroup.type",
    }
)


def _check_key(key: str) -> str:
    import re  # only when linux.resources.unified is set

    if not re.match(r"^[a-z_]+(\.[A-Za-z0-9_]+)+$", key) or key in _FORBIDDEN:
        raise InvalidArgument(f"invalid unified cgroup key {key!r}")
    return key.split(".", 1)[0]


def _add(key: str, value: str, ctx: Context, plan: Plan) -> None:
    if not ctx.has(UNIFIED, key):
        raise InvalidArgument(f"unified cgroup key {key!r}: no such cgroup file")
    plan.add(UNIFIED, key, value, f"unified.{key}")


def plan_v1(unified: dict[str, str] | None, ctx: Context, plan: Plan) -> None:
    """Only keys whose controller lives in the hybrid unified tree are accepted."""
    for key, value in (unified or {}).items():
        controller = _check_key(key)
        if controller not in ctx.unified_controllers:
            raise InvalidArgument(
                f"unified cgroup key {key!r} needs cgroup v2 ({controller} is a v1 controller here)"
            )
        _add(key, value, ctx, plan)


def plan_v2(unified: dict[str, str] | None, ctx: Context, plan: Plan) -> None:
    for key, value in (unified or {}).items():
        controller = _check_key(key)
        if controller != "cgroup" and controller not in ctx.unified_controllers:
            raise InvalidArgument(
                f"unified cgroup key {key!r}: {controller} controller not enabled"
            )
        _add(key, value, ctx, plan)
