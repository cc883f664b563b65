"""The exec trampoline (``capsa.linux.trampoline``) and the entering process's seals,
run on the host as ordinary programs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capsa.linux import trampoline

pytestmark = pytest.mark.skipif(
    os.uname().machine != "x86_64", reason="the trampoline is x86-64 machine code"
)


def _hop(
    argv: list[str], report_fd: int = -1, message: bytes | None = None, **kw: object
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` through a trampoline held in a sealed memfd."""
    fd = trampoline.sealed_memfd(trampoline.build(report_fd, message))
    try:
        return subprocess.run(
            argv,
            executable=f"/proc/self/fd/{fd}",
            capture_output=True,
            timeout=10,
            pass_fds=(fd,) + ((report_fd,) if report_fd >= 0 else ()),
            **kw,  # type: ignore[arg-type]
        )
    finally:
        os.close(fd)


def test_it_execs_the_program_with_its_arguments_and_environment() -> None:
    proc = _hop(["/bin/sh", "sh", "-c", 'echo "$0 $1 $FOO"', "zero", "one"], env={"FOO": "bar"})
    assert proc.returncode == 0
    assert proc.stdout == b"zero one bar\n"


def test_the_report_fd_is_closed_for_the_program() -> None:
    r, w = os.pipe()
    try:
        proc = _hop(
            ["/bin/sh", "sh", "-c", f"if test -e /proc/self/fd/{w}; then echo leaked; fi"], w
        )
        os.close(w)
        assert proc.returncode == 0 and proc.stdout == b""
        assert os.read(r, 16) == b""  # nothing reported: the exec succeeded
    finally:
        os.close(r)


@pytest.mark.parametrize(
    ("target", "err", "code", "reason"),
    [
        ("/nonexistent", errno.ENOENT, 127, b"no such file or directory"),
        ("NOTEXECUTABLE", errno.EACCES, 126, b"permission denied"),
        ("NOEXEC", errno.ENOEXEC, 126, b"exec format error"),
    ],
)
def test_a_failed_exec_is_reported(
    tmp_path: Path, target: str, err: int, code: int, reason: bytes
) -> None:
    if target in ("NOEXEC", "NOTEXECUTABLE"):
        script = tmp_path / "garbage"
        script.write_bytes(b"\x00\x01 not a program\n")
        script.chmod(0o755 if target == "NOEXEC" else 0o644)
        target = str(script)
    r, w = os.pipe()
    try:
        proc = _hop([target, "x"], w, f"exec {target}: ".encode())
        os.close(w)
        assert proc.returncode == code
        assert proc.stderr == f"exec {target}: ".encode() + reason + b"\n"
        assert int.from_bytes(os.read(r, 16), sys.byteorder) == err
    finally:
        os.close(r)


def test_without_a_message_it_writes_nothing() -> None:
    proc = _hop(["/nonexistent", "x"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (127, b"", b"")


def test_too_few_arguments_fail_cleanly() -> None:
    """``#!/proc/self/exe`` in a container makes the kernel run the trampoline again
    with the script as its only argument: it must stop, not loop."""
    proc = _hop(["/bin/true"], message=b"exec: ")
    assert proc.returncode == 126
    assert proc.stderr == b"exec: invalid argument\n"


def test_the_memfd_cannot_be_changed() -> None:
    fd = trampoline.sealed_memfd(trampoline.build())
    try:
        with pytest.raises(PermissionError):
            os.write(fd, b"x")
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 0)
        again = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
        try:
            with pytest.raises(PermissionError):
                os.write(again, b"x")
        finally:
            os.close(again)
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)


def test_sealed_imports_find_only_builtin_modules() -> None:
    code = (
        "import sys\n"
        "from capsa.runtime import entering\n"
        "entering.seal_imports()\n"
        "import posix, errno\n"  # built in
        "try:\n"
        "    import wave\n"
        "except ImportError:\n"
        "    print('refused')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "refused\n"
