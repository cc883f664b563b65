"""The syscalls Python's ``os`` module lacks, through ``capsa.linux.libc``.

Every function raises ``OSError`` with the kernel's errno, like ``os`` does; callers
turn that into typed capsa errors where they know what the operation meant.
Nothing here runs at import time.
"""

from __future__ import annotations

import os
import sys

from capsa.linux.libc import buffer, call, ulong

# unshare / setns / clone flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "time": CLONE_NEWTIME,
}
# /proc/<pid>/ns/<name> for each spec namespace type
NAMESPACE_PROC_NAMES = {
    "mount": "mnt",
    "cgroup": "cgroup",
    "uts": "uts",
    "ipc": "ipc",
    "user": "user",
    "pid": "pid",
    "network": "net",
    "time": "time",
}

# mount flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# prctl options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_SYS_pivot_root = 155
_SYS_openat2 = 437
_SYS_pidfd_send_signal = 424
_SYS_pidfd_getfd = 438


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def mount(
    source: str | bytes | None,
    target: str | bytes,
    fstype: str | bytes | None,
    flags: int = 0,
    data: str | bytes | None = None,
) -> None:
    call("mount", _b(source), _b(target), _b(fstype), ulong(flags), _b(data))


def umount2(target: str | bytes, flags: int = 0) -> None:
    call("umount2", _b(target), flags)


def pivot_root(new_root: str | bytes, put_old: str | bytes) -> None:
    call("syscall", _SYS_pivot_root, _b(new_root), _b(put_old))


def unshare(flags: int) -> None:
    call("unshare", flags)


def setns(fd: int, nstype: int = 0) -> None:
    call("setns", fd, nstype)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return call("prctl", option, ulong(arg2), ulong(arg3), ulong(arg4), ulong(arg5))


def sethostname(name: str) -> None:
    raw = name.encode()
    call("sethostname", raw, len(raw))


def setdomainname(name: str) -> None:
    raw = name.encode()
    call("setdomainname", raw, len(raw))


def openat2(dirfd: int, path: str | bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2); raises OSError(ENOSYS) on kernels before 5.6."""
    how = bytearray(24)  # struct open_how: u64 flags, mode, resolve
    for i, value in enumerate((flags | os.O_CLOEXEC, mode, resolve)):
        how[8 * i : 8 * i + 8] = value.to_bytes(8, sys.byteorder)
    return call("syscall", _SYS_openat2, dirfd, _b(path), buffer(how), len(how))


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    call("syscall", _SYS_pidfd_send_signal, pidfd, sig, None, 0)


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A duplicate, in this process (close-on-exec), of fd ``target_fd`` of the process
    ``pidfd`` refers to (Linux 5.6; needs the right to ptrace it)."""
    return call("syscall", _SYS_pidfd_getfd, pidfd, target_fd, 0)
