"""The default seccomp profile, modelled on Docker's (moby profiles/seccomp/default.json).

Unlisted syscalls fail with EPERM; a fixed allow list covers what ordinary programs use,
and some entries depend on the container's capabilities (CAP_SYS_ADMIN unlocks mount,
unshare, setns, namespace flags of clone, ...) or on the machine's architecture. The
profile is built when asked for: nothing is computed at import.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

from capsa.linux.capabilities import DOCKER_DEFAULT_CAPS
from capsa.oci.runtime_spec import Seccomp, SeccompArg, SeccompSyscall

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"

# Every namespace flag of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000
AF_VSOCK = 40

# uname -m -> (OCI architectures of the filter, Docker's arch tag for includes/excludes)
_ARCHES: dict[str, tuple[tuple[str, ...], str]] = {
    "x86_64": (("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"), "amd64"),
    "i686": (("SCMP_ARCH_X86",), "x86"),
    "i386": (("SCMP_ARCH_X86",), "x86"),
    "aarch64": (("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"), "arm64"),
    "armv7l": (("SCMP_ARCH_ARM",), "arm"),
    "armv6l": (("SCMP_ARCH_ARM",), "arm"),
    "ppc64le": (("SCMP_ARCH_PPC64LE",), "ppc64le"),
    "s390x": (("SCMP_ARCH_S390X", "SCMP_ARCH_S390"), "s390x"),
    "riscv64": (("SCMP_ARCH_RISCV64",), "riscv64"),
}

# Allowed for everyone (one string per line would be 370 lines; grouped alphabetically).
# Not io_uring_setup/enter/register, as Docker since 25.0: work submitted through a ring
# runs as syscalls this filter never sees, and io_uring has been a steady source of
# kernel exploits. They fail with EPERM like every unlisted syscall.
_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage
getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit
ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr
rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes
vfork vmsplice wait4 waitid waitpid write writev
ptrace process_vm_readv process_vm_writev
"""

# Docker arch tag -> extra syscalls allowed there.
_BY_ARCH: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"ppc64le"}), "sync_file_range2 swapcontext"),
    (
        frozenset({"arm", "arm64"}),
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    (frozenset({"amd64", "x32"}), "arch_prctl"),
    (frozenset({"amd64", "x32", "x86"}), "modify_ldt"),
    (frozenset({"s390", "s390x"}), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (frozenset({"riscv64"}), "riscv_flush_icache"),
)

# capability -> syscalls it unlocks.
_BY_CAP: tuple[tuple[str, str], ...] = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount"
        " mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd"
        " setdomainname sethostname setns syslog umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# personality(2) personas a container may switch to: PER_LINUX, PER_LINUX32,
# UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query the current persona).
_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


def default_profile(
    capabilities: Iterable[str] = frozenset(DOCKER_DEFAULT_CAPS),
    *,
    machine: str | None = None,
) -> Seccomp:
    """Docker's default profile for a container holding ``capabilities``.

    ``machine`` is a ``uname -m`` value (default: this machine); it picks the filter's
    architectures and the arch-specific entries.
    """
    caps = {_canonical(c) for c in capabilities}
    arches, tag = _ARCHES.get(machine or os.uname().machine, ((), ""))
    rules = [_allow(_ALLOWED), _socket_rule(), *_personality_rules()]
    rules += [_allow(names) for tags, names in _BY_ARCH if tag in tags]
    rules += [_allow(names) for cap, names in _BY_CAP if cap in caps]
    if "CAP_SYS_ADMIN" not in caps:
        rules += _restricted_clone(tag)
    return Seccomp(
        default_action=ERRNO,
        default_errno_ret=errno.EPERM,
        architectures=list(arches) or None,
        syscalls=rules,
    )


def _canonical(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


def _allow(names: str) -> SeccompSyscall:
    return SeccompSyscall(names=names.split(), action=ALLOW)


def _socket_rule() -> SeccompSyscall:
    # Any address family but AF_VSOCK, which reaches the host's hypervisor sockets.
    return SeccompSyscall(
        names=["socket"], action=ALLOW, args=[SeccompArg(index=0, value=AF_VSOCK, op="SCMP_CMP_NE")]
    )


def _personality_rules() -> list[SeccompSyscall]:
    return [
        SeccompSyscall(
            names=["personality"],
            action=ALLOW,
            args=[SeccompArg(index=0, value=persona, op="SCMP_CMP_EQ")],
        )
        for persona in _PERSONAS
    ]


def _restricted_clone(tag: str) -> list[SeccompSyscall]:
    """Without CAP_SYS_ADMIN: clone only without namespace flags; clone3, whose flags
    live in memory seccomp cannot read, fails with ENOSYS so libc falls back to clone."""
    flags_arg = 1 if tag in ("s390", "s390x") else 0  # s390 swaps clone's first arguments
    clone = SeccompSyscall(
        names=["clone"],
        action=ALLOW,
        args=[SeccompArg(index=flags_arg, value=CLONE_NAMESPACE_FLAGS, op="SCMP_CMP_MASKED_EQ")],
    )
    clone3 = SeccompSyscall(names=["clone3"], action=ERRNO, errno_ret=errno.ENOSYS)
    return [clone, clone3]
