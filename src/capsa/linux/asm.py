"""Tiny static x86-64 programs written from Python: a few instructions, a linker, an ELF.

Why: a process that must outlive its Python supervisor and cost nearly nothing while
it waits (a container's shim, the monitor host asleep: ``capsa.linux.shim``) is best a
few hundred bytes of machine code. No compiler is needed here, as with the exec
trampoline (``capsa.linux.trampoline``): the instructions are spelled as bytes, with
their parameters (pids, fd numbers, addresses) filled in when the program is made.

A program is a list of *parts*: ``bytes`` (instructions or data, as they are),
``label(name)``, and references that the linker fills in: a jump to a label
(``jump``/``branch``), a label's absolute address as a 32-bit immediate
(``address``) or as a 64-bit word (``pointer``, for arrays of strings in data).
``link`` lays the code out at a fixed address (``ET_EXEC``, so every address is known
and below 4 GiB) in a read+execute segment, the data in a read+write segment after it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BASE = 0x400000
_PAGE = 0x1000
_EHDR = 64
_PHDR = 56

# registers by their encoding number (the 32-bit names; r8d-r15d need a REX prefix)
EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI = range(8)
R8, R9, R10 = 8, 9, 10

# Linux x86-64 system call numbers used by capsa's programs
SYS_write = 1
SYS_pause = 34
SYS_pwrite64 = 18
SYS_execve = 59
SYS_wait4 = 61
SYS_prctl = 157
SYS_exit_group = 231
SYS_ppoll = 271
SYSCALL = b"\x0f\x05"


def u32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "little")


def u64(value: int) -> bytes:
    return (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")


def label(name: str) -> tuple[str, str]:
    return ("label", name)


def jump(name: str) -> tuple[str, bytes, str]:
    """``jmp name`` (32-bit displacement)."""
    return ("rel32", b"\xe9", name)


# condition codes of the jcc instructions used here
JE, JNE, JL, JGE, JNS = 0x84, 0x85, 0x8C, 0x8D, 0x89


def branch(condition: int, name: str) -> tuple[str, bytes, str]:
    """``jcc name`` (32-bit displacement); ``condition`` is one of JE, JNE..."""
    return ("rel32", bytes((0x0F, condition)), name)


def address(op: bytes, name: str) -> tuple[str, bytes, str]:
    """``op`` followed by the absolute address of ``name`` as a 32-bit immediate."""
    return ("abs32", op, name)


def pointer(name: str) -> tuple[str, bytes, str]:
    """The absolute address of ``name`` as a 64-bit word (data)."""
    return ("abs64", b"", name)


def mov(reg: int, value: int) -> bytes:
    """``mov r32, imm32`` (zero-extended into the 64-bit register)."""
    if reg >= 8:
        return bytes((0x41, 0xB8 + reg - 8)) + u32(value)
    return bytes((0xB8 + reg,)) + u32(value)


def mov_address(reg: int, name: str) -> tuple[str, bytes, str]:
    """``mov r32, &name``: the program's addresses fit in 32 bits."""
    if reg >= 8:
        return address(bytes((0x41, 0xB8 + reg - 8)), name)
    return address(bytes((0xB8 + reg,)), name)


def syscall(number: int) -> bytes:
    """``mov eax, number; syscall``: the arguments are in rdi, rsi, rdx, r10, r8, r9."""
    return mov(EAX, number) + SYSCALL


def _size(part: Any) -> int:
    if isinstance(part, bytes):
        return len(part)
    kind = part[0]
    if kind == "label":
        return 0
    if kind == "abs64":
        return 8
    return len(part[1]) + 4  # rel32, abs32


def _layout(parts: list[Any], start: int) -> tuple[dict[str, int], int]:
    labels: dict[str, int] = {}
    pos = start
    for part in parts:
        if not isinstance(part, bytes) and part[0] == "label":
            if part[1] in labels:
                raise ValueError(f"label {part[1]} defined twice")
            labels[part[1]] = pos
        pos += _size(part)
    return labels, pos - start


def _emit(parts: list[Any], start: int, labels: dict[str, int]) -> bytes:
    out = bytearray()
    for part in parts:
        if isinstance(part, bytes):
            out += part
            continue
        kind = part[0]
        if kind == "label":
            continue
        target = labels[part[2]]
        if kind == "rel32":
            end = start + len(out) + _size(part)
            out += part[1] + u32(target - end)
        elif kind == "abs32":
            out += part[1] + u32(target)
        else:  # abs64
            out += u64(target)
    return bytes(out)


def link(code: list[Any], data: list[Any] | None = None) -> bytes:
    """A static executable: ``code`` at the entry point, ``data`` writable after it."""
    segments = 2 if data else 1
    code_start = BASE + _EHDR + _PHDR * segments
    code_labels, code_size = _layout(code, code_start)
    text_end = _EHDR + _PHDR * segments + code_size
    data_offset = -(-text_end // _PAGE) * _PAGE
    data_labels, data_size = _layout(data or [], BASE + data_offset)
    overlap = code_labels.keys() & data_labels.keys()
    if overlap:
        raise ValueError(f"labels in both code and data: {sorted(overlap)}")
    labels = {**code_labels, **data_labels}
    text = _emit(code, code_start, labels)
    headers = _header(code_start, segments) + _segment(0, text_end, 5)
    if not data:
        return headers + text
    blob = _emit(data, BASE + data_offset, labels)
    headers += _segment(data_offset, data_size, 6)
    image = headers + text
    return image + bytes(data_offset - len(image)) + blob


def _header(entry: int, segments: int) -> bytes:
    ident = b"\x7fELF" + bytes((2, 1, 1, 0)) + bytes(8)
    return (
        ident
        + (2).to_bytes(2, "little")  # ET_EXEC
        + (0x3E).to_bytes(2, "little")  # EM_X86_64
        + (1).to_bytes(4, "little")
        + entry.to_bytes(8, "little")
        + _EHDR.to_bytes(8, "little")  # program headers right after this one
        + bytes(8)  # no section headers
        + bytes(4)  # flags
        + _EHDR.to_bytes(2, "little")
        + _PHDR.to_bytes(2, "little")
        + segments.to_bytes(2, "little")
        + bytes(6)
    )


def _segment(offset: int, size: int, flags: int) -> bytes:
    """A PT_LOAD of ``size`` bytes at file ``offset``, mapped at BASE + offset."""
    return (
        (1).to_bytes(4, "little")  # PT_LOAD
        + flags.to_bytes(4, "little")  # PF_R 4 | PF_W 2 | PF_X 1
        + offset.to_bytes(8, "little")
        + (BASE + offset).to_bytes(8, "little")
        + (BASE + offset).to_bytes(8, "little")
        + size.to_bytes(8, "little")
        + size.to_bytes(8, "little")
        + _PAGE.to_bytes(8, "little")
    )
