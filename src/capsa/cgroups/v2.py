"""cgroup v2 (unified) driver: one directory, controllers enabled down the path."""

from __future__ import annotations

import os

from capsa.cgroups import devices, devices_bpf, freezer, fs
from capsa.cgroups.entry import CgroupEntry, open_entry
from capsa.cgroups.layout import CgroupLayout
from capsa.cgroups.manager import (
    CgroupMount,
    enable_controllers,
    execute,
    inside,
    kill_frozen,
    list_pids,
    make_dirs,
    read_back,
    remove_tree,
    sub_cgroup,
    undo_dirs,
)
from capsa.cgroups.plan import Enforced, Plan
from capsa.cgroups.planning import plan_resources
from capsa.errors import CapsaError, InvalidArgument, NotFound, Unavailable
from capsa.linux.signals import SIGKILL
from capsa.oci.runtime_spec import Resources
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups.stats import CgroupStats


@record
class _Context:
    directory: str
    hugepage_sizes: tuple[str, ...]
    unified_controllers: frozenset[str]
    version: int = 2

    def mounted(self, hierarchy: str) -> bool:
        return False

    def has(self, hierarchy: str, file: str) -> bool:
        return fs.has(self.directory, file)

    def read(self, hierarchy: str, file: str) -> str | None:
        return fs.read_optional(self.directory, file)


class V2Manager:
    version = 2

    def __init__(self, layout: CgroupLayout, path: str) -> None:
        if layout.unified is None:
            raise Unavailable("no cgroup2 hierarchy mounted")
        self.layout = layout
        self.path = path
        self._mount = layout.unified.mountpoint
        self.dir = inside(self._mount, path)

    # lifecycle

    def create(self) -> None:
        created: list[str] = []
        try:
            make_dirs(self._mount, self.path, created, enable_controllers)
        except CapsaError as e:
            e.causes.extend(undo_dirs(created))
            raise

    def add(self, pid: int) -> None:
        fs.write(self.dir, "cgroup.procs", str(pid))

    def open_entry(self, sub: dict[str, str] | None = None) -> CgroupEntry:
        """For a new process to join by itself: see ``capsa.cgroups.entry``. ``sub``
        (``exec --cgroup``) can only name a path here: ``{"": path}``, as runc."""
        directory = self.dir
        for controller, path in (sub or {}).items():
            if controller:
                raise InvalidArgument(f"unknown controller {controller} in --cgroup")
            directory = sub_cgroup(self.dir, path)
        return open_entry([], directory)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def destroy(self) -> None:
        remove_tree(self.dir)

    def _require(self) -> None:
        if not self.exists():
            raise NotFound(f"cgroup {self.path} not found")

    # limits

    def _context(self) -> _Context:
        controllers = frozenset((fs.read_optional(self.dir, "cgroup.controllers") or "").split())
        return _Context(self.dir, self.layout.hugepage_sizes, controllers)

    def warnings(self, resources: Resources) -> list[str]:
        """What ``apply`` would warn about: limits this host cannot enforce."""
        return list(self._plan(resources).warnings)

    def _plan(self, res: Resources) -> Plan:
        ctx, plan = self._context(), Plan()
        plan_resources(res, ctx, plan, 2)
        return plan

    def _dir(self, hierarchy: str) -> str:
        return self.dir

    def apply(self, resources: Resources | None) -> list[str]:
        if resources is None:
            return []
        self._require()
        plan = self._plan(resources)
        finish = None
        if resources.devices is not None:
            rules = devices.rules(resources.devices)
            devices_bpf.build_program(rules)  # validate before the first write

            def finish() -> None:
                devices_bpf.install(self.dir, rules)

        execute(plan, self._dir, finish)
        return plan.warnings

    def update(self, resources: Resources) -> list[str]:
        return self.apply(resources)

    def read_back(self, resources: Resources) -> list[Enforced]:
        self._require()
        out = read_back(self._plan(resources), self._dir)
        if resources.devices is not None:
            n = devices_bpf.attached_count(self.dir)
            asked = f"{len(resources.devices)} rules"
            out.append(Enforced("devices", "bpf", asked, f"{n} programs attached", n > 0))
        return out

    # processes

    def pids(self) -> list[int]:
        return list_pids(self.dir)

    def freeze(self) -> None:
        freezer.freeze_v2(self.dir)

    def thaw(self) -> None:
        freezer.thaw_v2(self.dir)

    def is_frozen(self) -> bool:
        return freezer.frozen_v2(self.dir)

    def kill_all(self, sig: int) -> None:
        if sig == SIGKILL and fs.has(self.dir, "cgroup.kill"):
            fs.write(self.dir, "cgroup.kill", "1")
            return
        kill_frozen(self.pids, self.freeze, self.thaw, self.is_frozen(), sig)

    # accounting

    def stats(self) -> CgroupStats:
        from capsa.cgroups import blkio, cpu, hugetlb, memory, pids
        from capsa.cgroups.stats import CgroupStats

        self._require()
        d = self.dir
        return CgroupStats(
            cpu=cpu.stats_v2(d),
            memory=memory.stats_v2(d),
            pids=pids.stats(d),
            blkio=blkio.stats_v2(d),
            hugetlb=hugetlb.stats_v2(d, self.layout.hugepage_sizes),
        )

    def oom_kill_count(self) -> int:
        from capsa.cgroups import memory

        return memory.oom_kills_v2(self.dir)

    def mount_plan(self) -> list[CgroupMount]:
        controllers = tuple((fs.read_optional(self.dir, "cgroup.controllers") or "").split())
        return [CgroupMount("", self.dir, "cgroup2", controllers)]
