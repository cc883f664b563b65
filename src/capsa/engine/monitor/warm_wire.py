"""The warm-start messages between a command and the monitor host (both sides).

A command (``capsa ps``...) asks the run root's monitor host to fork it with
everything already imported (see ``capsa.engine.monitor.warm``). The messages are NUL-separated
fields on the host's ``SOCK_SEQPACKET`` socket, not JSON: the asking side is the start
of every command, and importing ``json`` (with ``re`` and ``enum``) would cost it more
than the rest of the exchange.

- command -> host: ``MAGIC``, then the fields of a ``Request`` in order (the argv and
  environment as counted lists), with ``SCM_RIGHTS`` fds: stdin, stdout, stderr and the
  working directory (``O_PATH``).
- host -> command: ``b"pid N"`` once the command is forked (or ``b"no REASON"`` when
  the host will not fork it: the command then starts cold), later ``b"status N"``, N the
  wait status of the command's process.

A host asleep (``capsa.engine.monitor.sleep``) renames its socket to ``SOCKET_NAME +
ASLEEP``: a command does not wait for it to wake up but starts cold at once, and
``wake``s it (``WAKE``, then the entry module, with no reply) so that the next command
finds it awake with the entry imported.
"""

from __future__ import annotations

import os

from capsa.record import record

SOCKET_NAME = "monitor-host.sock"  # in the run root
ASLEEP = ".asleep"  # added to the socket's name while its host sleeps
MAGIC = b"capsa-command/1"
WAKE = b"capsa-wake/1"
FDS = 4  # stdin, stdout, stderr, working directory


class WireError(ValueError):
    """A message that is not a warm-start message."""


@record
class Request:
    entry: str  # the module whose ``main()`` runs the command
    package: str  # the capsa package directory of the asking side: the host's must match
    executable: str
    umask: int
    encoding: str  # of the asking side's standard streams
    argv: list[str]
    env: dict[str, str]

    def encode(self) -> bytes:
        fields = [
            MAGIC,
            *(os.fsencode(s) for s in (self.entry, self.package, self.executable)),
            b"%d" % self.umask,
            self.encoding.encode(),
            b"%d" % len(self.argv),
            *(os.fsencode(a) for a in self.argv),
            *(os.fsencode(k) + b"=" + os.fsencode(v) for k, v in self.env.items()),
        ]
        return b"\0".join(fields)

    @classmethod
    def decode(cls, data: bytes) -> Request:
        fields = data.split(b"\0")
        if fields[0] != MAGIC or len(fields) < 7:
            raise WireError("not a warm-start request")
        try:
            umask, count = int(fields[4]), int(fields[6])
        except ValueError:
            raise WireError("bad warm-start request") from None
        argv = fields[7 : 7 + count]
        if len(argv) != count:
            raise WireError("bad warm-start request")
        env = {}
        for item in fields[7 + count :]:
            key, sep, value = item.partition(b"=")
            if sep:
                env[os.fsdecode(key)] = os.fsdecode(value)
        entry, package, executable = (os.fsdecode(f) for f in fields[1:4])
        return cls(
            entry=entry,
            package=package,
            executable=executable,
            umask=umask,
            encoding=fields[5].decode(),
            argv=[os.fsdecode(a) for a in argv],
            env=env,
        )


def is_request(data: bytes) -> bool:
    return data.startswith(MAGIC + b"\0")


def started(pid: int) -> bytes:
    return b"pid %d" % pid


def declined(reason: str) -> bytes:
    return b"no " + reason.encode()


def finished(status: int) -> bytes:
    return b"status %d" % status


def parse_reply(data: bytes, word: bytes) -> int | None:
    """N of a ``WORD N`` reply; None for anything else (a refusal, a closed socket)."""
    head, _, number = data.partition(b" ")
    if head != word:
        return None
    try:
        return int(number)
    except ValueError:
        return None


def wake(path: str, entry: str) -> None:
    """Wake the host asleep behind ``path`` (the socket's usual name) and have it import
    ``entry``, for the commands to come; does not wait, and nothing if none sleeps."""
    import _socket

    kind = _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK
    sock = _socket.socket(_socket.AF_UNIX, kind)
    try:
        sock.connect(path + ASLEEP)
        sock.send(WAKE + b"\0" + os.fsencode(entry))
    except OSError:
        pass
    finally:
        sock.close()


def wake_entry(data: bytes) -> str | None:
    """The entry module of a ``wake`` message; None if ``data`` is none."""
    head, sep, entry = data.partition(b"\0")
    if head != WAKE or not sep:
        return None
    return os.fsdecode(entry)
