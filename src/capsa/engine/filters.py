"""``ps --filter``: Docker's container filters."""

from __future__ import annotations

import fnmatch

from capsa.engine.container_types import ContainerRecord, State
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.service_context import ServiceContext

KNOWN = (
    "id",
    "name",
    "label",
    "status",
    "exited",
    "ancestor",
    "before",
    "since",
    "health",
    "volume",
    "is-task",
    "network",
    "publish",
    "expose",
)


def parse(items: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        if key not in KNOWN:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "status" and value not in {s.value for s in State}:
            raise InvalidArgument(f"invalid filter 'status={value}'")
        out.setdefault(key, []).append(value)
    return out


def _labels(rec: ContainerRecord, wanted: list[str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in rec.spec.labels or (eq and rec.spec.labels[key] != value):
            return False
    return True


def container_matches(
    rec: ContainerRecord, filters: dict[str, list[str]], ctx: ServiceContext
) -> bool:
    checks = {
        "id": lambda v: rec.id.startswith(v),
        "name": lambda v: v in rec.name or fnmatch.fnmatch(rec.name, v),
        "status": lambda v: rec.state.value == v,
        "exited": lambda v: rec.state is State.EXITED and str(rec.exit_code) == v,
        "ancestor": lambda v: _ancestor(rec, v, ctx),
        "volume": lambda v: any(m.source == v or m.target == v for m in rec.spec.mounts),
        "health": lambda v: _health(rec, ctx) == v,
        "network": lambda v: rec.spec.network_mode == v,
    }
    for key, values in filters.items():
        if key == "label":
            if not _labels(rec, values):
                return False
            continue
        if key in ("before", "since"):
            other = ctx.store.find(values[0])
            if key == "before" and not rec.created < other.created:
                return False
            if key == "since" and not rec.created > other.created:
                return False
            continue
        check = checks.get(key)
        if check is not None and not any(check(v) for v in values):
            return False
    return True


def _ancestor(rec: ContainerRecord, value: str, ctx: ServiceContext) -> bool:
    found = ctx.images.find(value)
    return found is not None and found.id == rec.image_id


def _health(rec: ContainerRecord, ctx: ServiceContext) -> str:
    import json
    import os

    try:
        with open(os.path.join(ctx.paths(rec.id).run, "health.json")) as f:
            return str(json.load(f).get("Status", "none"))
    except (OSError, ValueError):
        return "none"
