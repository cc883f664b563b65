"""cgroup drivers (v1, hybrid and v2) behind one protocol.

``detect()`` reads the host's layout; ``open_manager()`` returns the driver for a
cgroupsPath. Nothing touches the kernel until a manager method is called.
"""

from __future__ import annotations

from capsa.cgroups.layout import CgroupLayout, Hierarchy, detect, parse_mountinfo
from capsa.cgroups.manager import CgroupManager, CgroupMount, normalize_path
from capsa.cgroups.plan import Enforced

__all__ = [
    "CgroupLayout",
    "CgroupManager",
    "CgroupMount",
    "CgroupStats",
    "Enforced",
    "Hierarchy",
    "detect",
    "normalize_path",
    "open_manager",
    "parse_mountinfo",
]


def __getattr__(name: str) -> object:
    if name == "CgroupStats":  # imported on first use: only stats readers need it
        from capsa.cgroups.stats import CgroupStats

        return CgroupStats
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_manager(
    cgroups_path: str,
    *,
    layout: CgroupLayout | None = None,
    tree_paths: dict[str, str] | None = None,
) -> CgroupManager:
    """The manager of ``cgroups_path`` (taken from the hierarchy root) on this host;
    ``tree_paths`` (v1) gives another path in the trees it names (see
    ``layout.relative_paths``)."""
    path = normalize_path(cgroups_path)
    layout = layout if layout is not None else detect()
    if layout.version == 2:
        from capsa.cgroups.v2 import V2Manager

        return V2Manager(layout, path)
    from capsa.cgroups.v1 import V1Manager

    return V1Manager(layout, path, tree_paths)
