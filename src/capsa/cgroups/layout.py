"""Which cgroup hierarchies the host has: v1, hybrid (v1 + cgroup2 at unified/) or unified."""

from __future__ import annotations

import os

from capsa.errors import Unavailable
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    Mode = Literal["v1", "hybrid", "unified"]

V1_CONTROLLERS = frozenset(
    {
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "blkio",
        "perf_event",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
    }
)


@record(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy."""

    mountpoint: str  # e.g. /sys/fs/cgroup/cpu,cpuacct
    controllers: tuple[str, ...]  # ("cpu", "cpuacct"); ("name=systemd",) for named ones
    version: int  # 1 or 2
    mount_root: str = "/"  # the "root" field of mountinfo (not "/" inside a cgroupns)

    @property
    def name(self) -> str:
        return os.path.basename(self.mountpoint)


@record(frozen=True)
class CgroupLayout:
    mode: Mode
    root: str  # /sys/fs/cgroup
    hierarchies: tuple[Hierarchy, ...]  # v1 hierarchies (empty in unified mode)
    unified: Hierarchy | None = None  # the cgroup2 mount, if any
    unified_controllers: frozenset[str] = frozenset()
    symlinks: dict[str, str] = field(default_factory=dict)  # "cpu" -> "cpu,cpuacct"
    hugepage_sizes: tuple[str, ...] = ()  # ("2MB", "1GB")

    @property
    def version(self) -> int:
        return 2 if self.mode == "unified" else 1

    def hierarchy_for(self, controller: str) -> Hierarchy | None:
        for h in self.hierarchies:
            if controller in h.controllers:
                return h
        return None


def _unescape(field_text: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for a space ...)."""
    if "\\" not in field_text:
        return field_text
    out, i = [], 0
    while i < len(field_text):
        c = field_text[i]
        if c == "\\" and field_text[i + 1 : i + 4].isdigit():
            out.append(chr(int(field_text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _parse_line(line: str) -> tuple[str, str, str, list[str]] | None:
    """Return (mount root, mountpoint, fstype, super options) of one mountinfo line."""
    parts = line.split()
    if "-" not in parts:
        return None
    sep = parts.index("-")
    if sep < 5 or len(parts) < sep + 3:
        return None
    root, mountpoint = _unescape(parts[3]), _unescape(parts[4])
    return root, mountpoint, parts[sep + 1], parts[sep + 3].split(",")


def parse_mountinfo(
    text: str,
    root: str = "/sys/fs/cgroup",
    *,
    unified_controllers: frozenset[str] = frozenset(),
    symlinks: dict[str, str] | None = None,
    hugepage_sizes: tuple[str, ...] = (),
) -> CgroupLayout:
    """Build a layout from mountinfo text; pure, for detect() and for tests."""
    root = os.path.normpath(root)
    v1: list[Hierarchy] = []
    unified: Hierarchy | None = None
    seen: set[tuple[str, ...]] = set()
    for line in text.splitlines():
        parsed = _parse_line(line)
        if parsed is None:
            continue
        mroot, mpoint, fstype, opts = parsed
        if os.path.dirname(mpoint) != root and mpoint != root:
            continue
        if fstype == "cgroup2" and unified is None:
            unified = Hierarchy(mpoint, tuple(sorted(unified_controllers)), 2, mroot)
        elif fstype == "cgroup":
            ctrls = tuple(o for o in opts if o in V1_CONTROLLERS or o.startswith("name="))
            if ctrls and ctrls not in seen:
                seen.add(ctrls)
                v1.append(Hierarchy(mpoint, ctrls, 1, mroot))
    if unified is not None and unified.mountpoint == root:
        mode: Mode = "unified"
        v1 = []
    elif v1:
        mode = "hybrid" if unified is not None else "v1"
    else:
        raise Unavailable(f"no cgroup hierarchy mounted at {root}")
    return CgroupLayout(
        mode=mode,
        root=root,
        hierarchies=tuple(v1),
        unified=unified,
        unified_controllers=unified_controllers if unified is not None else frozenset(),
        symlinks=dict(symlinks or {}),
        hugepage_sizes=hugepage_sizes,
    )


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` -> {controller: path}; the v2 entry has key ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if not parts[1]:
            out[""] = parts[2]
        for ctrl in parts[1].split(","):
            if ctrl:
                out[ctrl] = parts[2]
    return out


def relative_paths(layout: CgroupLayout, path: str, own: dict[str, str]) -> dict[str, str]:
    """Where a relative cgroupsPath (runc's default is the container id) lands in each
    tree, by ``Hierarchy.name``, as runc's cgroupfs driver places it: under the
    runtime's own cgroup (``own``: ``parse_proc_cgroup`` of ``/proc/self/cgroup``) in
    each v1 hierarchy and a hybrid host's unified tree; on a cgroup2-only host under
    the parent of its own cgroup, which has processes and so cannot have controllers
    enabled for a child."""
    rel = path.strip("/")
    if layout.version == 2:
        base = os.path.dirname(own.get("", "/").rstrip("/")) or "/"
        return {"": os.path.join(base, rel)}
    out: dict[str, str] = {}
    for h in layout.hierarchies:
        out[h.name] = os.path.join(own.get(h.controllers[0], "/") if h.controllers else "/", rel)
    if layout.unified is not None:
        out[layout.unified.name] = os.path.join(own.get("", "/"), rel)
    return out


def own_cgroup_paths() -> dict[str, str]:
    """This process's cgroups (``parse_proc_cgroup``)."""
    return parse_proc_cgroup(_read("/proc/self/cgroup"))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _symlinks(root: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        entries = list(os.scandir(root))
    except OSError:
        return out
    for entry in entries:
        if entry.is_symlink():
            target = os.readlink(entry.path)
            if "/" not in target.rstrip("/"):
                out[entry.name] = target.rstrip("/")
    return out


def _page_size_name(kb: int) -> str:
    for unit, size in (("GB", 1 << 20), ("MB", 1 << 10)):
        if kb >= size and kb % size == 0:
            return f"{kb // size}{unit}"
    return f"{kb}KB"


def host_hugepage_sizes(sysfs: str = "/sys/kernel/mm/hugepages") -> tuple[str, ...]:
    """Hugepage sizes as cgroup file names use them: ("2MB", "1GB")."""
    try:
        names = sorted(os.listdir(sysfs))
    except OSError:
        return ()
    kbs = sorted(int(n[len("hugepages-") : -2]) for n in names if n.startswith("hugepages-"))
    return tuple(_page_size_name(kb) for kb in kbs)


def detect(root: str = "/sys/fs/cgroup") -> CgroupLayout:
    """Detect the host's cgroup layout from /proc/self/mountinfo and the cgroup mounts."""
    mountinfo = _read("/proc/self/mountinfo")
    probe = parse_mountinfo(mountinfo, root)
    controllers: frozenset[str] = frozenset()
    if probe.unified is not None:
        text = _read(os.path.join(probe.unified.mountpoint, "cgroup.controllers"))
        controllers = frozenset(text.split())
    return parse_mountinfo(
        mountinfo,
        root,
        unified_controllers=controllers,
        symlinks=_symlinks(root),
        hugepage_sizes=host_hugepage_sizes(),
    )
