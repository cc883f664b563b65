"""A new process enters its cgroup without waiting for an RCU grace period.

Moving a process by writing its pid to ``cgroup.procs`` takes the kernel's
``cgroup_threadgroup_rwsem`` for writing, and the first writer after a quiet spell
waits a grace period (12-15 ms here, with ``cgroup_mutex`` held). Two ways in skip it:

- v1 hierarchies: a single-threaded process that writes ``0`` (itself) to a ``tasks``
  file moves its only thread, and a thread moving itself takes no threadgroup lock;
- cgroup2 (the unified tree, or the ``unified`` tree of a hybrid host): the child is
  forked straight into the directory with clone3(``CLONE_INTO_CGROUP``); where the
  kernel refuses that, the child writes ``0`` to ``cgroup.procs`` itself.

The parent opens everything with ``open_entry`` before forking (so the checks are made
with its credentials and its view of the cgroup filesystems), forks with ``fork``, and
the child calls ``join`` first thing; the parent then closes its copies with ``close``.
"""

from __future__ import annotations

import os

from capsa.cgroups import fs
from capsa.record import field, record


@record
class CgroupEntry:
    tasks: list[tuple[int, str]] = field(default_factory=list)  # (fd, path) per v1 tree
    cgroup2_dir: tuple[int, str] | None = None  # (O_PATH fd, path)
    born_inside: bool = False  # the child was forked by clone3 (set on both sides)

    def fork(self, namespaces: int = 0) -> int:
        """``os.fork``, into the cgroup2 directory where the kernel allows it, and then
        also into new ``namespaces`` (``CLONE_NEW*`` flags). ``born_inside`` tells both
        sides which it got: with it, the namespaces too; without, neither."""
        if self.cgroup2_dir is not None:
            from capsa.linux.clone import fork_into_cgroup

            try:
                pid = fork_into_cgroup(self.cgroup2_dir[0], namespaces)
            except OSError:
                return os.fork()  # join() writes cgroup.procs instead
            self.born_inside = True
            return pid
        return os.fork()

    def join(self) -> None:
        """In the forked child (single threaded): enter every hierarchy."""
        for fd, path in self.tasks:
            try:
                os.write(fd, b"0")
            except OSError as e:
                raise fs.translate(e, path, "0") from None
        if self.cgroup2_dir is not None and not self.born_inside:
            fs.write(self.cgroup2_dir[1], "cgroup.procs", "0")
        self.close()

    def fds(self) -> tuple[int, ...]:
        """The descriptors it holds (a child closing what it inherited keeps them)."""
        own = tuple(fd for fd, _ in self.tasks)
        return own if self.cgroup2_dir is None else (*own, self.cgroup2_dir[0])

    def close(self) -> None:
        fds = [fd for fd, _ in self.tasks]
        if self.cgroup2_dir is not None:
            fds.append(self.cgroup2_dir[0])
        self.tasks, self.cgroup2_dir = [], None
        for fd in fds:
            os.close(fd)


def open_entry(v1_dirs: list[str], cgroup2_dir: str | None) -> CgroupEntry:
    """Open the ``tasks`` file of each v1 directory and the cgroup2 directory."""
    entry = CgroupEntry()
    try:
        for d in v1_dirs:
            path = os.path.join(d, "tasks")
            entry.tasks.append((_open(path, os.O_WRONLY), path))
        if cgroup2_dir is not None:
            entry.cgroup2_dir = (_open(cgroup2_dir, os.O_PATH | os.O_DIRECTORY), cgroup2_dir)
    except BaseException:
        entry.close()
        raise
    return entry


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise fs.translate(e, path) from None
