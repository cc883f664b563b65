"""Static x86_64 probes that make one syscall and exit with its errno (0: it worked).

A busybox image has no tool that calls io_uring_setup, and the image has no compiler
or interpreter; these probes are a few machine instructions in a minimal ELF file, made
here so that no toolchain is needed. Bind-mount the file into a container and run it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

IO_URING_SETUP = 425  # x86_64
_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header + one program header


def _io_uring_setup_code() -> bytes:
    """io_uring_setup(1, &params) with zeroed params on the stack; exit(-ret) on failure,
    exit(0) on success."""
    return bytes.fromhex(
        "4881ec80000000"  # sub rsp, 128
        "4889e7"  # mov rdi, rsp
        "31c0"  # xor eax, eax
        "b978000000"  # mov ecx, 120      (sizeof struct io_uring_params)
        "f3aa"  # rep stosb                (zero it)
        "bf01000000"  # mov edi, 1        (entries)
        "4889e6"  # mov rsi, rsp          (params)
        + "b8"
        + struct.pack("<I", IO_URING_SETUP).hex()  # mov eax, __NR_io_uring_setup
        + "0f05"  # syscall
        "48f7d8"  # neg rax               (-errno -> errno; fd -> -fd)
        "4885c0"  # test rax, rax
        "7f02"  # jg +2                   (an errno: keep it)
        "31c0"  # xor eax, eax            (a ring fd: success, 0)
        "89c7"  # mov edi, eax
        "b8e7000000"  # mov eax, 231      (exit_group)
        "0f05"  # syscall
    )


def _elf(code: bytes) -> bytes:
    total = _HEADERS + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    header = struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, _BASE + _HEADERS, 64, 0, 0, 64, 56, 1, 64, 0, 0
    )  # ET_EXEC, x86_64, entry after the headers, program headers at 64
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, total, total, 0x1000)  # R+X
    return ident + header + load + code


def supported() -> bool:
    return os.uname().machine == "x86_64"


def write_io_uring_probe(path: Path) -> Path:
    """The io_uring_setup probe at ``path`` (executable)."""
    path.write_bytes(_elf(_io_uring_setup_code()))
    path.chmod(0o755)
    return path
