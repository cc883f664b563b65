"""The runtime's seam to ``capsa.cgroups`` (imported lazily: only verbs that need it pay)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups import CgroupLayout, CgroupManager

_layout: list[CgroupLayout] = []  # the host's, read once per process


def _host_layout() -> CgroupLayout:
    from capsa.cgroups import detect

    if not _layout:
        _layout.append(detect())
    return _layout[0]


def open_cgroup(path: str, tree_paths: dict[str, str] | None = None) -> CgroupManager:
    """The manager of ``path`` (``tree_paths``: see ``placement``). The host's cgroup
    layout (its cgroup mounts) is read on first use: a ``run`` opens the container's
    cgroup four times."""
    from capsa.cgroups import open_manager

    return open_manager(path, layout=_host_layout(), tree_paths=tree_paths)


def placement(cgroups_path: str | None, container_id: str) -> tuple[str, dict[str, str]]:
    """Where a container's cgroup goes, as runc's cgroupfs driver puts it: an absolute
    ``cgroupsPath`` from the root of each tree; a relative one, or the container id
    when the config has none, under the runtime's own cgroup in each tree. Returns the
    path and, when the trees disagree (the runtime is in different cgroups in different
    hierarchies), the path in each tree."""
    path = cgroups_path or container_id
    if path.startswith("/"):
        return path, {}
    from capsa.cgroups.layout import own_cgroup_paths, relative_paths

    trees = relative_paths(_host_layout(), path, own_cgroup_paths())
    distinct = set(trees.values())
    if len(distinct) == 1:
        return distinct.pop(), {}
    return path, trees
