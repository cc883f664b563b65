"""``fork`` into a cgroup: clone3(2) with ``CLONE_INTO_CGROUP``.

A child born in a cgroup2 directory never has to be moved there, and a move (a write
to ``cgroup.procs``) takes the kernel's ``cgroup_threadgroup_rwsem`` for writing,
which first waits for an RCU grace period: 12-15 ms on these machines, more than the
rest of a container's start.

This is ``os.fork`` with clone3 instead of fork(2): the interpreter's own before/after
fork hooks run around the call, with the GIL held throughout, as ``os.fork`` does.
The child's C library still caches its parent's thread id (fork(2) through glibc
refreshes it; a raw clone3 does not), so the child must stay single threaded and
should do little more than system calls, ``os.fork`` and ``os._exit``: the container
init's first stage, which forks the real init through glibc, is that kind of child.
"""

from __future__ import annotations

import ctypes
import errno
import os

from capsa.linux.signals import SIGCHLD

CLONE_INTO_CGROUP = 0x200000000
_SYS_clone3 = 435

_FIELDS = (
    "flags",
    "pidfd",
    "child_tid",
    "parent_tid",
    "exit_signal",
    "stack",
    "stack_size",
    "tls",
    "set_tid",
    "set_tid_size",
    "cgroup",
)


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in _FIELDS]


def fork_into_cgroup(cgroup_fd: int) -> int:
    """Fork a child that starts in the cgroup2 directory open at ``cgroup_fd``.

    Returns 0 in the child and its pid in the parent, like ``os.fork``. Raises
    ``OSError`` when the kernel refuses (``ENOSYS`` before 5.7 or under a seccomp
    profile that hides clone3; ``EBUSY``/``EOPNOTSUPP`` for a cgroup that cannot hold
    processes), and ``EAGAIN`` in a multi-threaded process (glibc's fork takes the
    allocator's locks so that no other thread holds one in the child; clone3 cannot):
    the caller then forks and moves the child the slow way.
    """
    if len(os.listdir("/proc/self/task")) != 1:
        raise OSError(errno.EAGAIN, "clone3 fork needs a single-threaded process")
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=cgroup_fd)
    # PyDLL: the call keeps the GIL, so the child holds it as os.fork's child does
    syscall = ctypes.PyDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = syscall(ctypes.c_long(_SYS_clone3), ctypes.byref(args), ctypes.sizeof(args))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, os.strerror(err))
    return int(pid)
