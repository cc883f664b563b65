"""The container's init: born in place, or in two forked stages.

Usually ``create`` forks the container's PID 1 straight into its cgroup2 directory
and its new namespaces (``clone_namespaces``, ``born_in_place``): it joins the v1
hierarchies itself (see ``capsa.cgroups.entry``), gets its user namespace's id maps
from the parent and joins namespaces given by path. Otherwise stage 1 does that work
and the unsharing and forks PID 1 (stage 2). PID 1 builds the filesystem, pivots into
it, reports ``ready`` and then blocks on the exec fifo until ``start`` opens it; only
then does it run startContainer hooks and exec the user's program.
"""

from __future__ import annotations

import os
import sys

from capsa.errors import CapsaError, InvalidArgument, NotFound, PermissionDenied, os_reason
from capsa.linux import syscalls as sc
from capsa.oci.runtime_spec import Spec
from capsa.record import field, record
from capsa.runtime import entering
from capsa.runtime import hooks as hooks_mod
from capsa.runtime import process as proc_mod
from capsa.runtime.rootfs import RootfsBuilder
from capsa.runtime.sync import SyncChannel

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any, NoReturn

    from capsa.cgroups import CgroupManager
    from capsa.cgroups.entry import CgroupEntry


@record
class InitContext:
    spec: Spec
    rootfs: str
    fifo_fd: int
    sync: SyncChannel
    cgroup: CgroupManager | None = None
    entry: CgroupEntry | None = None  # joined first thing (by stage 1 if there is one)
    console: socket.socket | None = None
    no_pivot: bool = False
    preserve_fds: int = 0
    ns_fds: dict[str, int] = field(default_factory=dict)
    seccomp: Any = None  # a prepared filter, built by the parent
    prepared: proc_mod.Prepared | None = None
    state: dict[str, Any] = field(default_factory=dict)


def open_namespace_paths(spec: Spec) -> dict[str, int]:
    """Open every namespace given by path before anything changes our view of /proc."""
    fds: dict[str, int] = {}
    for ns in (spec.linux.namespaces if spec.linux else None) or []:
        if ns.path:
            try:
                fds[ns.type] = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                for fd in fds.values():
                    os.close(fd)
                raise InvalidArgument(
                    f"cannot open {ns.type} namespace {ns.path}: {os_reason(e)}"
                ) from None
    return fds


def _new_namespaces(spec: Spec) -> set[str]:
    return {ns.type for ns in (spec.linux.namespaces if spec.linux else None) or [] if not ns.path}


def clone_namespaces(spec: Spec, ns_fds: dict[str, int]) -> int | None:
    """The ``CLONE_NEW*`` flags ``create`` can fork the init with, so that it is born
    in its namespaces and no first stage is needed; ``None`` when it cannot: a pid or
    time namespace joined by path only takes the children of the process that joins,
    a user namespace joined by path must come before the others are made, and a new
    time namespace needs its offsets before its first process. The cgroup namespace
    is left to the init, once it is in its cgroup."""
    if ns_fds.keys() & {"user", "pid", "time"}:
        return None
    new = _new_namespaces(spec)
    if "time" in new:
        return None
    flags = 0
    for kind in new - {"cgroup"}:
        flags |= sc.NAMESPACE_FLAGS[kind]
    return flags


def born_in_place(ctx: InitContext) -> NoReturn:
    """The init, forked by ``create`` straight into its cgroup2 directory and its new
    namespaces (``clone_namespaces``): the rest of what stage 1 does, then stage 2."""
    try:
        assert ctx.entry is not None
        ctx.entry.join()
        _hide(ctx)
        _root_and_paths(ctx, _new_namespaces(ctx.spec), joins_user=False)
    except BaseException as e:
        ctx.sync.send_error(e)
        os._exit(1)
    stage2(ctx)


def _hide(ctx: InitContext) -> None:
    """Before the container can see the init: see ``capsa.runtime.entering``."""
    keep = (ctx.sync.rfd, ctx.sync.wfd, ctx.fifo_fd, *ctx.ns_fds.values())
    if ctx.console is not None:
        keep += (ctx.console.fileno(),)
    entering.hide(keep + entering.preserved(ctx.preserve_fds))
    if "mount" in ctx.ns_fds:  # the files seen from here on may be a container's
        entering.seal_imports()


def _root_and_paths(ctx: InitContext, new: set[str], *, joins_user: bool) -> None:
    """Once in its user namespace: the id maps of a new one (written by the parent),
    root there, then the namespaces given by path (the user one already joined)."""
    if "user" in new:
        ctx.sync.send("userns")
        ctx.sync.expect("userns-ok")
    if "user" in new or joins_user:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for kind, fd in ctx.ns_fds.items():
        sc.setns(fd, sc.NAMESPACE_FLAGS[kind])
        os.close(fd)


def stage1(ctx: InitContext) -> NoReturn:
    try:
        if ctx.entry is not None:  # stage 2, forked below, is born in the cgroup
            ctx.entry.join()
        _hide(ctx)
        new = _new_namespaces(ctx.spec)
        joins_user = "user" in ctx.ns_fds
        if joins_user:
            sc.setns(ctx.ns_fds.pop("user"), sc.CLONE_NEWUSER)
        elif "user" in new:
            sc.unshare(sc.CLONE_NEWUSER)
        _root_and_paths(ctx, new, joins_user=joins_user)
        flags = 0
        # the cgroup namespace is unshared by stage 2 once it is in its cgroup
        for kind in new - {"user", "cgroup"}:
            flags |= sc.NAMESPACE_FLAGS[kind]
        if flags:
            sc.unshare(flags)
        if "time" in new:
            _write_time_offsets(ctx.spec)
        pid = os.fork()
        if pid == 0:
            stage2(ctx)
        ctx.sync.send("pid", pid=pid)
        os._exit(0)
    except BaseException as e:
        ctx.sync.send_error(e)
        os._exit(1)


def _write_time_offsets(spec: Spec) -> None:
    offsets = (spec.linux.time_offsets if spec.linux else None) or {}
    lines = []
    for clock, value in offsets.items():
        lines.append(f"{clock} {int(value.get('secs', 0))} {int(value.get('nanosecs', 0))}\n")
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))


def stage2(ctx: InitContext) -> NoReturn:
    started = False
    try:
        fifo_fd = _setup(ctx)
        started = True
        report_fd = _wait_for_start(fifo_fd)
        _exec(ctx, report_fd)
    except BaseException as e:
        if not started:
            ctx.sync.send_error(e)
            os._exit(1)
        _die_after_start(e)


def _setup(ctx: InitContext) -> int:
    spec = ctx.spec
    new = _new_namespaces(spec)
    userns = "user" in new or bool(spec.linux and spec.linux.namespace("user"))
    builder = RootfsBuilder(spec, ctx.rootfs, userns=userns, cgroup=ctx.cgroup)
    builder.prepare()
    ctx.sync.send("pre-pivot")
    msg = ctx.sync.expect("hooks-done")
    if "cgroup" in new:
        sc.unshare(sc.CLONE_NEWCGROUP)
    hooks_mod.run_hooks(spec.hooks, "createContainer", msg["state"])
    fifo_fd = ctx.fifo_fd
    _preload(ctx)
    entering.seal_imports()  # from here on every path names the container's files
    builder.pivot(ctx.no_pivot)
    builder.finish()
    if spec.hostname is not None:
        sc.sethostname(spec.hostname)
    if spec.domainname is not None:
        sc.setdomainname(spec.domainname)
    process = spec.process
    assert process is not None
    if ctx.console is not None:
        from capsa.runtime.console import setup_container_tty

        size = process.console_size
        setup_container_tty(ctx.console, (size.height, size.width) if size else None)
        ctx.console = None
    ctx.prepared = proc_mod.prepare(process, ctx.seccomp)
    ctx.state = msg["state"]
    ctx.sync.send("ready", warnings=ctx.prepared.warnings)
    ctx.sync.close()
    return fifo_fd


def _preload(ctx: InitContext) -> None:
    """Import now what runs after pivot_root: the host's files are gone then."""
    if ctx.console is not None:
        import capsa.runtime.console  # noqa: F401
    if hooks_mod.hooks_for(ctx.spec.hooks, "startContainer"):
        import subprocess  # noqa: F401


def _wait_for_start(fifo_fd: int) -> int:
    """Block until ``start`` opens the fifo. The write end stays open, close-on-exec:
    ``start`` reads until EOF, so it returns (and runs poststart hooks) only once the
    user's program has been executed; a failed exec writes its errno there."""
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fifo_fd)
    return fd


def _exec(ctx: InitContext, report_fd: int) -> NoReturn:
    state = dict(ctx.state, status="running")
    hooks_mod.run_hooks(ctx.spec.hooks, "startContainer", state)
    assert ctx.spec.process is not None and ctx.prepared is not None
    proc_mod.finalize_and_exec(
        ctx.spec.process, ctx.prepared, ctx.preserve_fds, report_fd, message=True
    )
    os._exit(127)


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, NotFound):
        return 127
    if isinstance(exc, PermissionDenied | PermissionError):
        return 126
    return 127 if isinstance(exc, FileNotFoundError) else 1


def _die_after_start(exc: BaseException) -> NoReturn:
    msg = str(exc) if isinstance(exc, CapsaError) else f"{type(exc).__name__}: {exc}"
    try:
        sys.stderr.write(f"capsa-runtime: {msg}\n")
        sys.stderr.flush()
    finally:
        os._exit(exit_code_for(exc))
