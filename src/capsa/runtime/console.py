"""Terminals: the container's pty, the console socket, and a proxy for `run -t`."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import struct
import termios
import tty

from capsa.errors import InvalidArgument, os_reason


def connect_console_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise InvalidArgument(f"cannot connect to console socket {path}: {os_reason(e)}") from None
    return sock


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    raw = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    rows, cols, _, _ = struct.unpack("HHHH", raw)
    return rows, cols


def setup_container_tty(sock: socket.socket, size: tuple[int, int] | None) -> None:
    """In the container: make a pty, hand its master to the socket, take the slave as stdio."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    if size and size[0] and size[1]:
        set_winsize(slave, *size)
    name = os.ttyname(slave)
    socket.send_fds(sock, [name.encode()], [master])
    os.close(master)
    sock.close()
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def receive_master(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise InvalidArgument("the container did not send its terminal")
    return fds[0]


def proxy(master: int, stop: list[bool]) -> None:
    """Copy stdin -> master and master -> stdout until the pty closes or ``stop[0]``."""
    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    if stdin_tty:
        tty.setraw(0, termios.TCSANOW)  # keep what was typed before (no flush)
        _resize(master)
    fds = [master, 0]
    try:
        while not stop[0]:
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except InterruptedError:
                continue
            if master in ready and not _pump(master, 1):
                break
            if 0 in ready and not _pump(0, master):
                fds.remove(0)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def follow_window_size(master: int) -> None:
    """Resize the container's pty with ours (call from the main thread)."""
    if os.isatty(0):
        signal.signal(signal.SIGWINCH, lambda *_: _resize(master))


def _pump(src: int, dst: int) -> bool:
    try:
        data = os.read(src, 65536)
    except OSError:
        return False
    if not data:
        return False
    while data:
        n = os.write(dst, data)
        data = data[n:]
    return True


def _resize(master: int) -> None:
    try:
        set_winsize(master, *get_winsize(0))
    except OSError:
        pass
