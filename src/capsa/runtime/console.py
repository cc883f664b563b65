"""Terminals: the container's pty and the console socket (the proxy for `run -t` and
the window size are ``capsa.ptyio``'s, which frontends share)."""

from __future__ import annotations

import fcntl
import os
import socket
import termios

from capsa.errors import InvalidArgument, os_reason
from capsa.ptyio import set_winsize


def connect_console_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise InvalidArgument(f"cannot connect to console socket {path}: {os_reason(e)}") from None
    return sock


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
