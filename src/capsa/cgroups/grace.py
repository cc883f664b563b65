"""Getting a cgroup attach's wait out of the way.

Moving a process into a cgroup (writing ``cgroup.procs``, v1 and v2 alike) takes the
kernel's ``cgroup_threadgroup_rwsem`` for writing, and the first writer after a quiet
spell waits for an RCU grace period first: 5-15 ms on these machines, the largest single
wait of a container's start. Writers that follow within about a grace period do not wait.

``begin`` has a throwaway child (a shell) pay that wait while the caller goes on: the
child moves itself into the cgroup it is already in (``0`` is "the writer"), a no-op that
still takes the lock. The container's attach a few milliseconds later (once the runtime has created
its cgroups and forked its init) then finds the lock ready. Nothing depends on it for
correctness: a helper that fails or comes too early only leaves the wait where it was.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups.layout import CgroupLayout

_SH = "/bin/sh"


def own_procs_file(layout: CgroupLayout) -> str | None:
    """The ``cgroup.procs`` of this process's own cgroup in one hierarchy, if visible."""
    if layout.version == 2:
        rel = layout.self_paths.get("")
        return None if rel is None else os.path.join(layout.root + rel, "cgroup.procs")
    for h in layout.hierarchies:
        rel = next((layout.self_paths[c] for c in h.controllers if c in layout.self_paths), None)
        if rel is not None and h.mount_root == "/":
            return os.path.join(h.mountpoint + rel, "cgroup.procs")
    return None


def begin(layout: CgroupLayout) -> int:
    """Start the grace period in a child; its pid for ``end`` (0: none started). Call it
    after creating the container's cgroups: the helper holds ``cgroup_mutex`` while it
    waits, and creating a cgroup needs that mutex too."""
    path = own_procs_file(layout)
    if path is None:
        return 0
    try:  # posix_spawn (vfork): far cheaper for a large parent than fork
        return os.posix_spawn(_SH, [_SH, "-c", 'echo 0 > "$1"', "sh", path], {})
    except OSError:
        return 0


def end(pid: int) -> None:
    """Reap the child of ``begin``."""
    if pid:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
