"""``capsa-runtime``: runc's command line over ``capsa.runtime``.

Thin on purpose: parse, call ``Runtime``, print. Errors become one line on stderr
(and in ``--log``) with exit status 1, as runc does.
"""

# ruff: noqa: E402 - the clock starts before the imports it measures

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse
import json
import os
import sys
from typing import Any

from capsa.errors import CapsaError, InvalidArgument
from capsa.runtime import trace
from capsa.runtime.log import RuntimeLog


def default_root() -> str:
    if os.geteuid() == 0:
        return "/run/capsa-runtime"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/capsa-runtime-{os.geteuid()}"
    return os.path.join(base, "capsa-runtime")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="capsa-runtime", description="capsa's OCI runtime")
    p.add_argument("--root", default=None, help="state directory")
    p.add_argument("--log", default=None, help="log file")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="accepted for runc compatibility")
    p.add_argument("--rootless", default="auto", help="accepted for runc compatibility")
    p.add_argument("--criu", default=None, help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")

    s = sub.add_parser("spec", help="write a default config.json")
    s.add_argument("-b", "--bundle", default=".")
    s.add_argument("--rootless", action="store_true")

    for name in ("create", "run"):
        s = sub.add_parser(name, help=f"{name} a container")
        s.add_argument("id")
        s.add_argument("-b", "--bundle", default=".")
        s.add_argument("--console-socket")
        s.add_argument("--pid-file")
        s.add_argument("--no-pivot", action="store_true")
        s.add_argument("--no-new-keyring", action="store_true")
        s.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            s.add_argument("-d", "--detach", action="store_true")
            s.add_argument("--keep", action="store_true")

    for name in ("start", "state", "pause", "resume"):
        sub.add_parser(name).add_argument("id")

    s = sub.add_parser("kill", help="send a signal to the container's init")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("id")
    s.add_argument("signal", nargs="?", default="SIGTERM")

    s = sub.add_parser("delete", help="delete a container")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("id")

    s = sub.add_parser("list", help="list containers")
    s.add_argument("-f", "--format", default="table", choices=("table", "json"))
    s.add_argument("-q", "--quiet", action="store_true")

    s = sub.add_parser("ps", help="processes running in a container")
    s.add_argument("-f", "--format", default="table", choices=("table", "json"))
    s.add_argument("id")
    s.add_argument("ps_args", nargs=argparse.REMAINDER)

    s = sub.add_parser("events", help="container stats and events")
    s.add_argument("--stats", action="store_true")
    s.add_argument("--interval", default="5s")
    s.add_argument("id")

    s = sub.add_parser("update", help="update resource limits")
    s.add_argument("-r", "--resources", default=None)
    for flag in (
        "memory",
        "memory-swap",
        "memory-reservation",
        "kernel-memory",
        "kernel-memory-tcp",
        "cpu-shares",
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
    ):
        s.add_argument(f"--{flag}", default=None)
    s.add_argument("id")

    s = sub.add_parser("exec", help="run a process in a container")
    s.add_argument("--console-socket")
    s.add_argument("--cwd")
    s.add_argument("-e", "--env", action="append", default=[])
    s.add_argument("-t", "--tty", action="store_true")
    s.add_argument("-u", "--user")
    s.add_argument("-g", "--additional-gids", action="append", default=[])
    s.add_argument("-p", "--process")
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("--pid-file")
    s.add_argument("--process-label")
    s.add_argument("--apparmor")
    s.add_argument("--no-new-privs", action="store_true")
    s.add_argument("-c", "--cap", action="append", default=[])
    s.add_argument("--preserve-fds", type=int, default=0)
    s.add_argument("--ignore-paused", action="store_true")
    s.add_argument("--cgroup")
    s.add_argument("id")
    s.add_argument("command", nargs=argparse.REMAINDER)

    sub.add_parser("features", help="what this runtime supports")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log = RuntimeLog(args.log, args.log_format, args.debug)
    if args.version:
        from capsa import __version__
        from capsa.oci.runtime_spec import OCI_VERSION

        print(f"capsa-runtime version {__version__}\nspec: {OCI_VERSION}")
        return 0
    if not args.verb:
        _parser().print_help()
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
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        trace.dump()


def print_json(data: Any, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(data, indent=indent) + "\n")


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
    sys.exit(main())
