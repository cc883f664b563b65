"""The runtime's seam to ``capsa.cgroups`` (imported lazily: only verbs that need it pay)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups import CgroupLayout, CgroupManager

_layout: list[CgroupLayout] = []  # the host's, read once per process


def open_cgroup(path: str) -> CgroupManager:
    """The manager of ``path``. The host's cgroup layout (its cgroup mounts) is read
    on first use: a ``run`` opens the container's cgroup four times."""
    from capsa.cgroups import detect, open_manager

    if not _layout:
        _layout.append(detect())
    return open_manager(path, layout=_layout[0])
