"""cgroup v2 device filter: an eBPF BPF_PROG_TYPE_CGROUP_DEVICE program, made in Python.

The program follows runc's devicefilter (itself from crun): load the access type,
access mask, major and minor from ``struct bpf_cgroup_dev_ctx``, then one block per
rule. Rules are tested last first, so a later rule overrides an earlier one as it does
in v1; nothing matching means deny. The program is loaded and attached with the
bpf(2) syscall through capsa.linux.libc, with BPF_F_ALLOW_MULTI, replacing the ones we
attached before.
"""

from __future__ import annotations

import os
import resource
import struct

from capsa.cgroups.devices import Rule
from capsa.errors import CapsaError, InvalidArgument, PermissionDenied, Unavailable
from capsa.linux import libc
from capsa.record import record

# bpf(2) commands, types and flags (include/uapi/linux/bpf.h)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2

# opcodes: class | op | source
_LDX_MEM_W = 0x61
_ALU_AND_K = 0x54
_ALU_RSH_K = 0x74
_ALU_MOV_K = 0xB4
_ALU_MOV_X = 0xBC
_JMP_JNE_K = 0x55
_JMP_JNE_X = 0x5D
_JMP_EXIT = 0x95

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_LICENSE = b"Apache\0"


@record(frozen=True)
class Insn:
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


def _prologue() -> list[Insn]:
    return [
        Insn(_LDX_MEM_W, dst=2, src=1, off=0),  # r2 = ctx->access_type
        Insn(_ALU_AND_K, dst=2, imm=0xFFFF),  # r2 &= 0xffff: device type
        Insn(_LDX_MEM_W, dst=3, src=1, off=0),  # r3 = ctx->access_type
        Insn(_ALU_RSH_K, dst=3, imm=16),  # r3 >>= 16: access mask
        Insn(_LDX_MEM_W, dst=4, src=1, off=4),  # r4 = ctx->major
        Insn(_LDX_MEM_W, dst=5, src=1, off=8),  # r5 = ctx->minor
    ]


def _access_mask(access: str) -> int:
    flags = {"r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE, "m": BPF_DEVCG_ACC_MKNOD}
    mask = 0
    for c in access:
        mask |= flags[c]
    return mask


def _block(rule: Rule) -> list[Insn]:
    """Instructions for one rule; a jump offset of None means "to the next block"."""
    body: list[tuple[Insn, bool]] = []  # (insn, jumps to next block)
    if rule.type != "a":
        kind = BPF_DEVCG_DEV_CHAR if rule.type == "c" else BPF_DEVCG_DEV_BLOCK
        body.append((Insn(_JMP_JNE_K, dst=2, imm=kind), True))
    mask = _access_mask(rule.access)
    if mask != 7:
        body.append((Insn(_ALU_MOV_X, dst=1, src=3), False))  # r1 = r3
        body.append((Insn(_ALU_AND_K, dst=1, imm=mask), False))  # r1 &= mask
        body.append((Insn(_JMP_JNE_X, dst=1, src=3), True))  # asked more than allowed
    if rule.major >= 0:
        body.append((Insn(_JMP_JNE_K, dst=4, imm=rule.major), True))
    if rule.minor >= 0:
        body.append((Insn(_JMP_JNE_K, dst=5, imm=rule.minor), True))
    body.append((Insn(_ALU_MOV_K, dst=0, imm=1 if rule.allow else 0), False))
    body.append((Insn(_JMP_EXIT), False))
    end = len(body)
    return [
        Insn(i.code, i.dst, i.src, end - pc - 1, i.imm) if jumps else i
        for pc, (i, jumps) in enumerate(body)
    ]


def build_program(rules: list[Rule]) -> list[Insn]:
    """The filter program for ``rules`` (later rules win; default deny)."""
    insns = _prologue()
    for rule in reversed(rules):
        if rule.type not in ("a", "b", "c") or set(rule.access) - set("rwm"):
            raise InvalidArgument(f"invalid device rule {rule}")
        insns.extend(_block(rule))
        if rule.type == "a" and rule.major == -1 and rule.minor == -1 and rule.access == "rwm":
            return insns  # matches everything: nothing before it can be reached
    insns.append(Insn(_ALU_MOV_K, dst=0, imm=0))
    insns.append(Insn(_JMP_EXIT))
    return insns


def encode(insns: list[Insn]) -> bytes:
    return b"".join(i.encode() for i in insns)


def _bpf(cmd: int, attr: bytearray) -> int:
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise Unavailable(f"bpf syscall number unknown on {os.uname().machine}")
    return libc.call("syscall", nr, cmd, libc.buffer(attr), len(attr))


def _error(what: str, e: OSError) -> CapsaError:
    if e.errno in (1, 13):  # EPERM, EACCES
        return PermissionDenied(f"{what}: {e.strerror}")
    return Unavailable(f"{what}: {e.strerror}")


def _load_attr(code: bytearray, lic: bytearray, log: bytearray | None) -> bytearray:
    """union bpf_attr for BPF_PROG_LOAD; it points into the three buffers, which must
    stay alive (and unresized) until the call."""
    attr = bytearray(128)
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(code) // 8,
        libc.address(libc.buffer(code)),
        libc.address(libc.buffer(lic)),
        1 if log is not None else 0,
        len(log) if log is not None else 0,
        libc.address(libc.buffer(log)) if log is not None else 0,
    )
    return attr


def load(program: bytes) -> int:
    """BPF_PROG_LOAD; return the program fd (bpf fds are close-on-exec)."""
    # kernels >= 5.11 account bpf memory to the memcg and ignore RLIMIT_MEMLOCK
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY,) * 2)
    except (ValueError, OSError):
        pass  # kernels >= 5.11 charge BPF to the cgroup, not to RLIMIT_MEMLOCK
    code = bytearray(program)
    lic = bytearray(_LICENSE)
    try:
        return _bpf(BPF_PROG_LOAD, _load_attr(code, lic, None))
    except OSError as e:
        first = e
    log = bytearray(1 << 20)  # load again, only to get the verifier's word
    try:
        return _bpf(BPF_PROG_LOAD, _load_attr(code, lic, log))
    except OSError:
        lines = log.split(b"\0", 1)[0].decode(errors="replace").strip().splitlines()
        detail = f" ({lines[-1]})" if lines else ""
        raise _error(f"cannot load device filter{detail}", first) from None


def attached(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached directly to the cgroup."""
    capacity = 64
    ids = bytearray(4 * capacity)  # u32 program ids
    attr = bytearray(40)
    struct.pack_into(
        "<IIIIQI",
        attr,
        0,
        cgroup_fd,
        BPF_CGROUP_DEVICE,
        0,
        0,
        libc.address(libc.buffer(ids)),
        capacity,
    )
    _bpf(BPF_PROG_QUERY, attr)
    count = min(struct.unpack_from("<I", attr, 24)[0], capacity)
    return list(struct.unpack_from(f"<{count}I", ids))


def _attach_cmd(cmd: int, cgroup_fd: int, prog_fd: int, flags: int) -> None:
    attr = bytearray(24)
    struct.pack_into("<IIII", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags)
    _bpf(cmd, attr)


def _detach_id(cgroup_fd: int, prog_id: int) -> None:
    attr = bytearray(16)
    struct.pack_into("<III", attr, 0, prog_id, 0, 0)
    fd = _bpf(BPF_PROG_GET_FD_BY_ID, attr)
    try:
        _attach_cmd(BPF_PROG_DETACH, cgroup_fd, fd, 0)
    finally:
        os.close(fd)


def install(cgroup_dir: str, rules: list[Rule]) -> None:
    """Attach a filter for ``rules`` to the cgroup, then detach the filters it replaces."""
    program = encode(build_program(rules))
    dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            old = attached(dir_fd)
        except OSError as e:
            raise _error(f"cannot query device filters of {cgroup_dir}", e) from None
        prog_fd = load(program)
        try:
            _attach_cmd(BPF_PROG_ATTACH, dir_fd, prog_fd, BPF_F_ALLOW_MULTI)
        except OSError as e:
            raise _error(f"cannot attach device filter to {cgroup_dir}", e) from None
        finally:
            os.close(prog_fd)
        for prog_id in old:
            try:
                _detach_id(dir_fd, prog_id)
            except OSError as e:
                raise _error(f"cannot detach old device filter from {cgroup_dir}", e) from None
    finally:
        os.close(dir_fd)


def attached_count(cgroup_dir: str) -> int:
    dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return len(attached(dir_fd))
    except OSError:
        return 0
    finally:
        os.close(dir_fd)
