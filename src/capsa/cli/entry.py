"""The ``capsa`` command's entry point: start warm when the run root's monitor host is up.

While containers run (and for ``monitor_linger`` seconds after), a monitor host serves
the run root with the engine and the command line imported; this process then has it
fork the command (``capsa.engine.monitor.warm``) and only relays signals and the exit status:
``capsa ps`` takes a fraction of a cold start. Otherwise, with ``CAPSA_WARM=0``, for a
host of another installation or user, with a service given (``--host``/``-H``,
``CAPSA_HOST``: the command is that service's client, the local host has no part in it),
and for ``login`` (which reads a password from the controlling terminal), the command
runs here, cold (``capsa.cli.command``: ``ps``,
``images`` and ``volume ls`` without click, the others through click).

Every command pays for this module first: it imports only builtins and ``_socket`` (not
``json``, ``re``, ``enum`` or click), and ``_signal`` only once a command runs warm.
"""

from __future__ import annotations

import _socket  # not ``socket``: that imports enum, selectors and functools (3 ms here)
import os
import sys

from capsa.engine.monitor import warm_wire

ENTRY = "capsa.cli.command"  # what the host's fork runs: capsa.cli.command.main
_COLD_COMMANDS = frozenset({"login"})  # prompts for a password on /dev/tty
_GLOBAL_WITH_VALUE = frozenset({"--root", "--runroot", "--config", "--host"})
_RELAYED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGWINCH", "SIGUSR1", "SIGUSR2")


def main() -> None:
    status = None
    if os.environ.get("CAPSA_WARM", "1") != "0":
        status = warm_start(sys.argv)
    if status is None:
        from capsa.cli.command import main as cold

        cold()  # exits
    from capsa.fastexit import exit_now

    exit_now(status or 0)


def warm_start(argv: list[str]) -> int | None:
    """Run the command forked from a monitor host; its exit status, or None when no
    host would run it (nothing has started then: the caller runs it cold)."""
    path = _socket_path(argv)
    if path is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(path)
        except OSError:  # no host, or one asleep: wake it for the next command, not this
            warm_wire.wake(path, ENTRY)
            return None
        try:
            _send(sock, _request(argv))
            pid = warm_wire.parse_reply(sock.recv(256), b"pid")
        except OSError:  # a host going away, a closed stdin...
            return None
        if pid is None:
            return None
        return _relay(sock, pid)
    finally:
        sock.close()


def _socket_path(argv: list[str]) -> str | None:
    """The monitor host socket of the run root the command would use, if it can be
    forwarded at all (not with a service given: ``--host``, ``-H``, ``CAPSA_HOST``)."""
    flags: dict[str, str] = {}
    args = iter(argv[1:])
    for arg in args:
        if not arg.startswith("-"):
            if arg in _COLD_COMMANDS:
                return None
            break
        name, sep, value = arg.partition("=") if arg.startswith("--") else _short(arg)
        if name in _GLOBAL_WITH_VALUE:
            flags[name] = value if sep else next(args, "")
    if flags["--host"] if "--host" in flags else os.environ.get("CAPSA_HOST"):
        return None  # that service's client: cold, as the local host has no part in it
    from capsa import config
    from capsa.errors import CapsaError

    try:
        settings = config.load(
            root=flags.get("--root") or None,
            runroot=flags.get("--runroot") or None,
            config=flags.get("--config") or None,
            env=os.environ,
        )
    except CapsaError:  # the cold start reports it
        return None
    return os.path.join(settings.runroot, warm_wire.SOCKET_NAME)


def _short(arg: str) -> tuple[str, str, str]:
    """Short global options, run together as click reads them (``-D`` a flag, ``-H``
    taking the rest or the next argument: ``-H X``, ``-HX``, ``-DH X``): as
    ``(name, sep, value)``, ``--host`` for ``-H``."""
    letters = arg[1:].lstrip("D")
    if letters.startswith("H"):
        rest = letters[1:]
        return "--host", "=" if rest else "", rest
    return arg, "", ""


def _request(argv: list[str]) -> bytes:
    import capsa

    umask = os.umask(0o022)
    os.umask(umask)
    return warm_wire.Request(
        entry=ENTRY,
        package=os.path.dirname(os.path.abspath(capsa.__file__)),
        executable=sys.executable,
        umask=umask,
        encoding=sys.stdout.encoding if sys.stdout else "utf-8",
        argv=list(argv),
        env=dict(os.environ),
    ).encode()


def _send(sock: _socket.socket, message: bytes) -> None:
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))
        sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    finally:
        os.close(cwd)


def _relay(sock: _socket.socket, pid: int) -> int:
    """Pass our signals on to the command until the host reports its exit status."""
    import _signal  # not ``signal``: it builds enums (enum, functools...: ~4 ms here)

    from capsa.signames import forward_to

    forward_to(pid, [getattr(_signal, name) for name in _RELAYED])
    try:
        status = warm_wire.parse_reply(sock.recv(256), b"status")
    except OSError:
        status = None
    if status is None:
        sys.stderr.write("Error: the monitor host running this command went away\n")
        return 125
    if os.WIFSIGNALED(status):  # die the same way, as a cold start would have
        sig = os.WTERMSIG(status)
        _signal.signal(sig, _signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.waitstatus_to_exitcode(status)
