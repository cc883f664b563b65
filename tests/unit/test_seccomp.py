"""Seccomp: profile validation, the default profile, the BPF we build (run through a
small classic-BPF interpreter), and filters loaded in forked children (never in the
pytest process; no_new_privs makes that possible without root)."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers.forked import ok, run_in_child

from capsa.errors import InvalidArgument, PermissionDenied, Unavailable
from capsa.linux import capabilities, seccomp, syscalls
from capsa.oci.runtime_spec import Seccomp, SeccompArg, SeccompSyscall
from capsa.oci.seccomp_default import CLONE_NAMESPACE_FLAGS, default_profile

pytestmark = pytest.mark.skipif(not seccomp.available(), reason="libseccomp is missing")

X86_64 = os.uname().machine == "x86_64"
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_BIT = 0x40000000
RET_ALLOW = seccomp.ACT_ALLOW
RET_EPERM = seccomp.ACT_ERRNO | errno.EPERM
RET_ENOSYS = seccomp.ACT_ERRNO | errno.ENOSYS

_libc = ctypes.CDLL(None, use_errno=True)


# --- a classic BPF interpreter for what libseccomp and our stub emit -------------------


def run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Evaluate a seccomp program on one ``struct seccomp_data``; return its verdict."""
    full = (list(args) + [0] * 6)[:6]
    data = struct.pack("=iIQ6Q", nr, arch, 0, *full)
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        op, jt, jf, k = insns[pc]
        pc += 1
        if op == 0x20:  # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif op == 0x00:  # ld #k
            acc = k
        elif op == 0x54:  # and #k
            acc &= k
        elif op == 0x05:  # ja
            pc += k
        elif op in (0x15, 0x25, 0x35, 0x45):  # jeq / jgt / jge / jset
            cond = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[op]
            pc += jt if cond else jf
        elif op == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected BPF opcode {op:#x}")


# --- forked children ------------------------------------------------------------------


def under_filter(profile: Seccomp, body: Callable[[], str]) -> tuple[int, str]:
    prepared = seccomp.prepare(profile)  # in the parent: nothing is loaded here

    def child() -> str:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
        prepared.load()
        return body()

    return run_in_child(child)


def raw_syscall(nr: int, *args: int) -> int:
    """0 on success, else the errno."""
    ret = _libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    return 0 if ret >= 0 else ctypes.get_errno()


def nr(name: str) -> int:
    number = seccomp.resolve_syscall(name)
    assert number is not None, name
    return number


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "kind", "message"),
    [
        (Seccomp(default_action="SCMP_ACT_NOPE"), InvalidArgument, "unknown action"),
        (Seccomp(default_action="SCMP_ACT_NOTIFY"), Unavailable, "NOTIFY"),
        (Seccomp(listener_path="/run/x.sock"), Unavailable, "listenerPath"),
        (Seccomp(architectures=["SCMP_ARCH_VAX"]), InvalidArgument, "SCMP_ARCH_VAX"),
        (Seccomp(flags=["SECCOMP_FILTER_FLAG_BOGUS"]), InvalidArgument, "unsupported flag"),
        (
            Seccomp(default_action="SCMP_ACT_ALLOW", default_errno_ret=1),
            InvalidArgument,
            "errnoRet",
        ),
        (
            Seccomp(
                syscalls=[
                    SeccompSyscall(
                        names=["read"],
                        action="SCMP_ACT_ERRNO",
                        args=[SeccompArg(index=0, value=1, op="SCMP_CMP_ABOUT")],
                    )
                ]
            ),
            InvalidArgument,
            "unknown operator",
        ),
        (
            Seccomp(
                syscalls=[
                    SeccompSyscall(
                        names=["read"],
                        action="SCMP_ACT_ERRNO",
                        args=[SeccompArg(index=6, value=1, op="SCMP_CMP_EQ")],
                    )
                ]
            ),
            InvalidArgument,
            "index 6",
        ),
    ],
)
def test_prepare_rejects_bad_profiles(profile: Seccomp, kind: type, message: str) -> None:
    with pytest.raises(kind, match=message):
        seccomp.prepare(profile)


def test_unknown_syscall_names_are_skipped() -> None:
    profile = Seccomp(
        syscalls=[SeccompSyscall(names=["read", "capsa_no_such_call"], action="SCMP_ACT_ERRNO")]
    )
    assert seccomp.prepare(profile).skipped == ("capsa_no_such_call",)


def test_flags_are_passed_to_the_kernel_call() -> None:
    profile = Seccomp(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    assert seccomp.prepare(profile).flags == 2 | 4


# --- the default profile's shape --------------------------------------------------------


def _allowed(profile: Seccomp) -> set[str]:
    return {n for s in profile.syscalls or [] if s.action == "SCMP_ACT_ALLOW" for n in s.names}


def test_default_profile_without_sys_admin() -> None:
    profile = default_profile(machine="x86_64")
    assert profile.default_action == "SCMP_ACT_ERRNO"
    assert profile.default_errno_ret == errno.EPERM
    assert profile.architectures == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(profile)
    assert {"read", "execve", "arch_prctl", "chroot", "socket"} <= allowed
    assert not {"mount", "unshare", "setns", "clone3", "reboot", "kexec_load"} & allowed
    clone3 = [s for s in profile.syscalls or [] if s.names == ["clone3"]]
    assert [(s.action, s.errno_ret) for s in clone3] == [("SCMP_ACT_ERRNO", errno.ENOSYS)]
    (clone,) = [s for s in profile.syscalls or [] if s.names == ["clone"]]
    assert clone.args == [SeccompArg(index=0, value=CLONE_NAMESPACE_FLAGS, op="SCMP_CMP_MASKED_EQ")]


def test_default_profile_with_sys_admin() -> None:
    profile = default_profile({"CAP_SYS_ADMIN", "sys_time"}, machine="x86_64")
    allowed = _allowed(profile)
    assert {"mount", "unshare", "setns", "clone", "clone3", "clock_settime"} <= allowed
    assert all(s.action == "SCMP_ACT_ALLOW" for s in profile.syscalls or [])
    assert "chroot" not in allowed  # CAP_SYS_CHROOT was not given


def test_default_profile_per_architecture() -> None:
    arm = default_profile(machine="aarch64")
    assert arm.architectures == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in _allowed(arm)
    assert "cacheflush" in _allowed(arm)
    s390 = default_profile(machine="s390x")
    (clone,) = [s for s in s390.syscalls or [] if s.names == ["clone"]]
    assert clone.args is not None and clone.args[0].index == 1


# --- the BPF program, without loading it -------------------------------------------------


@pytest.mark.skipif(not X86_64, reason="syscall numbers below are x86_64's")
def test_default_profile_bpf_verdicts() -> None:
    bpf = seccomp.build_filter_bpf(default_profile(machine="x86_64"))
    x64 = AUDIT_ARCH_X86_64
    assert run_bpf(bpf, nr("getpid"), x64) == RET_ALLOW
    assert run_bpf(bpf, nr("add_key"), x64) == RET_EPERM
    assert run_bpf(bpf, 1000, x64) == RET_ENOSYS
    assert run_bpf(bpf, nr("clone3"), x64) == RET_ENOSYS
    assert run_bpf(bpf, nr("clone"), x64, (signal.SIGCHLD,)) == RET_ALLOW
    assert run_bpf(bpf, nr("clone"), x64, (syscalls.CLONE_NEWUSER | signal.SIGCHLD,)) == RET_EPERM
    assert run_bpf(bpf, nr("socket"), x64, (2,)) == RET_ALLOW  # AF_INET
    assert run_bpf(bpf, nr("socket"), x64, (40,)) == RET_EPERM  # AF_VSOCK
    assert run_bpf(bpf, nr("personality"), x64, (0xFFFFFFFF,)) == RET_ALLOW
    assert run_bpf(bpf, nr("personality"), x64, (0x0040000,)) == RET_EPERM  # ADDR_NO_RANDOMIZE
    # x32 and i386 callers get the same treatment with their own numbering
    assert run_bpf(bpf, X32_BIT | 1000, x64) == RET_ENOSYS
    assert run_bpf(bpf, X32_BIT | 39, x64) == RET_ALLOW  # getpid
    assert run_bpf(bpf, 20, AUDIT_ARCH_I386) == RET_ALLOW  # getpid on i386
    assert run_bpf(bpf, 1000, AUDIT_ARCH_I386) == RET_ENOSYS
    # an architecture outside the filter is killed by libseccomp's bad-arch action
    assert run_bpf(bpf, 1000, AUDIT_ARCH_AARCH64) == seccomp.ACT_KILL_THREAD


IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "s390x", "ppc64le", "riscv64"])
def test_default_profile_blocks_io_uring_whatever_the_capabilities(machine: str) -> None:
    """As Docker since 25.0: a ring runs syscalls the filter never sees."""
    for caps in (capabilities.DOCKER_DEFAULT_CAPS, set(capabilities.CAPABILITIES)):
        assert not set(IO_URING) & _allowed(default_profile(caps, machine=machine))


@pytest.mark.skipif(not X86_64, reason="syscall numbers below are x86_64's")
def test_default_profile_bpf_denies_io_uring_with_eperm() -> None:
    all_caps = set(capabilities.CAPABILITIES)
    for caps in (capabilities.DOCKER_DEFAULT_CAPS, all_caps):
        bpf = seccomp.build_filter_bpf(default_profile(caps, machine="x86_64"))
        for name in IO_URING:
            assert run_bpf(bpf, nr(name), AUDIT_ARCH_X86_64) == RET_EPERM, name


@pytest.mark.skipif(not X86_64, reason="syscall numbers below are x86_64's")
def test_no_enosys_stub_when_default_allows() -> None:
    profile = Seccomp(syscalls=[SeccompSyscall(names=["mkdir"], action="SCMP_ACT_ERRNO")])
    bpf = seccomp.build_filter_bpf(profile)
    assert run_bpf(bpf, 1000, AUDIT_ARCH_X86_64) == RET_ALLOW
    assert run_bpf(bpf, nr("mkdir"), AUDIT_ARCH_X86_64) == RET_EPERM


@pytest.mark.skipif(not X86_64, reason="syscall numbers below are x86_64's")
@pytest.mark.parametrize(
    ("default", "unknown_verdict"),
    [
        ("SCMP_ACT_TRACE", seccomp.ACT_TRACE | errno.EPERM),
        ("SCMP_ACT_LOG", seccomp.ACT_LOG),
        ("SCMP_ACT_KILL_PROCESS", RET_ENOSYS),
        ("SCMP_ACT_TRAP", RET_ENOSYS),
    ],
)
def test_enosys_stub_only_for_denying_defaults(default: str, unknown_verdict: int) -> None:
    rule = SeccompSyscall(names=["getpid"], action="SCMP_ACT_ALLOW")
    bpf = seccomp.build_filter_bpf(Seccomp(default_action=default, syscalls=[rule]))
    assert run_bpf(bpf, 1000, AUDIT_ARCH_X86_64) == unknown_verdict
    assert run_bpf(bpf, nr("getpid"), AUDIT_ARCH_X86_64) == RET_ALLOW


@pytest.mark.skipif(not X86_64, reason="syscall numbers below are x86_64's")
def test_repeated_argument_index_means_or() -> None:
    rule = SeccompSyscall(
        names=["fchmod"],
        action="SCMP_ACT_ERRNO",
        errno_ret=errno.EACCES,
        args=[
            SeccompArg(index=1, value=0o700, op="SCMP_CMP_EQ"),
            SeccompArg(index=1, value=0o711, op="SCMP_CMP_EQ"),
        ],
    )
    bpf = seccomp.build_filter_bpf(Seccomp(syscalls=[rule]))
    deny = seccomp.ACT_ERRNO | errno.EACCES
    assert run_bpf(bpf, nr("fchmod"), AUDIT_ARCH_X86_64, (3, 0o700)) == deny
    assert run_bpf(bpf, nr("fchmod"), AUDIT_ARCH_X86_64, (3, 0o711)) == deny
    assert run_bpf(bpf, nr("fchmod"), AUDIT_ARCH_X86_64, (3, 0o755)) == RET_ALLOW


# --- loaded filters, in forked children ---------------------------------------------------


def test_errno_rule_denies_mkdir_only(tmp_path: Path) -> None:
    target = tmp_path / f"capsa-test-{uuid.uuid4().hex[:8]}"
    profile = Seccomp(
        syscalls=[SeccompSyscall(names=["mkdir", "mkdirat"], action="SCMP_ACT_ERRNO")]
    )

    def body() -> str:
        try:
            os.mkdir(target)
        except OSError as e:
            return f"{e.errno} {os.getpid() > 0}"
        return "created"

    assert ok(*under_filter(profile, body)) == f"{errno.EPERM} True"
    assert not target.exists()


def test_masked_eq_argument_filter(tmp_path: Path) -> None:
    path = tmp_path / f"capsa-test-{uuid.uuid4().hex[:8]}"
    path.write_text("")
    setuid_bit = SeccompArg(index=1, value=0o4000, value_two=0o4000, op="SCMP_CMP_MASKED_EQ")
    rule = SeccompSyscall(
        names=["fchmod"], action="SCMP_ACT_ERRNO", errno_ret=errno.EACCES, args=[setuid_bit]
    )

    def body() -> str:
        fd = os.open(path, os.O_RDONLY)
        os.fchmod(fd, 0o755)
        try:
            os.fchmod(fd, 0o4755)
        except OSError as e:
            return str(e.errno)
        return "allowed"

    assert ok(*under_filter(Seccomp(syscalls=[rule]), body)) == str(errno.EACCES)


def test_default_profile_in_a_child() -> None:
    def body() -> str:
        results = [
            raw_syscall(1000),  # newer than the profile: ENOSYS, so libc falls back
            raw_syscall(nr("add_key"), 0, 0, 0, 0, 0),  # known and blocked: EPERM
            raw_syscall(nr("clone3"), 0, 0),  # ENOSYS without CAP_SYS_ADMIN
            raw_syscall(nr("getpid")),
        ]
        try:
            syscalls.unshare(syscalls.CLONE_NEWUTS)
            results.append(0)
        except OSError as e:
            results.append(e.errno or -1)
        return " ".join(map(str, results))

    out = ok(*under_filter(default_profile(), body))
    assert out.split() == [
        str(x) for x in (errno.ENOSYS, errno.EPERM, errno.ENOSYS, 0, errno.EPERM)
    ]


def test_default_profile_runs_ordinary_programs() -> None:
    script = "ls / >/dev/null && cat /proc/self/status >/dev/null && id -u && echo ok"

    def body() -> str:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.dup2(w, 1)
            os.execv("/bin/sh", ["sh", "-c", script])
        os.close(w)
        with os.fdopen(r) as f:
            out = f.read()
        _, status = os.waitpid(pid, 0)
        return f"{os.waitstatus_to_exitcode(status)}\n{out}"

    out = ok(*under_filter(default_profile(), body))
    assert out.splitlines()[0] == "0"
    assert out.splitlines()[-1] == "ok"


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"])
def test_kill_and_trap_actions_raise_sigsys(action: str) -> None:
    profile = Seccomp(syscalls=[SeccompSyscall(names=["getppid"], action=action)])

    def body() -> str:
        os.getppid()
        return "survived"

    status, out = under_filter(profile, body)
    assert os.WIFSIGNALED(status), out
    assert os.WTERMSIG(status) == signal.SIGSYS


def test_load_without_no_new_privs_needs_sys_admin() -> None:
    prepared = seccomp.prepare(default_profile())

    def child() -> str:
        capabilities.apply(capabilities.CapSets())  # drop CAP_SYS_ADMIN if we had it
        try:
            prepared.load()
        except PermissionDenied as e:
            return str(e)
        return "loaded"

    out = ok(*run_in_child(child))
    assert "no_new_privs" in out
