"""The client end of a monitor's attach socket: relay our terminal or pipes.

With ``-t`` our terminal goes raw, its size follows SIGWINCH, and Ctrl-P Ctrl-Q
(the detach keys) leaves the container running. Returns the container's exit code
when the monitor reports it, or None after a detach.
"""

from __future__ import annotations

import os
import select
import signal
import sys

from capsa.engine.containers import attach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsa.engine.containers.attach import AttachStream

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
_OUTGOING_MAX = 1 << 20  # input held for the monitor before we stop reading ours
# what --sig-proxy passes on to the container (Docker's set, less the ones that are ours:
# SIGCHLD, SIGWINCH, SIGPIPE, SIGURG; SIGKILL and SIGSTOP cannot be caught)
PROXIED_SIGNALS = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGCONT,
)


def _window(fd: int) -> tuple[int, int] | None:
    from capsa.ptyio import get_winsize

    try:
        rows, cols = get_winsize(fd)
    except OSError:
        return None
    return rows, cols


class AttachSession:
    def __init__(
        self,
        stream: AttachStream,
        *,
        tty: bool,
        stdin: bool,
        detach_keys: bytes = DETACH_KEYS,
        proxy: Callable[[int], None] | None = None,
    ):
        """``proxy``: called with each signal this process receives while attached (the
        caller sends it to the container: ``--sig-proxy``)."""
        self.stream = stream
        self.sock = stream.fd
        self.proxy = proxy
        self._signals: list[int] = []
        self.tty = tty
        self.stdin = stdin
        self.detach_keys = detach_keys
        self.exit_code: int | None = None
        self.error = ""
        self._pending = b""

    def hello(self) -> None:
        """Say which streams we want, and our terminal's size: the monitor sets it on
        the container's pty before the program starts."""
        size = _window(0) if self.tty and os.isatty(0) else None
        self.stream.hello(self.stdin, size=size)

    def run(self) -> int | None:
        saved = None
        if self.tty and self.stdin and os.isatty(0):
            import termios
            import tty

            saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # keep what was typed before (no flush)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: None)
        old_proxied = {}
        if self.proxy is not None:
            for sig in PROXIED_SIGNALS:
                old_proxied[sig] = signal.signal(sig, lambda n, _: self._signals.append(n))
        try:
            return self._loop(wake_r)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            signal.signal(signal.SIGWINCH, old_winch)
            for sig, handler in old_proxied.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            if saved is not None:
                import termios

                termios.tcsetattr(0, termios.TCSADRAIN, saved)

    def _loop(self, wake_r: int) -> int | None:
        # the socket never blocks us: input waits in the stream's buffer while the
        # monitor is busy, and our stdin is read only while that buffer is small, so
        # we always read the output the monitor is waiting to give us
        os.set_blocking(self.sock, False)
        stdin_open = self.stdin
        while True:
            reads = [self.sock, wake_r]
            if stdin_open and len(self.stream.outgoing) < _OUTGOING_MAX:
                reads.append(0)
            writes = [self.sock] if self.stream.outgoing else []
            try:
                ready, room, _ = select.select(reads, writes, [])
            except InterruptedError:
                continue
            if room:
                self.stream.flush()
            if wake_r in ready:
                os.read(wake_r, 512)
                self._pass_signals()
                if self.tty and os.isatty(0):
                    size = _window(0)
                    if size:
                        self.stream.resize(*size)
            if 0 in ready and not self._from_stdin():
                if self.exit_code is None and self._detached:
                    return None
                stdin_open = False
            if self.sock in ready and not self._from_monitor():
                return self.exit_code

    _detached = False

    def _pass_signals(self) -> None:
        while self._signals and self.proxy is not None:
            self.proxy(self._signals.pop(0))

    def _from_stdin(self) -> bool:
        data = os.read(0, 65536)
        if not data:
            self.stream.close_stdin()
            return False
        if self.tty and self.detach_keys:
            data = self._pending + data
            if self.detach_keys in data:
                before = data[: data.index(self.detach_keys)]
                if before:
                    self.stream.send(before)
                self._detached = True
                return False
            keep = 1 if data.endswith(self.detach_keys[:1]) else 0
            self._pending = data[len(data) - keep :] if keep else b""
            data = data[: len(data) - keep] if keep else data
        if data:
            self.stream.send(data)
        return True

    def _from_monitor(self) -> bool:
        try:
            data = os.read(self.sock, 65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            return False
        for kind, payload in self.stream.feed(data):
            if kind == attach.STDOUT:
                _write(sys.stdout.buffer, payload)
            elif kind == attach.STDERR:
                _write(sys.stderr.buffer, payload)
            elif kind == attach.ERROR:
                self.error = payload.decode(errors="replace")
            elif kind == attach.EXIT:
                self.exit_code = self.stream.exit_code(payload)
        return True


def _write(stream: object, data: bytes) -> None:
    try:
        stream.write(data)  # type: ignore[attr-defined]
        stream.flush()  # type: ignore[attr-defined]
    except BrokenPipeError:
        pass
