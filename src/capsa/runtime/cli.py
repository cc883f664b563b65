"""``capsa-runtime``: runc's command line over ``capsa.runtime``.

Thin on purpose: parse, call ``Runtime``, print. Errors become one line (on stderr,
or in the ``--log`` file and on stderr) with runc's exit status: 1, or 255 for ``exec``.
No input gives a traceback; ``--debug`` logs one when a bug is hit.
"""

# ruff: noqa: E402 - the clock starts before the imports it measures

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import os
import sys

from capsa.errors import CapsaError, InvalidArgument, os_reason
from capsa.runtime import trace
from capsa.runtime.argv import APPEND, BOOL, INT, Flag, Verb, parse
from capsa.runtime.log import RuntimeLog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def default_root() -> str:
    if os.geteuid() == 0:
        return "/run/capsa-runtime"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/capsa-runtime-{os.geteuid()}"
    return os.path.join(base, "capsa-runtime")


def _create_flags(run: bool) -> list[Flag]:
    flags = [
        Flag(("-b", "--bundle"), default=".", help="the bundle directory"),
        Flag(("--console-socket",), help="send the pty master to this unix socket"),
        Flag(("--pid-file",), help="write the init's pid here"),
        Flag(("--no-pivot",), BOOL, help="use MS_MOVE and chroot instead of pivot_root"),
        Flag(("--no-new-keyring",), BOOL, help="accepted for runc compatibility"),
        Flag(("--preserve-fds",), INT, 0, help="pass N extra fds (3...) to the container"),
    ]
    if run:
        flags += [
            Flag(("-d", "--detach"), BOOL, help="do not wait for the container"),
            Flag(("--keep",), BOOL, help="do not delete the container after it exits"),
        ]
    return flags


GLOBAL_FLAGS = [
    Flag(("--root",), help="state directory (default /run/capsa-runtime)"),
    Flag(("--log",), help="log file"),
    Flag(("--log-format",), default="text", help="text or json"),
    Flag(("--debug",), BOOL, help="debug output"),
    Flag(("--systemd-cgroup",), BOOL, help="accepted for runc compatibility"),
    Flag(("--rootless",), default="auto", help="accepted for runc compatibility"),
    Flag(("--criu",), help="accepted for runc compatibility"),
    Flag(("-v", "--version"), BOOL, help="print the version"),
    Flag(("-h", "--help"), BOOL, help="show this help"),
]

_UPDATE_FLAGS = (
    "memory",
    "memory-swap",
    "memory-reservation",
    "kernel-memory",
    "kernel-memory-tcp",
    "cpu-period",
    "cpu-quota",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "cpuset-cpus",
    "cpuset-mems",
    "pids-limit",
    "blkio-weight",
    "l3-cache-schema",
    "mem-bw-schema",
)

VERBS = [
    Verb(
        "spec",
        "write a default config.json",
        [Flag(("-b", "--bundle"), default="."), Flag(("--rootless",), BOOL)],
    ),
    Verb("create", "create a container; its init waits for start", _create_flags(False), ("id",)),
    Verb("run", "create and start a container, and wait for it", _create_flags(True), ("id",)),
    Verb("start", "start a created container", positionals=("id",)),
    Verb("state", "print the OCI state of a container", positionals=("id",)),
    Verb("pause", "freeze every process of a container", positionals=("id",)),
    Verb("resume", "thaw a paused container", positionals=("id",)),
    Verb(
        "kill",
        "send a signal to the container's init (default SIGTERM)",
        [Flag(("-a", "--all"), BOOL, help="signal every process")],
        ("id",),
        (("signal", "SIGTERM"),),
    ),
    Verb(
        "delete",
        "delete a container and everything it holds",
        [Flag(("-f", "--force"), BOOL, help="kill it first if it runs")],
        ("id",),
    ),
    Verb(
        "list",
        "list containers",
        [
            Flag(("-f", "--format"), default="table", help="table or json"),
            Flag(("-q", "--quiet"), BOOL, help="ids only"),
        ],
    ),
    Verb(
        "ps",
        "processes running in a container",
        [Flag(("-f", "--format"), default="table", help="table or json")],
        ("id",),
        rest="ps_args",
    ),
    Verb(
        "events",
        "stats and OOM events of a container",
        [
            Flag(("--stats",), BOOL, help="print stats once"),
            Flag(("--interval",), default="5s", help="stats interval"),
        ],
        ("id",),
    ),
    Verb(
        "update",
        "change the resource limits of a container",
        [Flag(("-r", "--resources"), help="a JSON file of linux.resources ('-' for stdin)")]
        + [Flag((f"--{name}",)) for name in _UPDATE_FLAGS]
        + [Flag(("--cpu-shares", "--cpu-share"), help="runc spells it --cpu-share")],
        ("id",),
    ),
    Verb(
        "exec",
        "run another process in a container",
        [
            Flag(("--console-socket",)),
            Flag(("--cwd",)),
            Flag(("-e", "--env"), APPEND),
            Flag(("-t", "--tty"), BOOL),
            Flag(("-u", "--user"), help="uid[:gid]"),
            Flag(("-g", "--additional-gids"), APPEND),
            Flag(("-p", "--process"), help="a JSON process spec"),
            Flag(("-d", "--detach"), BOOL),
            Flag(("--pid-file",)),
            Flag(("--process-label",)),
            Flag(("--apparmor",)),
            Flag(("--no-new-privs",), BOOL),
            Flag(("-c", "--cap"), APPEND),
            Flag(("--preserve-fds",), INT, 0),
            Flag(("--ignore-paused",), BOOL),
            Flag(
                ("--cgroup",),
                APPEND,
                help="[CONTROLLER[,...]:]PATH: an existing sub-cgroup of the container's",
            ),
        ],
        ("id",),
        rest="command",
    ),
    Verb("features", "what this runtime supports"),
]


def entry() -> None:
    """The ``capsa-runtime`` command: ``main``, then exit without the interpreter's
    teardown (a few ms of a runtime benchmarked against runc).

    The cyclic garbage collector is off: its passes over the objects of freshly
    imported modules cost 0.5-1 ms of a run, start-up makes no cycles worth collecting,
    and reference counting frees everything else. Verbs that stay (``run`` waiting for
    its container, ``events``) turn it back on."""
    import gc

    from capsa.fastexit import exit_now

    gc.disable()
    exit_now(main())


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse("capsa-runtime", sys.argv[1:] if argv is None else argv, GLOBAL_FLAGS, VERBS)
        log = RuntimeLog(args.log, args.log_format, args.debug)
    except CapsaError as e:
        sys.stderr.write(f"capsa-runtime: {e}\n")
        return 1
    if args.version:
        from capsa import __version__
        from capsa.oci.runtime_spec import OCI_VERSION

        print(f"capsa-runtime version {__version__}\nspec: {OCI_VERSION}")
        return 0
    if os.environ.get("CAPSA_TRACE"):
        trace.enable(os.environ["CAPSA_TRACE"], _STARTED)
    from capsa.runtime import commands

    trace.mark("imports")
    try:
        return int(getattr(commands, "cmd_" + args.verb)(args, log) or 0)
    except CapsaError as e:
        detail = getattr(e, "detail", "")
        if detail:
            log.debug(f"container init failed at:\n{detail}")
        log.error(str(e))
    except OSError as e:  # a path no verb names (a bad --root ...): one line all the same
        log.error(os_error_line(e))
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: one line, and the traceback with --debug
        _unexpected(log, e)
    finally:
        trace.dump()
    return failure_status(args.verb)


def failure_status(verb: str) -> int:
    """runc's exit status for a command that failed: 255 for ``exec`` (whose other
    statuses are the process's), 1 for the rest."""
    return 255 if verb == "exec" else 1


def os_error_line(e: OSError) -> str:
    """``open /x/pid: no such file or directory``, as runc words an OS error."""
    reason = os_reason(e)
    return f"{e.filename}: {reason}" if e.filename else reason


def _unexpected(log: RuntimeLog, e: Exception) -> None:
    if log.debug_enabled:
        import traceback

        log.debug("".join(traceback.format_exception(e)).rstrip())
    log.error(f"internal error: {type(e).__name__}: {e}")


def print_json(data: Any, indent: int | None = 2) -> None:
    if indent is None:
        from capsa.fastjson import dumps

        text = dumps(data)
    else:
        import json

        text = json.dumps(data, indent=indent)
    sys.stdout.write(text + "\n")


def parse_bytes(value: str) -> int:
    """``64m``, ``1g``, ``1024`` -> bytes (runc's units.RAMInBytes); ``-1`` stays."""
    text = value.strip().lower()
    if text == "-1":
        return -1
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    num = text.rstrip("bkmgtpi")
    suffix = text[len(num) :].replace("ib", "").replace("b", "") or ""
    try:
        return int(float(num) * units[suffix])
    except (ValueError, KeyError):
        raise InvalidArgument(f"invalid size {value!r}") from None


if __name__ == "__main__":
    entry()
