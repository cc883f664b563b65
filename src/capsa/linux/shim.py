"""A running container's shim: the parent of its init, a few hundred bytes of machine code.

Why: a container's exit status is kept by the kernel for its parent only, and its output
pipes give the container ``SIGPIPE`` once nobody holds their read ends. Once a monitor
has handed a running container over to the monitor host, the monitor process execs
this program instead of exiting (``execve`` keeps the pid, so the init stays its child,
and the fds the monitor chose to keep: copies of the output pipes' read ends or the pty
master, the attach socket, the notification pipe and the status file). Whatever happens
to the host afterwards, the status and the output wait here for the next host, which
takes the fds over with ``pidfd_getfd`` (``capsa.engine.monitor.shim``). It costs a few
tens of KiB of kernel memory and one page of its own, instead of an interpreter.

What it does: ``wait4(-1, __WALL)`` until the init (``init_pid``) is reaped (other
children, such as the monitor's own forks, are reaped and ignored), writes the raw wait
status (4 bytes, native order; -1 if the init turned out not to be its child) at offset
0 of ``status_fd`` (a file in the container's run directory) and to ``notify_fd`` (a
pipe the host watches; the shim also holds its read end, so the write never fails), then
waits in ``pause()`` until whoever recorded the exit kills it. It makes itself
non-dumpable first: with ``--pid host`` a container sees it, and must not open its fds
through ``/proc``.

x86-64 only (``Unsupported`` elsewhere); ``python_shim_argv`` is the same program in
Python for other machines (an interpreter per container: a few MiB instead of KiB).
"""

from __future__ import annotations

import os
import sys

from capsa.linux import asm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WALL = 0x40000000
_PR_SET_DUMPABLE = 4
_EINTR = 4
UNKNOWN_STATUS = -1  # what the status file says when the init was not the shim's child


class Unsupported(Exception):
    """No machine-code shim for this machine: use ``python_shim_argv``."""


def supported() -> bool:
    return os.uname().machine == "x86_64"


def _check() -> None:
    if not supported():
        raise Unsupported(f"no machine-code shim for {os.uname().machine}")


def program(init_pid: int, status_fd: int, notify_fd: int) -> bytes:
    """The shim for one container, its parameters in the code as immediates."""
    _check()
    status = b"\x48\x8d\x74\x24\xf0"  # lea rsi, [rsp-16]: the status word, below the stack
    code: list[Any] = [
        asm.mov(asm.EDI, _PR_SET_DUMPABLE),
        b"\x31\xf6",  # xor esi, esi
        asm.syscall(asm.SYS_prctl),
        asm.label("wait"),
        b"\x48\xc7\xc7\xff\xff\xff\xff",  # mov rdi, -1: any child
        status,
        asm.mov(asm.EDX, _WALL),
        b"\x45\x31\xd2",  # xor r10d, r10d: no rusage
        asm.syscall(asm.SYS_wait4),
        b"\x3d" + asm.u32(init_pid),  # cmp eax, init_pid
        asm.branch(asm.JE, "reaped"),
        b"\x48\x83\xf8" + bytes((256 - _EINTR,)),  # cmp rax, -EINTR
        asm.branch(asm.JE, "wait"),
        b"\x48\x85\xc0",  # test rax, rax
        asm.branch(asm.JNS, "wait"),  # another child: keep waiting
        b"\xc7\x44\x24\xf0" + asm.u32(UNKNOWN_STATUS),  # mov dword [rsp-16], -1: ECHILD
        asm.label("reaped"),
        asm.mov(asm.EDI, status_fd),
        status,
        asm.mov(asm.EDX, 4),
        b"\x45\x31\xd2",  # xor r10d, r10d: offset 0
        asm.syscall(asm.SYS_pwrite64),
        asm.mov(asm.EDI, notify_fd),
        status,
        asm.mov(asm.EDX, 4),
        asm.syscall(asm.SYS_write),
        asm.label("hold"),
        asm.syscall(asm.SYS_pause),
        asm.jump("hold"),
    ]
    return asm.link(code)


def hold(init_pid: int, status_fd: int, notify_fd: int) -> None:
    """The shim's work in Python (machines without the machine code, or when it could
    not be started): never returns."""
    import signal

    while True:
        try:
            pid, status = os.waitpid(-1, _WALL)
        except ChildProcessError:
            pid, status = init_pid, UNKNOWN_STATUS
        if pid == init_pid:
            break
    word = (status & 0xFFFFFFFF).to_bytes(4, sys.byteorder)
    for fd, offset in ((status_fd, 0), (notify_fd, None)):
        try:
            os.pwrite(fd, word, offset) if offset is not None else os.write(fd, word)
        except OSError:
            pass
    while True:
        signal.pause()


def python_shim_argv(title: str, init_pid: int, status_fd: int, notify_fd: int) -> list[str]:
    """The shim as a lean Python program: ``execv(argv[0], argv)``. The title comes last
    (``ps`` shows the interpreter first)."""
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {package!r}); from capsa.linux.shim import hold; "
        "hold(*map(int, sys.argv[1:4]))"
    )
    params = (init_pid, status_fd, notify_fd)
    return [sys.executable, "-I", "-S", "-c", code, *map(str, params), title]


def read_status(word: bytes) -> int | None:
    """The wait status a shim wrote (``None``: it could not know the exit)."""
    if len(word) < 4:
        raise ValueError("incomplete shim status")
    value = int.from_bytes(word[:4], sys.byteorder, signed=True)
    return None if value == UNKNOWN_STATUS else value & 0xFFFF


def exec_program(code: bytes, argv: list[str]) -> None:
    """Replace this process with ``code`` (from a sealed memfd); returns only on failure
    (the OSError is raised). ``argv[0]`` is what ``ps`` shows; no environment."""
    from capsa.linux.trampoline import sealed_memfd

    fd = sealed_memfd(code)
    try:
        os.execve(fd, argv, {})
    finally:
        os.close(fd)
