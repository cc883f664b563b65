"""The database keeper: a child of the monitor host holding the served roots' SQLite
databases open (``capsa.store.db.Pins``), so that commands and monitors closing theirs
skip SQLite's checkpoint and WAL removal on last close.

Not the host itself: SQLite's per-process state (its list of open files, the WAL index
mapping) must not be inherited by a fork, and the host forks every monitor and warm
command. The keeper reads root paths, one a line, until the host closes the pipe: the
host starts it with the first container it is asked to start and closes it when it
drops its warm-start modules (``capsa.engine.monitor.sleep``), so it lives while
commands come, not while containers idle.
"""

from __future__ import annotations

import os


class DatabaseKeeper:
    def __init__(self) -> None:
        read, self._write = os.pipe2(os.O_CLOEXEC)
        self.pid = os.fork()
        if self.pid == 0:
            _keep_databases(read)
        os.close(read)

    def keep(self, root: str) -> None:
        try:
            os.write(self._write, os.fsencode(root) + b"\n")
        except OSError:
            pass  # the keeper died: commands just pay for their checkpoints

    def close(self, reaped: bool = False) -> None:
        os.close(self._write)
        if not reaped:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


def _keep_databases(pipe: int) -> None:
    code = 1
    try:
        from capsa.engine.monitor.loop import Waker
        from capsa.linux.fds import close_all_except
        from capsa.linux.proc import set_title
        from capsa.store.db import Pins

        Waker.forget()
        close_all_except((pipe,))
        set_title("capsa-monitor databases")
        pins = Pins()
        with open(pipe, "rb") as lines:
            for line in lines:
                pins.pin(os.fsdecode(line.rstrip(b"\n")))
        pins.close()
        code = 0
    finally:
        os._exit(code)
