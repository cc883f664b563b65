"""The CgroupManager protocol, its boundary dataclasses, and helpers both drivers share."""

from __future__ import annotations

import errno
import os
import time

from capsa.cgroups import fs
from capsa.cgroups.plan import Enforced, Plan, compare
from capsa.errors import CapsaError, Conflict, InvalidArgument
from capsa.linux.signals import SIGKILL
from capsa.oci.runtime_spec import Resources
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from capsa.cgroups.entry import CgroupEntry
    from capsa.cgroups.layout import CgroupLayout
    from capsa.cgroups.stats import CgroupStats
else:  # the protocol is for type checkers; at run time it is a plain class
    Protocol = object


@record(frozen=True)
class CgroupMount:
    """One cgroup filesystem the runtime mounts at /sys/fs/cgroup[/name] in a container."""

    name: str  # "cpu,cpuacct", "memory", "systemd", "unified"; "" for the v2 root
    host_path: str  # this container's cgroup directory in that hierarchy
    fstype: str  # "cgroup" or "cgroup2"
    controllers: tuple[str, ...]
    symlinks: tuple[str, ...] = ()  # names linking to ``name``, e.g. ("cpu", "cpuacct")


class CgroupManager(Protocol):
    version: int
    path: str
    layout: CgroupLayout

    def create(self) -> None: ...
    def add(self, pid: int) -> None: ...
    def open_entry(self, sub: dict[str, str] | None = None) -> CgroupEntry: ...
    def apply(self, resources: Resources | None) -> list[str]: ...
    def update(self, resources: Resources) -> list[str]: ...
    def pids(self) -> list[int]: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def is_frozen(self) -> bool: ...
    def kill_all(self, sig: int) -> None: ...
    def stats(self) -> CgroupStats: ...
    def oom_kill_count(self) -> int: ...
    def destroy(self) -> None: ...
    def exists(self) -> bool: ...
    def mount_plan(self) -> list[CgroupMount]: ...
    def read_back(self, resources: Resources) -> list[Enforced]: ...
    def warnings(self, resources: Resources) -> list[str]: ...


def normalize_path(cgroups_path: str) -> str:
    """``capsa/abc`` or ``/capsa//abc/`` -> ``/capsa/abc``; never ``..``, never the root."""
    if "\0" in cgroups_path:
        raise InvalidArgument(f"invalid cgroupsPath {cgroups_path!r}")
    parts = [p for p in cgroups_path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"cgroupsPath {cgroups_path!r} must not contain '..'")
    if not parts:
        raise InvalidArgument(f"cgroupsPath {cgroups_path!r} names the root cgroup")
    return "/" + "/".join(parts)


def inside(mountpoint: str, path: str) -> str:
    """The directory of normalized ``path`` in the hierarchy mounted at ``mountpoint``."""
    return os.path.join(mountpoint, path.lstrip("/"))


def sub_cgroup(directory: str, sub: str) -> str:
    """An existing sub-cgroup ``sub`` of ``directory`` (``exec --cgroup``), never above it."""
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    if ".." in parts or "\0" in sub:
        raise InvalidArgument(f"bad sub cgroup path: {sub}")
    path = os.path.join(directory, *parts)
    if not os.path.isdir(path):
        raise InvalidArgument(f"sub-cgroup {sub} does not exist: {path}")
    return path


def make_dirs(
    mountpoint: str, path: str, created: list[str], on_level: Callable[[str, str], None]
) -> None:
    """mkdir each missing level; call ``on_level(parent, child)`` for every level."""
    current = mountpoint
    for part in path.strip("/").split("/"):
        parent, current = current, os.path.join(current, part)
        try:
            os.mkdir(current, 0o755)
            created.append(current)
        except FileExistsError:
            pass
        except OSError as e:
            raise fs.translate(e, current) from None
        on_level(parent, current)


def enable_controllers(parent: str, child: str) -> None:
    """Enable in ``parent`` every controller it has, one by one (some may refuse)."""
    available = (fs.read_optional(parent, "cgroup.controllers") or "").split()
    enabled = set((fs.read_optional(parent, "cgroup.subtree_control") or "").split())
    for c in available:
        if c in enabled:
            continue
        try:
            fs.write(parent, "cgroup.subtree_control", f"+{c}")
        except CapsaError:
            continue  # e.g. the parent holds processes; limits on c will warn later


def undo_dirs(created: list[str]) -> list[BaseException]:
    errors: list[BaseException] = []
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError as e:
            errors.append(fs.translate(e, d))
    return errors


def _rmdir_retry(directory: str, attempts: int = 50) -> None:
    for attempt in range(attempts):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == attempts - 1:
                raise fs.translate(e, directory) from None
            time.sleep(min(0.002 * (attempt + 1), 0.05))


def remove_tree(directory: str) -> None:
    """rmdir ``directory`` and every sub-cgroup, leaves first; gone already is fine."""
    try:
        os.rmdir(directory)  # the usual case: no sub-cgroups and no processes left
        return
    except FileNotFoundError:
        return
    except OSError:
        pass  # sub-cgroups, or tasks still leaving: the careful way
    if not os.path.isdir(directory):
        return
    for top, dirs, _ in os.walk(directory, topdown=False):
        for d in dirs:
            _rmdir_retry(os.path.join(top, d))
    _rmdir_retry(directory)


def list_pids(directory: str) -> list[int]:
    """Every pid in the cgroup and its descendants."""
    pids: list[int] = []
    if not os.path.isdir(directory):
        return pids
    for top, _, _ in os.walk(directory):
        text = fs.read_optional(top, "cgroup.procs") or ""
        pids.extend(int(p) for p in text.split() if p.isdigit())
    return sorted(set(pids))


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


def execute(
    plan: Plan, dir_for: Callable[[str], str], finish: Callable[[], None] | None = None
) -> None:
    """Make the planned writes; on any failure write the old values back and re-raise."""
    log = fs.WriteLog()
    try:
        for w in plan.writes:
            log.write(dir_for(w.hierarchy), w.file, w.value, restorable=w.restorable)
        if finish is not None:
            finish()
    except CapsaError as e:
        e.causes.extend(log.rollback())
        raise


def read_back(plan: Plan, dir_for: Callable[[str], str]) -> list[Enforced]:
    return [
        compare(w, fs.read_optional(dir_for(w.hierarchy), w.file)) for w in plan.writes if w.check
    ]


def kill_frozen(
    pids: Callable[[], list[int]],
    freeze: Callable[[], None],
    thaw: Callable[[], None],
    was_frozen: bool,
    sig: int,
) -> None:
    """Freeze, signal every pid, thaw: no process can fork its way out meanwhile."""
    try:
        freeze()
    except Conflict:
        pass  # signal anyway
    try:
        signal_pids(pids(), sig)
    finally:
        if sig == SIGKILL or not was_frozen:
            thaw()
