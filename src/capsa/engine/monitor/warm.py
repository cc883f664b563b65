"""Warm starts: the monitor host forks a command with its modules already imported.

A cold ``capsa ps`` spends about 60 ms starting the interpreter and importing click and
the engine before any work, against ``podman ps``'s 100 ms in all. While containers run,
their run root's monitor host (``capsa.engine.monitor.host``) is up with those modules
imported, so a command asks the host to fork it instead (``capsa.cli.entry``): the child
takes over the command's standard streams, working directory, environment, umask and
arguments, runs the frontend's ``main()`` and exits; the asking process relays signals
to it and exits with its status. The child is then the same command as a cold start
would be, down to its exit code: only where it was forked from differs.

The child leaves the host's session and signal handlers, gets the open-files limit a
cold start would have, and keeps no fd of the host. It never returns into the host's
code: it ends with ``os._exit``.
"""

from __future__ import annotations

import os
import sys

from capsa.engine.monitor.warm_wire import FDS, Request
from capsa.fastexit import exit_now

# what Python itself does with these at start-up; a host may have changed any of them
_DEFAULT_SIGNALS = ("SIGHUP", "SIGQUIT", "SIGWINCH", "SIGUSR1", "SIGUSR2")
_IGNORED_SIGNALS = ("SIGPIPE", "SIGXFSZ")


# what the everyday commands import of the engine on first use (``ps``, ``run``, ``exec``,
# ``logs``, ``inspect``, ``stop``, ``rm``...): a warm host imports them once for all
_PRELOAD = (
    "capsa.engine.local",
    "capsa.engine.containers.service",
    "capsa.engine.containers.views",
    "capsa.engine.containers.launch",
    "capsa.engine.containers.execs",
    "capsa.engine.system.filters",
    "capsa.engine.containers.log_reader",
    "capsa.engine.containers.logs",
    "capsa.engine.containers.removal",
    "capsa.engine.containers.restore",  # ps and inspect of a running container (observe)
    "capsa.engine.containers.specgen",
    "capsa.engine.containers.stats",
    "capsa.engine.containers.netwire",
    "capsa.engine.network.service",
    "capsa.runtime.container",
    "capsa.runtime.exec",
)


def preload() -> None:
    """Import what the engine's verbs import lazily (see ``_PRELOAD``)."""
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)


def package_dir() -> str:
    import capsa

    return os.path.dirname(os.path.abspath(capsa.__file__))


def refusal(request: Request, fds: list[int], peer_uid: int) -> str | None:
    """Why this host will not fork ``request`` (the command then starts cold), if so."""
    if peer_uid != os.geteuid():
        return "another user"
    if len(fds) != FDS:
        return "bad fds"
    if not request.entry.startswith("capsa."):
        return "not a capsa entry point"
    if request.package != package_dir() or request.executable != sys.executable:
        return "another installation"  # the host would run different code
    return None


def code_stamps() -> dict[str, int]:
    """The modification times of capsa's modules loaded here (see ``code_changed``)."""
    stamps = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and (name == "capsa" or name.startswith("capsa.")):
            try:
                stamps[path] = os.stat(path).st_mtime_ns
            except OSError:
                pass
    return stamps


def code_changed(stamps: dict[str, int]) -> bool:
    """Whether capsa was upgraded (or edited) since ``stamps``: a host that imported the
    old code must not run new commands with it. About 0.3 ms for 200 modules."""
    for path, stamp in stamps.items():
        try:
            if os.stat(path).st_mtime_ns != stamp:
                return True
        except OSError:
            return True
    return False


def fork(request: Request, fds: list[int], nofile: tuple[int, int] | None) -> int:
    """Fork the command of ``request``; ``fds`` are its stdin, stdout, stderr and working
    directory. Returns the child's pid; the caller closes ``fds``."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing of the host's may reach the command's streams
    pid = os.fork()
    if pid == 0:
        _run(request, fds, nofile)
    return pid


def warm(entry: str) -> None:
    """Import ``entry`` and what its ``warm()`` names, in the host, for the next fork."""
    import importlib

    module = importlib.import_module(entry)
    hook = getattr(module, "warm", None)
    if hook is not None:
        hook()


def _run(request: Request, fds: list[int], nofile: tuple[int, int] | None) -> None:
    code = 125
    try:
        _become(request, fds, nofile)
        import importlib

        importlib.import_module(request.entry).main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        exit_now(code)


def _become(request: Request, fds: list[int], nofile: tuple[int, int] | None) -> None:
    """Turn the freshly forked child of the host into the asking command's process."""
    import resource
    import signal

    from capsa.engine.monitor.loop import Waker
    from capsa.linux.fds import close_all_except
    from capsa.linux.proc import set_title

    os.setsid()
    Waker.forget()
    for name in _DEFAULT_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    for name in _IGNORED_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    if nofile is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)  # inheritable: what the command runs gets them, as usual
    os.fchdir(fds[3])
    close_all_except()
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.env)
    sys.argv = list(request.argv)
    _reopen_streams(request.encoding)
    set_title(_title(request.argv))


def _title(argv: list[str]) -> str:
    """The process title of the command: its arguments as ``ps`` can show them (bytes that
    are not UTF-8 come as surrogate escapes, which a title cannot hold)."""
    title = " ".join(["capsa", *argv[1:]])
    return title.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _reopen_streams(encoding: str) -> None:
    """New ``sys.std*`` objects over fds 0-2: the host's ones buffer for its log and
    decided line buffering for it (a terminal of the command gets it line-buffered)."""
    enc = encoding or "utf-8"
    sys.stdin = open(0, encoding=enc, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding=enc, closefd=False)  # noqa: SIM115
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding=enc, errors="backslashreplace", closefd=False
    )
    sys.stderr.reconfigure(line_buffering=True)
