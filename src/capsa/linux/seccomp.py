"""Seccomp filters from an OCI ``linux.seccomp`` section, built with libseccomp (ctypes).

``prepare()`` does all the work early (resolve names, build the libseccomp context,
export its BPF, prepend an ENOSYS stub) and returns a ``PreparedFilter`` whose
``load()`` is a single seccomp(2) call, so the runtime can build the filter before
dropping privileges and load it last, right before execve.

Like runc, the filter is loaded with seccomp(2) rather than ``seccomp_load`` because the
program is patched: syscalls numbered above the highest one the profile names get
``ENOSYS`` instead of the default action, so that libc falls back from syscalls newer
than the profile (see runc's patchbpf). libseccomp is opened on first use, never at import.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterable

from capsa.errors import Internal, InvalidArgument, PermissionDenied, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: keep the import of this module light
    from capsa.oci.runtime_spec import Seccomp, SeccompArg, SeccompSyscall

_LIBRARY = "libseccomp.so.2"

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000

_ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
}
# Actions that let unknown syscalls reach the kernel anyway: no ENOSYS stub needed.
_ALLOW_LIKE = (ACT_ALLOW, ACT_LOG, ACT_TRACE)
_RET_ACTION_MASK = 0xFFFF0000  # SECCOMP_RET_ACTION_FULL: the action without its data

_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_SECCOMP_SET_MODE_FILTER = 1
_BPF_MAXINSNS = 4096

# libseccomp arch tokens equal the kernel's AUDIT_ARCH_* values, except x32 which the
# kernel reports as x86_64 with bit 30 set in the syscall number.
_ARCH_X86_64 = 0xC000003E
_ARCH_X32 = 0x4000003E
_X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes used by the stub
_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JMP_JGT = 0x25
_JMP_JEQ = 0x15
_JMP_JSET = 0x45
_RET_K = 0x06
_INSN = struct.Struct("=HBBI")  # struct sock_filter, host byte order

_libc = ctypes.CDLL(None, use_errno=True)
_lib: ctypes.CDLL | None = None


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _open() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(_LIBRARY, use_errno=True)
        except OSError as e:
            raise Unavailable(f"seccomp: cannot load {_LIBRARY}") from e
        vp, u32, cstr = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p
        lib.seccomp_init.argtypes, lib.seccomp_init.restype = [u32], vp
        lib.seccomp_release.argtypes, lib.seccomp_release.restype = [vp], None
        lib.seccomp_arch_add.argtypes = [vp, u32]
        lib.seccomp_arch_native.argtypes, lib.seccomp_arch_native.restype = [], u32
        lib.seccomp_arch_resolve_name.argtypes = [cstr]
        lib.seccomp_arch_resolve_name.restype = u32
        lib.seccomp_syscall_resolve_name.argtypes = [cstr]
        lib.seccomp_syscall_resolve_name_arch.argtypes = [u32, cstr]
        lib.seccomp_rule_add_array.argtypes = [vp, u32, ctypes.c_int, ctypes.c_uint, vp]
        lib.seccomp_export_bpf.argtypes = [vp, ctypes.c_int]
        _lib = lib
    return _lib


def available() -> bool:
    """True if libseccomp can be loaded."""
    try:
        _open()
    except Unavailable:
        return False
    return True


def resolve_syscall(name: str, arch: str | None = None) -> int | None:
    """Number of syscall ``name`` on ``arch`` (OCI name, default native); None if unknown."""
    lib = _open()
    token = lib.seccomp_arch_native() if arch is None else _arch_token(lib, arch)
    nr = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
    return nr if nr >= 0 else None


class PreparedFilter:
    """A finished BPF program; ``load()`` installs it on the calling thread(s)."""

    def __init__(self, program: bytes, flags: int, skipped: tuple[str, ...]) -> None:
        self.program = program
        self.flags = flags
        self.skipped = skipped  # syscall names libseccomp does not know
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // _INSN.size, ctypes.addressof(self._buffer))
        self._nr = _open().seccomp_syscall_resolve_name(b"seccomp")

    def load(self) -> None:
        """seccomp(SECCOMP_SET_MODE_FILTER); needs no_new_privs or CAP_SYS_ADMIN."""
        ret = _libc.syscall(
            ctypes.c_long(self._nr),
            ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
            ctypes.c_long(self.flags),
            ctypes.byref(self._fprog),
        )
        if ret == 0:
            return
        if ret > 0:
            raise Internal(f"seccomp: thread {ret} could not be synchronised")
        err = ctypes.get_errno()
        if err == errno.EACCES:
            raise PermissionDenied("seccomp: loading a filter needs no_new_privs or CAP_SYS_ADMIN")
        if err == errno.EINVAL:
            raise Unavailable(f"seccomp: kernel rejected the filter (flags {self.flags:#x})")
        raise Internal(f"seccomp: load filter: {os.strerror(err)}")


def load(profile: Seccomp) -> None:
    prepare(profile).load()


def build_filter_bpf(profile: Seccomp) -> bytes:
    """The complete BPF program (host byte order ``struct sock_filter`` array)."""
    return prepare(profile).program


def prepare(profile: Seccomp) -> PreparedFilter:
    if profile.listener_path:
        raise Unavailable("seccomp: notify listeners (listenerPath) are not supported")
    lib = _open()
    default = _action(profile.default_action, profile.default_errno_ret)
    flags = _flags(profile.flags)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise InvalidArgument(f"seccomp: invalid default action {profile.default_action}")
    try:
        tokens = _add_arches(lib, ctx, profile.architectures or [])
        skipped = _add_rules(lib, ctx, default, profile.syscalls or [])
        program = _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)
    if default & _RET_ACTION_MASK not in _ALLOW_LIKE:
        all_names = {n for s in profile.syscalls or [] for n in s.names}
        program = _enosys_stub(_max_syscalls(lib, tokens, all_names)) + program
    if len(program) // _INSN.size > _BPF_MAXINSNS:
        raise InvalidArgument("seccomp: filter is too large for the kernel")
    return PreparedFilter(program, flags, tuple(sorted(skipped)))


def _action(name: str, errno_ret: int | None) -> int:
    if name == "SCMP_ACT_NOTIFY":
        raise Unavailable("seccomp: action SCMP_ACT_NOTIFY is not supported")
    base = _ACTIONS.get(name)
    if base is None:
        raise InvalidArgument(f"seccomp: unknown action {name}")
    if base in (ACT_ERRNO, ACT_TRACE):
        value = errno.EPERM if errno_ret is None else errno_ret
        if not 0 <= value <= 0xFFFF:
            raise InvalidArgument(f"seccomp: errno {value} out of range")
        return base | value
    if errno_ret is not None:
        raise InvalidArgument(f"seccomp: errnoRet is not allowed with {name}")
    return base


def _flags(names: Iterable[str] | None) -> int:
    flags = 0
    for name in names or ():
        bit = FILTER_FLAGS.get(name)
        if bit is None:
            raise InvalidArgument(f"seccomp: unsupported flag {name}")
        flags |= bit
    return flags


def _arch_token(lib: ctypes.CDLL, oci_name: str) -> int:
    short = oci_name.removeprefix("SCMP_ARCH_").lower()
    token = int(lib.seccomp_arch_resolve_name(short.encode())) if short else 0
    if token == 0:
        raise InvalidArgument(f"seccomp: unknown architecture {oci_name}")
    return token


def _add_arches(lib: ctypes.CDLL, ctx: int, names: Iterable[str]) -> list[int]:
    tokens = [int(lib.seccomp_arch_native())]
    for name in names:
        token = _arch_token(lib, name)
        rc = lib.seccomp_arch_add(ctx, token)
        if rc == -errno.EEXIST:
            continue
        if rc < 0:
            raise InvalidArgument(f"seccomp: cannot add architecture {name}: {os.strerror(-rc)}")
        tokens.append(token)
    return tokens


def _add_rules(lib: ctypes.CDLL, ctx: int, default: int, rules: list[SeccompSyscall]) -> set[str]:
    skipped: set[str] = set()
    for rule in rules:
        action = _action(rule.action, rule.errno_ret)
        groups = _arg_groups(rule.args or [])
        if action == default:
            continue  # libseccomp refuses rules that repeat the default action
        for name in rule.names:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == -1:  # __NR_SCMP_ERROR: not known to libseccomp, skipped like runc
                skipped.add(name)
                continue
            for group in groups:
                rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), group or None)
                if rc < 0:
                    raise InvalidArgument(f"seccomp: rule for {name}: {os.strerror(-rc)}")
    return skipped


def _arg_groups(args: list[SeccompArg]) -> list[ctypes.Array[_ArgCmp]]:
    """Conditions of one rule: ANDed in one group, or one group each (ORed) when an
    argument index repeats, as runc does."""
    conds = [_arg_cmp(a) for a in args]
    indexes = [a.index for a in args]
    if len(set(indexes)) == len(indexes):
        return [(_ArgCmp * len(conds))(*conds)]
    return [(_ArgCmp * 1)(c) for c in conds]


def _arg_cmp(arg: SeccompArg) -> _ArgCmp:
    op = _OPS.get(arg.op)
    if op is None:
        raise InvalidArgument(f"seccomp: unknown operator {arg.op}")
    if not 0 <= arg.index < 6:
        raise InvalidArgument(f"seccomp: argument index {arg.index} out of range")
    mask64 = 0xFFFFFFFFFFFFFFFF
    return _ArgCmp(arg.index, op, arg.value & mask64, (arg.value_two or 0) & mask64)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("capsa-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise Internal(f"seccomp: export filter: {os.strerror(-rc)}")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _max_syscalls(lib: ctypes.CDLL, tokens: list[int], names: set[str]) -> dict[int, int]:
    """Highest syscall number the profile names, per architecture token."""
    top: dict[int, int] = {}
    for token in dict.fromkeys(tokens):
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, n.encode()) for n in names]
        valid = [nr for nr in numbers if nr >= 0]
        if valid:
            top[token] = max(valid)
    return top


_Insn = tuple[int, "int | str", "int | str", "int | str"]


def _enosys_stub(top: dict[int, int]) -> bytes:
    """BPF prefix: ``nr > top[arch]`` -> ERRNO(ENOSYS); everything else falls through
    to the libseccomp program appended after it (at label ``filter``)."""
    code: list[str | _Insn] = [(_LD_W_ABS, 0, 0, 4)]
    audit_arches = dict.fromkeys(_ARCH_X86_64 if t == _ARCH_X32 else t for t in top)
    for i, audit in enumerate(audit_arches):
        code += [(_JMP_JEQ, 0, f"arch{i + 1}", audit), (_LD_W_ABS, 0, 0, 0)]
        if audit == _ARCH_X86_64:  # x86_64 and x32 share the audit arch
            code.append((_JMP_JSET, f"x32_{i}", 0, _X32_SYSCALL_BIT))
            code += [_jgt_or_filter(top.get(_ARCH_X86_64)), f"x32_{i}"]
            code.append(_jgt_or_filter(top.get(_ARCH_X32)))
        else:
            code.append(_jgt_or_filter(top[audit]))
        code.append(f"arch{i + 1}")
    code += [(_JMP_JA, 0, 0, "filter"), "enosys", (_RET_K, 0, 0, ACT_ERRNO | errno.ENOSYS)]
    return _assemble([*code, "filter"])


def _jgt_or_filter(top: int | None) -> _Insn:
    if top is None:
        return (_JMP_JA, 0, 0, "filter")
    return (_JMP_JGT, "enosys", "filter", top)


def _assemble(code: list[str | _Insn]) -> bytes:
    """Lay out instructions; a str item is a label, str jump targets refer to labels."""
    labels: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)

    def offset(target: int | str, pos: int) -> int:
        return labels[target] - pos - 1 if isinstance(target, str) else target

    out = bytearray()
    for pos, (op, jt, jf, k) in enumerate(insns):
        jt_off, jf_off = offset(jt, pos), offset(jf, pos)
        if not (0 <= jt_off <= 255 and 0 <= jf_off <= 255):
            raise Internal("seccomp: stub jump out of range")
        out += _INSN.pack(op, jt_off, jf_off, offset(k, pos) if op == _JMP_JA else int(k))
    return bytes(out)
