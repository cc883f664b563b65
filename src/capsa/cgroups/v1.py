"""cgroup v1 driver, also for hybrid hosts (v1 controllers + a cgroup2 tree at unified/)."""

from __future__ import annotations

import os

from capsa.cgroups import cpuset, freezer, fs
from capsa.cgroups.entry import CgroupEntry, open_entry
from capsa.cgroups.layout import CgroupLayout, Hierarchy
from capsa.cgroups.manager import (
    CgroupMount,
    enable_controllers,
    execute,
    inside,
    kill_frozen,
    list_pids,
    make_dirs,
    normalize_path,
    read_back,
    remove_tree,
    signal_pids,
    sub_cgroup,
    undo_dirs,
)
from capsa.cgroups.plan import UNIFIED, Enforced, Plan
from capsa.cgroups.planning import plan_resources
from capsa.errors import CapsaError, InvalidArgument, NotFound, Unavailable
from capsa.oci.runtime_spec import Resources
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsa.cgroups.stats import CgroupStats


@record
class _Context:
    dirs: dict[str, str]
    hugepage_sizes: tuple[str, ...]
    unified_controllers: frozenset[str]
    version: int = 1

    def mounted(self, hierarchy: str) -> bool:
        return hierarchy in self.dirs

    def has(self, hierarchy: str, file: str) -> bool:
        d = self.dirs.get(hierarchy)
        return d is not None and fs.has(d, file)

    def read(self, hierarchy: str, file: str) -> str | None:
        d = self.dirs.get(hierarchy)
        return None if d is None else fs.read_optional(d, file)


class V1Manager:
    """One cgroup, as a directory in every v1 hierarchy (and the unified tree if hybrid)."""

    version = 1

    def __init__(
        self, layout: CgroupLayout, path: str, tree_paths: dict[str, str] | None = None
    ) -> None:
        """``path`` in every tree, or, where ``tree_paths`` names a tree (by
        ``Hierarchy.name``), the path given there: a relative cgroupsPath resolved under
        the runtime's own cgroups, which differ from tree to tree."""
        self.layout = layout
        self.path = path
        trees = list(layout.hierarchies)
        if layout.unified is not None:
            trees.append(layout.unified)
        self._paths = {h.name: normalize_path((tree_paths or {}).get(h.name, path)) for h in trees}
        self._trees: list[tuple[Hierarchy, str]] = [
            (h, inside(h.mountpoint, self._paths[h.name])) for h in trees
        ]
        self._dirs: dict[str, str] = {}
        for h, d in self._trees:
            if h.version == 2:
                self._dirs[UNIFIED] = d
            for c in h.controllers if h.version == 1 else ():
                self._dirs[c] = d

    # lifecycle

    def create(self) -> None:
        created: list[str] = []
        try:
            for h, _ in self._trees:
                make_dirs(h.mountpoint, self._paths[h.name], created, _level_hook(h))
        except CapsaError as e:
            e.causes.extend(undo_dirs(created))
            raise

    def add(self, pid: int) -> None:
        for _, d in self._trees:
            fs.write(d, "cgroup.procs", str(pid))

    def open_entry(self, sub: dict[str, str] | None = None) -> CgroupEntry:
        """For a new process to join by itself: see ``capsa.cgroups.entry``. ``sub``
        puts it in existing sub-cgroups, as runc's ``exec --cgroup``: ``{"": path}`` in
        every tree, or ``{controller: path}`` in the hierarchies of those controllers."""
        trees = self._entry_trees(sub) if sub else self._trees
        v1 = [d for h, d in trees if h.version == 1]
        cgroup2 = next((d for h, d in trees if h.version == 2), None)
        return open_entry(v1, cgroup2)

    def _entry_trees(self, sub: dict[str, str]) -> list[tuple[Hierarchy, str]]:
        every = sub.get("")
        known = {c for h, _ in self._trees if h.version == 1 for c in h.controllers}
        for controller in sub:
            if controller and controller not in known:
                raise InvalidArgument(f"unknown controller {controller} in --cgroup")
        out = []
        for h, d in self._trees:
            wanted = {sub[c] for c in h.controllers if c in sub} if h.version == 1 else set()
            if len(wanted) > 1:
                raise InvalidArgument(f"--cgroup: two sub-cgroups for hierarchy {h.name}")
            path = every if every is not None else next(iter(wanted), None)
            out.append((h, d if path is None else sub_cgroup(d, path)))
        return out

    def exists(self) -> bool:
        return any(os.path.isdir(d) for _, d in self._trees)

    def destroy(self) -> None:
        for _, d in reversed(self._trees):
            remove_tree(d)

    # limits

    def _context(self) -> _Context:
        return _Context(self._dirs, self.layout.hugepage_sizes, self.layout.unified_controllers)

    def warnings(self, resources: Resources) -> list[str]:
        """What ``apply`` would warn about: limits this host cannot enforce."""
        return list(self._plan(resources).warnings)

    def _plan(self, res: Resources) -> Plan:
        ctx, plan = self._context(), Plan()
        plan_resources(res, ctx, plan, 1)
        return plan

    def _dir(self, hierarchy: str) -> str:
        return self._dirs[hierarchy]

    def apply(self, resources: Resources | None) -> list[str]:
        if resources is None:
            return []
        self._require()
        plan = self._plan(resources)
        execute(plan, self._dir)
        return plan.warnings

    def update(self, resources: Resources) -> list[str]:
        return self.apply(resources)

    def read_back(self, resources: Resources) -> list[Enforced]:
        self._require()
        return read_back(self._plan(resources), self._dir)

    def _require(self) -> None:
        if not self.exists():
            raise NotFound(f"cgroup {self.path} not found")

    # processes

    def _procs_dir(self) -> str:
        for c in ("freezer", "pids", "memory", "cpu"):
            if c in self._dirs:
                return self._dirs[c]
        return self._trees[0][1]

    def pids(self) -> list[int]:
        return list_pids(self._procs_dir())

    def _freezer(self) -> str:
        d = self._dirs.get(freezer.H)
        if d is None:
            raise Unavailable("freezer controller not mounted")
        return d

    def freeze(self) -> None:
        freezer.freeze_v1(self._freezer())

    def thaw(self) -> None:
        freezer.thaw_v1(self._freezer())

    def is_frozen(self) -> bool:
        return freezer.state_v1(self._freezer()) == "FROZEN"

    def kill_all(self, sig: int) -> None:
        if freezer.H not in self._dirs:
            signal_pids(self.pids(), sig)
            return
        kill_frozen(self.pids, self.freeze, self.thaw, self.is_frozen(), sig)

    # accounting

    def stats(self) -> CgroupStats:
        from capsa.cgroups import blkio, cpu, cpuset, hugetlb, memory, pids
        from capsa.cgroups.stats import CgroupStats

        self._require()
        d = self._dirs
        out = CgroupStats(cpu=cpu.stats_v1(d.get("cpu"), d.get("cpuacct")))
        if "cpuset" in d:
            out.cpuset = cpuset.stats_v1(d["cpuset"])
        if "memory" in d:
            out.memory = memory.stats_v1(d["memory"])
        if "pids" in d:
            out.pids = pids.stats(d["pids"])
        if "blkio" in d:
            out.blkio = blkio.stats_v1(d["blkio"])
        sizes = self.layout.hugepage_sizes
        if "hugetlb" in d:
            out.hugetlb = hugetlb.stats_v1(d["hugetlb"], sizes)
        elif UNIFIED in d:
            out.hugetlb = hugetlb.stats_v2(d[UNIFIED], sizes)
        return out

    def oom_kill_count(self) -> int:
        from capsa.cgroups import memory

        d = self._dirs.get("memory")
        return 0 if d is None else memory.oom_kills_v1(d)

    def mount_plan(self) -> list[CgroupMount]:
        out: list[CgroupMount] = []
        for h, d in self._trees:
            links = tuple(sorted(k for k, v in self.layout.symlinks.items() if v == h.name))
            fstype = "cgroup2" if h.version == 2 else "cgroup"
            out.append(CgroupMount(h.name, d, fstype, h.controllers, links))
        return out


def _no_hook(parent: str, child: str) -> None:
    return None


def _level_hook(h: Hierarchy) -> Callable[[str, str], None]:
    """What each new level needs: cpuset values (v1), enabled controllers (unified tree)."""
    if h.version == 2:
        return enable_controllers
    return cpuset.inherit_v1 if "cpuset" in h.controllers else _no_hook
