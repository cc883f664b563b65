"""The runtime's seam to ``capsa.cgroups`` (imported lazily: only verbs that need it pay)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups import CgroupManager


def open_cgroup(path: str) -> CgroupManager:
    from capsa.cgroups import open_manager

    return open_manager(path)
