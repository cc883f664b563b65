"""A terminal in front of a container's pty: the window size, and a proxy that copies
between this process's terminal (fds 0 and 1) and the pty's master.

Shared by ``capsa-runtime`` (``run -t``, ``exec -t``) and the frontends that pump an
exec's or a container's pty (the CLI): pure ``os``/``termios`` work, no kernel seam.
"""

from __future__ import annotations

import os

# imports are made where they are needed: ``capsa-runtime run`` without a terminal
# uses ``foreground`` only, and the ``signal`` module alone costs it half a millisecond
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def set_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    import fcntl
    import struct
    import termios

    raw = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    rows, cols, _, _ = struct.unpack("HHHH", raw)
    return rows, cols


def proxy(master: int, stop: list[bool]) -> None:
    """Copy stdin -> master and master -> stdout until the pty closes or ``stop[0]``."""
    import select
    import termios
    import tty

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
        import _signal

        _signal.signal(_signal.SIGWINCH, lambda *_: _resize(master))


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


# what a foreground process's terminal side passes on (Docker's CLI proxies the same)
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT")


def foreground(master: int, wait: Callable[[], int], forward: Callable[[int], None]) -> int:
    """Be a foreground process's terminal: pass our signals on with ``forward``, copy
    between our terminal and its pty's ``master`` (-1: none), resize it with ours, and
    return ``wait()`` (its exit code) once the copying has drained."""
    import _signal  # not ``signal``: its enums cost a cold command milliseconds

    numbers = [getattr(_signal, name) for name in FORWARDED]
    for signum in numbers:
        _signal.signal(signum, lambda n, _frame: forward(n))
    stop = [False]
    proxy_thread = None
    if master >= 0:
        import threading

        follow_window_size(master)
        proxy_thread = threading.Thread(target=proxy, args=(master, stop), daemon=True)
        proxy_thread.start()
    try:
        return wait()
    finally:
        if proxy_thread is not None:
            proxy_thread.join(timeout=2)  # drain what the process wrote before it exited
            stop[0] = True
            proxy_thread.join(timeout=1)
        for signum in numbers:
            _signal.signal(signum, _signal.SIG_DFL)
