"""capsa.linux.libc: calls by name, errno, unsigned long and buffer arguments."""

from __future__ import annotations

import errno
import os
import sys

import pytest

from capsa.linux import libc


def test_call_returns_the_result() -> None:
    assert libc.call("getpid") == os.getpid()


def test_a_failed_call_raises_its_errno() -> None:
    with pytest.raises(OSError) as err:
        libc.call("setns", 987654, 0)  # no such fd
    assert err.value.errno == errno.EBADF


def test_buffers_carry_what_the_callee_writes() -> None:
    pipe_fds = bytearray(8)  # int[2]
    libc.call("pipe2", libc.buffer(pipe_fds), os.O_CLOEXEC)
    r = int.from_bytes(pipe_fds[:4], sys.byteorder)
    w = int.from_bytes(pipe_fds[4:], sys.byteorder)
    try:
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"
    finally:
        os.close(r)
        os.close(w)


def test_unsigned_long_arguments_keep_all_64_bits() -> None:
    # PR_GET_NO_NEW_PRIVS rejects any non-zero argument: a high bit must arrive intact
    with pytest.raises(OSError) as err:
        libc.call("prctl", 39, libc.ulong(1 << 40), libc.ulong(0), libc.ulong(0), libc.ulong(0))
    assert err.value.errno == errno.EINVAL
    assert libc.call("prctl", 39, libc.ulong(0), libc.ulong(0), libc.ulong(0), libc.ulong(0)) in (
        0,
        1,
    )
