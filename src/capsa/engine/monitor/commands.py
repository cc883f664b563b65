"""The warm-start commands a monitor host forked, each with the process that asked.

The host forks a command for a ``capsa`` process that asks on its socket
(``capsa.engine.monitor.warm``), answers with the command's pid, and once it has reaped the
command sends its wait status on the same connection. If the asking process goes away
first (killed), the command goes with it, as a cold command would have: the host kills
it, and still reaps it.
"""

from __future__ import annotations

import os
import socket

from capsa.engine.monitor.warm_wire import Request, WireError, declined, finished, started


class WarmCommands:
    def __init__(self) -> None:
        self.askers: dict[int, socket.socket | None] = {}  # command pid -> who asked

    def __bool__(self) -> bool:
        return bool(self.askers)

    def __contains__(self, pid: int) -> bool:
        return pid in self.askers

    def watched(self) -> dict[int, int]:
        """The askers' connections to watch (a hang-up: gone): fd -> command pid."""
        return {conn.fileno(): pid for pid, conn in self.askers.items() if conn is not None}

    def start(
        self,
        conn: socket.socket,
        data: bytes,
        fds: list[int],
        nofile: tuple[int, int] | None,
        code: dict[str, int],
    ) -> str | None:
        """Fork the command ``conn`` asks for (``fds``: its streams and working directory,
        closed here); its entry module (for the host to import for the next one), or
        None when the host declined (the asking process then starts it cold)."""
        from capsa.engine.monitor import warm

        try:
            request = Request.decode(data)
            reason = warm.refusal(request, fds, _peer_uid(conn))
            if reason is None and warm.code_changed(code):
                reason = "capsa changed since this host started"
            pid = warm.fork(request, fds, nofile) if reason is None else None
        except (WireError, OSError) as e:
            reason, pid = str(e) or type(e).__name__, None
        finally:
            for fd in fds:
                os.close(fd)
        if pid is None:
            with conn:
                _send_quietly(conn, declined(reason or "refused"))
            return None
        self.askers[pid] = conn
        if not _send_quietly(conn, started(pid)):
            self.asker_gone(pid)
        return request.entry

    def asker_gone(self, pid: int) -> None:
        """The asking process went away: its command goes with it."""
        conn = self.askers.get(pid)
        if conn is not None:
            conn.close()
            self.askers[pid] = None
        import signal

        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def done(self, pid: int, status: int) -> None:
        """The command was reaped: its status to whoever asked."""
        conn = self.askers.pop(pid)
        if conn is not None:
            with conn:
                _send_quietly(conn, finished(status))


def _peer_uid(conn: socket.socket) -> int:
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _send_quietly(conn: socket.socket, message: bytes) -> bool:
    try:
        conn.send(message)
    except OSError:
        return False
    return True
