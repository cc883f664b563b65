"""``fork`` into a cgroup: clone3(2) with ``CLONE_INTO_CGROUP``.

A child born in a cgroup2 directory never has to be moved there, and a move (a write
to ``cgroup.procs``) takes the kernel's ``cgroup_threadgroup_rwsem`` for writing,
which first waits for an RCU grace period: 12-15 ms on these machines, more than the
rest of a container's start.

This is ``os.fork`` with clone3 instead of fork(2): the interpreter's own before/after
fork hooks run around the call, with the GIL held throughout, as ``os.fork`` does.
The child's C library still caches its parent's thread id (fork(2) through glibc
refreshes it; a raw clone3 does not). That id only matters to threads (mutex owners,
``pthread_kill``, ``raise``), so the child must stay single threaded: the container
init is (system calls and Python until it execs, and execve starts the program with
a fresh C library), and so is the first stage of ``exec``.
"""

from __future__ import annotations

import errno
import os
import sys

from capsa.linux import libc
from capsa.linux.signals import SIGCHLD

CLONE_INTO_CGROUP = 0x200000000
_SYS_clone3 = 435
# struct clone_args: eleven u64 fields; the ones set here, by index
_FLAGS, _EXIT_SIGNAL, _CGROUP = 0, 4, 10


def fork_into_cgroup(cgroup_fd: int, namespaces: int = 0) -> int:
    """Fork a child that starts in the cgroup2 directory open at ``cgroup_fd`` (and in
    new ``namespaces``: ``CLONE_NEW*`` flags, as unshare(2) takes them).

    Returns 0 in the child and its pid in the parent, like ``os.fork``. Raises
    ``OSError`` when the kernel refuses (``ENOSYS`` before 5.7 or under a seccomp
    profile that hides clone3; ``EBUSY``/``EOPNOTSUPP`` for a cgroup that cannot hold
    processes), and ``EAGAIN`` in a multi-threaded process (glibc's fork takes the
    allocator's locks so that no other thread holds one in the child; clone3 cannot):
    the caller then forks and moves the child the slow way.
    """
    if len(os.listdir("/proc/self/task")) != 1:
        raise OSError(errno.EAGAIN, "clone3 fork needs a single-threaded process")
    args = bytearray(8 * 11)
    for index, value in (
        (_FLAGS, CLONE_INTO_CGROUP | namespaces),
        (_EXIT_SIGNAL, SIGCHLD),
        (_CGROUP, cgroup_fd),
    ):
        args[8 * index : 8 * index + 8] = value.to_bytes(8, sys.byteorder)
    # the GIL is kept throughout, so the child holds it as os.fork's child does
    syscall = libc.function("syscall", keep_gil=True)
    libc.function("PyOS_BeforeFork", keep_gil=True)()
    pid = int(syscall(_SYS_clone3, libc.buffer(args), len(args)))
    if pid == 0:
        libc.function("PyOS_AfterFork_Child", keep_gil=True)()
        return 0
    err = libc.last_errno()
    libc.function("PyOS_AfterFork_Parent", keep_gil=True)()
    if pid < 0:
        raise OSError(err, os.strerror(err))
    return pid
