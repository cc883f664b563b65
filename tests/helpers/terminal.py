"""Terminals for runtime tests: a console socket, a process on a pty, reading a master.

A pty master is read with ``select`` and a deadline; EOF (or EIO, which Linux returns
once every slave fd is closed) ends a read.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import socket
import struct
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class MasterReader:
    """Everything read so far from a pty master, and waits for more."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = b""
        self.eof = False

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    def write(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def _read_some(self, deadline: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the last slave fd is closed
            chunk = b""
        self.data += chunk
        self.eof = not chunk

    def seen(self, needle: str, timeout: float) -> bool:
        """Read until ``needle`` has appeared; False at EOF or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if self.eof or time.monotonic() > deadline:
                return False
            self._read_some(deadline)
        return True

    def read_until(self, needle: str, timeout: float = 10) -> str:
        """Read until ``needle`` has appeared; fail the test at EOF or on timeout."""
        if not self.seen(needle, timeout):
            pytest.fail(f"no {needle!r} on the terminal; it showed {self.text!r}")
        return self.text

    def read_to_eof(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() > deadline:
                pytest.fail(f"terminal still open after {timeout}s; it showed {self.text!r}")
            self._read_some(deadline)
        return self.text


@contextlib.contextmanager
def console_socket(path: Path) -> Iterator[socket.socket]:
    """A listening unix socket for ``--console-socket``."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        server.listen(1)
        server.settimeout(10)
        yield server
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def receive_pty_master(server: socket.socket) -> int:
    """Accept the runtime's connection and take the pty master it sends (SCM_RIGHTS)."""
    conn, _ = server.accept()
    with conn:
        conn.settimeout(10)
        _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    assert len(fds) == 1, "the runtime sent no pty master"
    return fds[0]


class PtyProcess:
    """``argv`` run as a session leader on a new pty whose window is ``rows`` x ``cols``."""

    def __init__(self, argv: list[str], rows: int, cols: int) -> None:
        pid, master = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                set_winsize(0, rows, cols)
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        self.pid = pid
        self.term = MasterReader(master)
        self.code: int | None = None

    def wait(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while self.code is None:
            got, status = os.waitpid(self.pid, os.WNOHANG)
            if got:
                self.code = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                pytest.fail(f"{self.pid} still runs after {timeout}s: {self.term.text!r}")
            else:
                time.sleep(0.02)
        return self.code

    def close(self) -> None:
        """Kill the process if it still runs, reap it and close the master."""
        if self.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)
            _, status = os.waitpid(self.pid, 0)
            self.code = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            os.close(self.term.fd)


@contextlib.contextmanager
def adopting_orphans() -> Iterator[None]:
    """Make this process a child subreaper for the block: a container init whose
    runtime exits meanwhile becomes our child, so its exit status can be waited for."""
    from capsa.linux import syscalls as sc

    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 0)


def reap(pid: int, timeout: float = 10) -> int | None:
    """Wait for our child ``pid``; its exit code, or None if it still runs at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
