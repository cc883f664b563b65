"""One function per ``capsa-runtime`` verb: turn parsed flags into Runtime calls."""

from __future__ import annotations

import os
import sys
import time

from capsa import fastjson
from capsa.errors import AlreadyExists, InvalidArgument, os_reason
from capsa.runtime import trace
from capsa.runtime.argv import Args
from capsa.runtime.cli import default_root, parse_bytes, print_json
from capsa.runtime.container import Runtime, signal_number
from capsa.runtime.create import Created, CreateOptions, write_pid_file
from capsa.runtime.log import RuntimeLog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from capsa.oci.runtime_spec import Spec


def _long_running() -> None:
    """A verb that stays turns the garbage collector back on (``cli.entry`` turns it
    off for start-up)."""
    import gc

    gc.enable()


def _runtime(args: Args) -> Runtime:
    return Runtime(args.root or default_root())


def _warn(log: RuntimeLog, warnings: list[str]) -> None:
    for w in warnings:
        log.warning(w)


def cmd_spec(args: Args, log: RuntimeLog) -> int:
    import json  # indented output: the stdlib module

    from capsa.oci.defaults import default_spec

    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        raise AlreadyExists(f"{path} exists; remove it first")
    spec = default_spec(rootless=args.rootless)
    with open(path, "w") as f:
        json.dump(spec.to_json(), f, indent="\t")
    return 0


def _create_options(args: Args) -> CreateOptions:
    return CreateOptions(
        bundle=args.bundle,
        pid_file=args.pid_file,
        console_socket=args.console_socket,
        no_pivot=args.no_pivot,
        preserve_fds=args.preserve_fds,
    )


def check_terminal(terminal: bool, detach: bool, console_socket: str | None) -> None:
    """runc's rules: a detached process with a terminal needs somewhere to send the
    pty master, and a console socket is only for a detached process with a terminal."""
    if detach and terminal and not console_socket:
        raise InvalidArgument(
            "cannot allocate tty if the runtime will detach without a console socket"
        )
    if (not detach or not terminal) and console_socket:
        raise InvalidArgument(
            "cannot use console socket if the runtime will not detach or allocate tty"
        )


def _load_checked(args: Args, opts: CreateOptions, detach: bool) -> Spec:
    from capsa.oci.runtime_spec import load_spec

    spec = opts.spec = load_spec(args.bundle)
    check_terminal(bool(spec.process and spec.process.terminal), detach, args.console_socket)
    return spec


def _debug_created(log: RuntimeLog, created: Created) -> None:
    st = created.state
    log.debug(f"container {st.id}: init pid {st.pid}, cgroup {st.cgroups_path}, bundle {st.bundle}")


def cmd_create(args: Args, log: RuntimeLog) -> int:
    opts = _create_options(args)
    _load_checked(args, opts, detach=True)
    created = _runtime(args).create(args.id, opts)
    _warn(log, created.warnings)
    _debug_created(log, created)
    return 0


def cmd_run(args: Args, log: RuntimeLog) -> int:
    from capsa.runtime import foreground

    rt = _runtime(args)
    opts = _create_options(args)
    spec = _load_checked(args, opts, detach=args.detach)
    ours = None
    if not args.detach:
        foreground.become_subreaper()
        if spec.process and spec.process.terminal:
            ours, theirs = foreground.console_pair()
            opts.console = theirs
    created = rt.create(args.id, opts)
    _warn(log, created.warnings)
    _debug_created(log, created)
    master = None
    if ours is not None and opts.console is not None:
        from capsa.runtime.console import receive_master

        opts.console.close()
        master = receive_master(ours)
        ours.close()
        _copy_window_size(master)  # before start: the program sees its size from the first
    trace.mark("create_done")
    try:
        _warn(log, rt.start(args.id))
        trace.mark("start")
    except BaseException:
        rt.delete(args.id, force=True)
        raise
    log.debug(f"container {args.id}: started")
    if args.detach:
        return 0
    _long_running()
    code = foreground.wait_foreground(created.state.pid, master)
    trace.mark("container_ran")
    log.debug(f"container {args.id}: exited with status {code}")
    if not args.keep:
        _warn(log, rt.delete(args.id, force=True))
        trace.mark("delete")
        log.debug(f"container {args.id}: deleted")
    return code


def _copy_window_size(master: int) -> None:
    if os.isatty(0):
        from capsa.ptyio import get_winsize, set_winsize

        set_winsize(master, *get_winsize(0))


def cmd_start(args: Args, log: RuntimeLog) -> int:
    _warn(log, _runtime(args).start(args.id))
    log.debug(f"container {args.id}: started")
    return 0


def cmd_state(args: Args, log: RuntimeLog) -> int:
    """runc's ``json.MarshalIndent`` of its state, without a final newline (as runc)."""
    state = _runtime(args).info(args.id).to_runc_json(with_owner=False)
    sys.stdout.write(fastjson.go_dumps(state, "  "))
    return 0


def cmd_kill(args: Args, log: RuntimeLog) -> int:
    sig = signal_number(args.signal, allow_zero=True)
    _runtime(args).kill(args.id, sig, args.all)
    log.debug(f"container {args.id}: sent signal {sig}{' to every process' if args.all else ''}")
    return 0


def cmd_delete(args: Args, log: RuntimeLog) -> int:
    rt = _runtime(args)
    from capsa.errors import NotFound

    try:
        _warn(log, rt.delete(args.id, args.force))
    except NotFound:
        if not args.force:
            raise
    return 0


def cmd_pause(args: Args, log: RuntimeLog) -> int:
    _runtime(args).pause(args.id)
    return 0


def cmd_resume(args: Args, log: RuntimeLog) -> int:
    _runtime(args).resume(args.id)
    return 0


def cmd_list(args: Args, log: RuntimeLog) -> int:
    if args.format not in ("table", "json"):
        raise InvalidArgument(f"invalid format option: {args.format}")
    infos = _runtime(args).containers()
    if args.quiet:
        for info in infos:
            print(info.state.id)
    elif args.format == "json":
        # runc's json.Encoder: compact, a newline, and null for no containers
        states = [i.to_runc_json(with_owner=True) for i in infos]
        sys.stdout.write(fastjson.go_dumps(states or None) + "\n")
    else:
        rows: list[tuple[str, ...]] = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        for i in infos:
            j = i.to_runc_json(with_owner=True)
            rows.append(
                (j["id"], str(j["pid"]), j["status"], j["bundle"], j["created"], j["owner"])
            )
        sys.stdout.write(tabulate(rows))
    return 0


def tabulate(rows: Sequence[Sequence[str]]) -> str:
    """Go's ``tabwriter.NewWriter(out, 12, 1, 3, ' ', 0)`` as ``runc list`` uses it: each
    column but the last as wide as its widest cell plus 3, at least 12."""
    widths = [max(12, max(len(r[c]) for r in rows) + 3) for c in range(len(rows[0]) - 1)]
    return "".join(
        "".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in rows
    )


def cmd_ps(args: Args, log: RuntimeLog) -> int:
    if args.format not in ("table", "json"):
        raise InvalidArgument(f"invalid format option: {args.format}")
    pids = _runtime(args).pids(args.id)
    if args.format == "json":
        sys.stdout.write(fastjson.go_dumps(pids) + "\n")  # runc's json.Encoder
        return 0
    import subprocess

    ps_args = [a for a in args.ps_args if a != "--"] or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise InvalidArgument(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("ps: output has no PID column")
    col = header.index("PID")
    print(lines[0])
    wanted: set[int] = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def _interval(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0}
    for suffix in ("ms", "s", "m"):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                break
    raise InvalidArgument(f"invalid interval {text!r}")


def _event(event: dict[str, Any]) -> None:
    """One event as runc's ``json.Encoder`` writes it: compact, then a newline."""
    sys.stdout.write(fastjson.go_dumps(event) + "\n")
    sys.stdout.flush()


def cmd_events(args: Args, log: RuntimeLog) -> int:
    """``--stats``: one stats event. Otherwise, as runc: a stats event every interval
    (the first after one interval) and an ``oom`` event for each OOM kill, until the
    container is gone."""
    rt = _runtime(args)
    if args.stats:
        _event(rt.stats(args.id))
        return 0
    every = _interval(args.interval)
    ooms = rt.oom_count(args.id)
    from capsa.errors import CapsaError

    _long_running()
    while True:
        time.sleep(every)
        try:
            stats = rt.stats(args.id)
        except CapsaError:
            return 0
        now = rt.oom_count(args.id)
        if now > ooms:
            _event({"type": "oom", "id": args.id})
            ooms = now
        _event(stats)


def _resources_from_flags(args: Args) -> dict[str, Any]:
    res: dict[str, Any] = {}
    mem = {
        "limit": ("memory", parse_bytes),
        "swap": ("memory_swap", parse_bytes),
        "reservation": ("memory_reservation", parse_bytes),
        "kernel": ("kernel_memory", parse_bytes),
        "kernelTCP": ("kernel_memory_tcp", parse_bytes),
    }
    cpu = {
        "shares": ("cpu_shares", int),
        "period": ("cpu_period", int),
        "quota": ("cpu_quota", int),
        "realtimePeriod": ("cpu_rt_period", int),
        "realtimeRuntime": ("cpu_rt_runtime", int),
        "cpus": ("cpuset_cpus", str),
        "mems": ("cpuset_mems", str),
    }
    for section, table in (("memory", mem), ("cpu", cpu)):
        for key, (attr, conv) in table.items():
            value = getattr(args, attr)
            if value is not None:
                try:
                    res.setdefault(section, {})[key] = conv(value)
                except ValueError:
                    raise InvalidArgument(f"invalid --{attr.replace('_', '-')} {value!r}") from None
    if args.pids_limit is not None:
        res["pids"] = {"limit": _int_flag("pids-limit", args.pids_limit)}
    if args.blkio_weight is not None:
        res["blockIO"] = {"weight": _int_flag("blkio-weight", args.blkio_weight)}
    return res


def _int_flag(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid --{name} {value!r}") from None


def cmd_update(args: Args, log: RuntimeLog) -> int:
    from capsa.oci.codec import from_dict
    from capsa.oci.runtime_spec import Resources

    data: dict[str, Any] = {}
    if args.resources:
        src = sys.stdin if args.resources == "-" else open(args.resources)  # noqa: SIM115
        with src:
            try:
                data = fastjson.loads(src.read())
            except ValueError as e:
                raise InvalidArgument(f"{args.resources}: invalid JSON: {e}") from None
    for key, value in _resources_from_flags(args).items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    resources = from_dict(Resources, data, "resources")
    _warn(log, _runtime(args).update(args.id, resources))
    return 0


def _exec_process(args: Args, rt: Runtime) -> Any:
    from capsa.oci.codec import from_dict
    from capsa.oci.runtime_spec import Process, User

    if args.process:
        try:
            with open(args.process) as f:
                return from_dict(Process, fastjson.loads(f.read()), "process")
        except OSError as e:
            raise InvalidArgument(f"cannot read {args.process}: {os_reason(e)}") from None
        except ValueError as e:
            raise InvalidArgument(f"{args.process}: invalid JSON: {e}") from None
    command = [a for a in args.command if a != "--"] if args.command[:1] == ["--"] else args.command
    base = rt.spec_of(rt.store.load(args.id)).process or Process()
    proc = Process(
        args=command,
        cwd=args.cwd or base.cwd,
        env=list(base.env or []) + args.env,
        terminal=args.tty,
        user=base.user,
        capabilities=base.capabilities,
        rlimits=base.rlimits,
        no_new_privileges=args.no_new_privs or base.no_new_privileges,
    )
    if args.user:
        uid, _, gid = args.user.partition(":")
        try:
            proc.user = User(
                uid=int(uid),
                gid=int(gid or 0),
                additional_gids=[int(g) for g in args.additional_gids] or None,
            )
        except ValueError:
            raise InvalidArgument(f"invalid --user {args.user!r}") from None
    if args.cap and proc.capabilities is not None:
        for name in ("bounding", "effective", "permitted", "ambient"):
            current = getattr(proc.capabilities, name) or []
            setattr(proc.capabilities, name, current + [c for c in args.cap if c not in current])
    return proc


def sub_cgroups(values: list[str]) -> dict[str, str]:
    """``exec --cgroup`` as runc reads it: ``PATH`` (once: the same sub-cgroup in every
    hierarchy) or ``CONTROLLER[,CONTROLLER...]:PATH`` (repeatable) -> {controller: path},
    ``""`` standing for every hierarchy."""
    out: dict[str, str] = {}
    for value in values:
        parts = value.split(":", 2)
        if len(parts) == 2:
            for controller in parts[0].split(","):
                out[controller] = parts[1]
        elif len(parts) == 1:
            if len(values) != 1:
                raise InvalidArgument(
                    f"invalid --cgroup argument: {value} (missing <controller>: prefix)"
                )
            out[""] = value
        else:
            raise InvalidArgument(f"invalid --cgroup argument: {value}")
    return out


def cmd_exec(args: Args, log: RuntimeLog) -> int:
    from capsa.runtime import foreground
    from capsa.runtime.exec import ExecOptions, exec_process

    rt = _runtime(args)
    proc = _exec_process(args, rt)
    check_terminal(bool(proc.terminal), args.detach, args.console_socket)
    opts = ExecOptions(
        process=proc,
        detach=args.detach,
        console_socket=args.console_socket,
        preserve_fds=args.preserve_fds,
        sub_cgroups=sub_cgroups(args.cgroup),
    )
    ours = None
    if not args.detach:
        foreground.become_subreaper()
        if proc.terminal and not args.console_socket:
            ours, opts.console = foreground.console_pair()
            if proc.console_size is None and os.isatty(0):
                from capsa.oci.runtime_spec import ConsoleSize
                from capsa.ptyio import get_winsize

                rows, cols = get_winsize(0)
                proc.console_size = ConsoleSize(height=rows, width=cols)
    result = exec_process(rt, args.id, opts)
    _warn(log, result.warnings)
    log.debug(f"container {args.id}: exec pid {result.pid}")
    if args.pid_file:
        _exec_pid_file(args.pid_file, result.pid)
    if args.detach:
        return 0
    master = None
    if ours is not None:
        from capsa.runtime.console import receive_master

        master = receive_master(ours)
    _long_running()
    return foreground.wait_foreground(result.pid, master)


def _exec_pid_file(path: str, pid: int) -> None:
    """Written once the process runs; if it cannot be, the process is killed (as runc
    does), since its caller would not know of it."""
    try:
        write_pid_file(path, pid)
    except BaseException:
        from capsa.linux.signals import SIGKILL

        try:
            os.kill(pid, SIGKILL)
        except ProcessLookupError:
            pass
        raise


def cmd_features(args: Args, log: RuntimeLog) -> int:
    from capsa.runtime.features import features

    print_json(features())
    return 0
