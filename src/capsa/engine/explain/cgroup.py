"""``capsa explain``'s cgroup section: the limits asked next to the limits in force.

A running container's limits are read back from its cgroup files with the warnings the
host gives for what it cannot enforce; a stopped one shows what its config asks.
"""

from __future__ import annotations

import json

from capsa.engine.explain.types import CgroupDir, CgroupReport, Limit, Usage
from capsa.errors import CapsaError
from capsa.oci import runtime_spec as oci
from capsa.oci.codec import to_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups import CgroupManager
    from capsa.cgroups.stats import CgroupStats
    from capsa.engine.explain.proc import ProcView

_UNLIMITED = 1 << 62


def plan_warnings(manager: CgroupManager, resources: oci.Resources) -> list[str]:
    """What the host cannot enforce of ``resources``: the warnings ``apply`` gives."""
    try:
        return manager.warnings(resources)
    except CapsaError as e:
        return [str(e)]


def asked_limits(resources: oci.Resources) -> list[tuple[str, str]]:
    """``(name, value)`` of every limit in ``resources`` (device rules left out)."""
    out: list[tuple[str, str]] = []
    for group, values in to_dict(resources).items():
        if group == "devices":
            continue
        items = values.items() if isinstance(values, dict) else [("", values)]
        for key, value in items:
            name = f"{group}.{key}" if key else group
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        item = " ".join(f"{k}={v}" for k, v in item.items())
                    out.append((name, str(item)))
            else:
                out.append((name, json.dumps(value) if isinstance(value, bool) else str(value)))
    return out


def _membership(text: str | None) -> dict[str, str]:
    """/proc/<pid>/cgroup: sorted controllers ("" for the v2 tree) -> path."""
    out = {}
    for line in (text or "").splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        out[",".join(sorted(controllers.split(","))) if controllers else ""] = path
    return out


def _usage(stats: CgroupStats, oom_kills: int) -> Usage:
    limit = stats.memory.usage.limit
    return Usage(
        memory=stats.memory.usage.usage,
        memory_max=stats.memory.usage.max or None,
        memory_limit=limit if 0 < limit < _UNLIMITED else None,
        pids=stats.pids.current,
        pids_limit=stats.pids.limit or None,
        cpu_ns=stats.cpu.total,
        oom_kills=oom_kills,
    )


def cgroup_report(
    manager: CgroupManager, resources: oci.Resources | None, view: ProcView | None
) -> CgroupReport:
    res = resources or oci.Resources()
    report = CgroupReport(manager.version, manager.path)
    member = _membership(view.read("cgroup")) if view else {}
    for m in manager.mount_plan():
        key = "" if m.fstype == "cgroup2" else ",".join(sorted(m.controllers))
        inside = member.get(key) == manager.path if view else None
        report.dirs.append(CgroupDir(m.name or "unified", m.fstype, m.host_path, inside))
    if view is not None and manager.exists():
        report.warnings = plan_warnings(manager, res)  # planned against the cgroup's files
        report.limits = [
            Limit(e.name, e.file, e.asked, e.in_force, e.ok) for e in manager.read_back(res)
        ]
        report.usage = _usage(manager.stats(), manager.oom_kill_count())
    else:
        report.limits = [Limit(name, "", value, None, False) for name, value in asked_limits(res)]
    return report
