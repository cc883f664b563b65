"""The monitor host asleep: a few hundred bytes of machine code that wait for work.

Why: an idle container needs nobody, but when it writes output, exits, gets an
``attach``, is due a healthcheck, or a command asks for a warm start, the host must be
there with everything it held open. A Python interpreter costs megabytes just waiting.
So a host with nothing to do execs this program (``execve`` keeps its pid, its
children and every fd it chose to keep), which only ``ppoll``s those fds; on the first
event, or at the timeout, it execs the host's interpreter again, which reads its state
back from the file it wrote before sleeping (``capsa.engine.monitor.sleep``).

The fds, the timeout, the interpreter's path, its arguments and environment are data of
the program, filled in when it is made. If the ``execve`` back fails the program exits
127: the containers' shims (``capsa.linux.shim``) keep their exit statuses and output
for the next host.

x86-64 only (``Unsupported`` elsewhere: the host then stays awake, which costs memory,
not function).
"""

from __future__ import annotations

import os

from capsa.linux import asm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_POLLIN = 0x0001
_EINTR = 4


class Unsupported(Exception):
    """No machine-code sleeper for this machine."""


def supported() -> bool:
    return os.uname().machine == "x86_64"


def _strings(prefix: str, items: list[bytes]) -> tuple[list[Any], list[Any]]:
    """An array of pointers to NUL-terminated ``items`` (NULL at the end), and the items."""
    pointers: list[Any] = [asm.label(prefix)]
    texts: list[Any] = []
    for i, item in enumerate(items):
        if b"\0" in item:
            raise ValueError(f"a NUL byte in {item!r}")
        pointers.append(asm.pointer(f"{prefix}{i}"))
        texts += [asm.label(f"{prefix}{i}"), item + b"\0"]
    pointers.append(asm.u64(0))
    return pointers, texts


def program(
    fds: list[int], timeout: float | None, path: bytes, argv: list[bytes], env: list[bytes]
) -> bytes:
    """Sleep until one of ``fds`` is readable (or hung up), or ``timeout`` seconds pass
    (None: no timeout); then ``execve(path, argv, env)``."""
    if not supported():
        raise Unsupported(f"no machine-code sleeper for {os.uname().machine}")
    code: list[Any] = [
        asm.label("poll"),
        asm.mov_address(asm.EDI, "fds"),
        asm.mov(asm.ESI, len(fds)),
        asm.mov_address(asm.EDX, "timeout") if timeout is not None else b"\x31\xd2",
        b"\x45\x31\xd2",  # xor r10d, r10d: no signal mask
        b"\x45\x31\xc0",  # xor r8d, r8d
        asm.syscall(asm.SYS_ppoll),
        b"\x48\x83\xf8" + bytes((256 - _EINTR,)),  # cmp rax, -EINTR
        asm.branch(asm.JE, "poll"),
        asm.mov_address(asm.EDI, "path"),
        asm.mov_address(asm.ESI, "argv"),
        asm.mov_address(asm.EDX, "env"),
        asm.syscall(asm.SYS_execve),
        asm.mov(asm.EDI, 127),
        asm.syscall(asm.SYS_exit_group),
    ]
    seconds = max(0.0, timeout or 0.0)
    argv_pointers, argv_texts = _strings("argv", argv)
    env_pointers, env_texts = _strings("env", env)
    data: list[Any] = [
        asm.label("timeout"),  # struct timespec; ppoll writes back what is left
        asm.u64(int(seconds)),
        asm.u64(int((seconds - int(seconds)) * 1e9)),
        *argv_pointers,
        *env_pointers,
        asm.label("fds"),  # struct pollfd: int fd, short events, short revents
        *(
            fd.to_bytes(4, "little", signed=True) + _POLLIN.to_bytes(2, "little") + bytes(2)
            for fd in fds
        ),
        asm.label("path"),
        path + b"\0",
        *argv_texts,
        *env_texts,
    ]
    return asm.link(code, data)
