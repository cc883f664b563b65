"""The last hop into a container: a tiny static program in a sealed memfd.

Why: until its final ``execve`` the process entering a container (the init, or an
``exec``) is the host's Python interpreter, and ``/proc/self/exe`` names that binary.
A container that swaps its program for ``#!/proc/self/exe`` makes the kernel run that
very interpreter inside the container; its processes can then reach the host's
interpreter through ``/proc/<pid>/exe`` and overwrite it once nothing runs it
(CVE-2019-5736, which runc answers with a sealed memfd copy of itself). Copying the
interpreter per exec would cost milliseconds, so instead the entering process execs
this trampoline from a sealed, close-on-exec memfd, and the trampoline execs the
program. What a container can reach through ``/proc/<pid>/exe`` from then on is an
immutable anonymous file of a few hundred bytes.

The trampoline is x86-64 machine code written here (no compiler needed). Its argv is
``[path, argv0, argv1, ...]``: it marks ``report_fd`` close-on-exec, calls
``execve(path, &argv[1], envp)``, and if that fails writes the errno (4 bytes, native
order) to ``report_fd``, optionally ``exec PATH: <reason>`` to stderr, and exits 127
(ENOENT) or 126 (anything else), the codes Docker uses for "not found" and "cannot
invoke".
"""

from __future__ import annotations

import errno
import fcntl
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_BASE = 0x400000
_EHDR = 64
_PHDR = 56

# what the message says for the errors execve can still meet after the runtime's checks
_REASONS = (
    (errno.ENOENT, "no such file or directory"),
    (errno.EACCES, "permission denied"),
    (errno.ENOEXEC, "exec format error"),
    (errno.ELOOP, "too many levels of symbolic links"),
    (errno.ETXTBSY, "text file busy"),
    (errno.E2BIG, "argument list too long"),
    (errno.ENOMEM, "cannot allocate memory"),
    (errno.EPERM, "operation not permitted"),
    (errno.EISDIR, "is a directory"),
    (errno.ENOTDIR, "not a directory"),
    (errno.EINVAL, "invalid argument"),
    (errno.ELIBBAD, "accessing a corrupted shared library"),
)


class Unsupported(Exception):
    """No trampoline for this machine: the caller execs directly."""


# assembler items: bytes, or (kind, ...) tuples, so that importing this costs little
def _label(name: str) -> tuple[str, str]:
    return ("label", name)


def _rel8(op: bytes, label: str) -> tuple[str, bytes, str]:
    """A short jump: ``op`` then an 8-bit displacement to ``label``."""
    return ("rel8", op, label)


def _rip32(op: bytes, label: str) -> tuple[str, bytes, str]:
    """An instruction ending in a 32-bit RIP-relative displacement to ``label``."""
    return ("rip32", op, label)


def _u32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "little")


def _size(part: Any) -> int:
    if isinstance(part, bytes):
        return len(part)
    if part[0] == "label":
        return 0
    return len(part[1]) + (1 if part[0] == "rel8" else 4)


def _assemble(parts: list[Any]) -> bytes:
    """Two passes: label offsets, then the code with displacements filled in."""
    labels: dict[str, int] = {}
    pos = 0
    for part in parts:
        if not isinstance(part, bytes) and part[0] == "label":
            labels[part[1]] = pos
        pos += _size(part)
    out = bytearray()
    for part in parts:
        if isinstance(part, bytes):
            out += part
            continue
        kind, op, label = (*part, "")[:3]
        end = len(out) + _size(part)
        if kind == "rel8":
            disp = labels[label] - end
            assert -128 <= disp < 128, part
            out += op + (disp & 0xFF).to_bytes(1, "little")
        elif kind == "rip32":
            out += op + _u32(labels[label] - end)
    return bytes(out)


def _reason_table() -> bytes:
    """Entries of (errno, length, text); errno 0 ends it, with the generic text."""
    table = bytearray()
    for number, text in (*_REASONS, (0, "exec failed")):
        data = text.encode() + b"\n"
        table += bytes((number, len(data))) + data
    return bytes(table)


def _x86_64(report_fd: int, prefix: bytes | None) -> bytes:
    w = _u32(report_fd)
    syscall = b"\x0f\x05"
    code: list[Any] = [
        # fcntl(report_fd, F_SETFD, FD_CLOEXEC): the program must not inherit it
        b"\xbf" + w,  # mov edi, report_fd
        b"\xbe\x02\x00\x00\x00",  # mov esi, F_SETFD
        b"\xba\x01\x00\x00\x00",  # mov edx, FD_CLOEXEC
        b"\xb8\x48\x00\x00\x00",  # mov eax, SYS_fcntl
        syscall,
        b"\x48\x8b\x0c\x24",  # mov rcx, [rsp]          argc
        b"\x41\xbc" + _u32(errno.EINVAL),  # mov r12d, EINVAL   (too few arguments)
        b"\x48\x83\xf9\x02",  # cmp rcx, 2
        _rel8(b"\x7c", "failed"),  # jl failed
        b"\x48\x8b\x7c\x24\x08",  # mov rdi, [rsp+8]        argv[0]: the path
        b"\x48\x8d\x74\x24\x10",  # lea rsi, [rsp+16]       &argv[1]
        b"\x48\x8d\x54\xcc\x10",  # lea rdx, [rsp+rcx*8+16] envp
        b"\xb8\x3b\x00\x00\x00",  # mov eax, SYS_execve
        syscall,
        b"\x41\x89\xc4",  # mov r12d, eax
        b"\x41\xf7\xdc",  # neg r12d                 errno
        _label("failed"),
        b"\x44\x89\x64\x24\xf8",  # mov [rsp-8], r12d
        b"\xbf" + w,  # mov edi, report_fd
        b"\x48\x8d\x74\x24\xf8",  # lea rsi, [rsp-8]
        b"\xba\x04\x00\x00\x00",  # mov edx, 4
        b"\xb8\x01\x00\x00\x00",  # mov eax, SYS_write
        syscall,
    ]
    if prefix is not None:
        code += [
            b"\xbf\x02\x00\x00\x00",  # mov edi, 2
            _rip32(b"\x48\x8d\x35", "prefix"),  # lea rsi, [rip+prefix]
            b"\xba" + _u32(len(prefix)),  # mov edx, len(prefix)
            b"\xb8\x01\x00\x00\x00",  # mov eax, SYS_write
            syscall,
            _rip32(b"\x48\x8d\x35", "reasons"),  # lea rsi, [rip+reasons]
            _label("next"),
            b"\x0f\xb6\x06",  # movzx eax, byte [rsi]
            b"\x0f\xb6\x56\x01",  # movzx edx, byte [rsi+1]
            b"\x85\xc0",  # test eax, eax
            _rel8(b"\x74", "found"),  # jz found (the generic entry)
            b"\x44\x39\xe0",  # cmp eax, r12d
            _rel8(b"\x74", "found"),  # je found
            b"\x48\x8d\x74\x16\x02",  # lea rsi, [rsi+rdx+2]
            _rel8(b"\xeb", "next"),  # jmp next
            _label("found"),
            b"\x48\x83\xc6\x02",  # add rsi, 2
            b"\xbf\x02\x00\x00\x00",  # mov edi, 2
            b"\xb8\x01\x00\x00\x00",  # mov eax, SYS_write
            syscall,
        ]
    code += [
        b"\xbf\x7e\x00\x00\x00",  # mov edi, 126
        b"\x41\x83\xfc" + bytes((errno.ENOENT,)),  # cmp r12d, ENOENT
        _rel8(b"\x75", "exit"),  # jne exit
        b"\xbf\x7f\x00\x00\x00",  # mov edi, 127
        _label("exit"),
        b"\xb8\xe7\x00\x00\x00",  # mov eax, SYS_exit_group
        syscall,
    ]
    if prefix is not None:
        code += [_label("prefix"), prefix, _label("reasons"), _reason_table()]
    return _assemble(code)


def _elf(machine: int, text: bytes) -> bytes:
    """A static executable: one read+execute segment holding headers and code."""
    size = _EHDR + _PHDR + len(text)
    ident = b"\x7fELF" + bytes((2, 1, 1, 0)) + bytes(8)
    header = (
        ident
        + (2).to_bytes(2, "little")  # ET_EXEC
        + machine.to_bytes(2, "little")
        + (1).to_bytes(4, "little")
        + (_BASE + _EHDR + _PHDR).to_bytes(8, "little")  # entry
        + _EHDR.to_bytes(8, "little")  # program headers
        + bytes(8)  # no section headers
        + bytes(4)  # flags
        + _EHDR.to_bytes(2, "little")
        + _PHDR.to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + bytes(6)
    )
    program = (
        (1).to_bytes(4, "little")  # PT_LOAD
        + (5).to_bytes(4, "little")  # PF_R | PF_X
        + bytes(8)  # from the start of the file
        + _BASE.to_bytes(8, "little")
        + _BASE.to_bytes(8, "little")
        + size.to_bytes(8, "little")
        + size.to_bytes(8, "little")
        + (0x1000).to_bytes(8, "little")
    )
    return header + program + text


def build(report_fd: int = -1, message: bytes | None = None) -> bytes:
    """The trampoline for this machine. ``report_fd`` receives the errno of a failed
    execve (-1: nowhere); with ``message``, stderr gets ``message`` + the reason."""
    if os.uname().machine != "x86_64":
        raise Unsupported(f"no exec trampoline for {os.uname().machine}")
    return _elf(0x3E, _x86_64(report_fd, message))


def sealed_memfd(data: bytes) -> int:
    """A close-on-exec memfd holding ``data``, sealed against any change."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create("capsa-exec", flags | _MFD_EXEC)
    except OSError as e:
        if e.errno != errno.EINVAL:  # kernels before 6.3 know no MFD_EXEC
            raise
        fd = os.memfd_create("capsa-exec", flags)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        fcntl.fcntl(
            fd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE,
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


_MFD_EXEC = 0x0010
