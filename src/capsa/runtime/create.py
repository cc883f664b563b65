"""``create``: from a bundle to a container init waiting for ``start``.

All or nothing: the state directory, cgroup, fifo and processes made on the way are
undone if any step fails, and the error names what went wrong.
"""

from __future__ import annotations

import os
import pwd
import sys

from capsa.cleanup import CleanupStack
from capsa.errors import InvalidArgument, os_reason
from capsa.linux.signals import SIGKILL
from capsa.oci.runtime_spec import IDMapping, Spec, load_spec
from capsa.record import field, record
from capsa.runtime import hooks as hooks_mod
from capsa.runtime import trace
from capsa.runtime.cgroup import open_cgroup, placement
from capsa.runtime.devices import effective_resources
from capsa.runtime.init import (
    InitContext,
    born_in_place,
    clone_namespaces,
    open_namespace_paths,
    stage1,
)
from capsa.runtime.process import prepare_seccomp
from capsa.runtime.state import ContainerState, StateStore
from capsa.runtime.sync import SyncChannel
from capsa.runtime.validate import validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any


@record
class CreateOptions:
    bundle: str = "."
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    preserve_fds: int = 0
    # `run` with a terminal and no console socket: the runtime keeps the pty master
    console: socket.socket | None = None
    spec: Spec | None = None  # the bundle's config.json, when the caller has read it


@record
class Created:
    state: ContainerState
    warnings: list[str] = field(default_factory=list)


def oci_state(state: ContainerState, status: str) -> dict[str, Any]:
    return {
        "ociVersion": state.config.get("ociVersion", "1.2.0"),
        "id": state.id,
        "status": status,
        "pid": state.pid if status != "stopped" else 0,
        "bundle": state.bundle,
        "annotations": state.annotations,
    }


def create(store: StateStore, container_id: str, opts: CreateOptions) -> Created:
    bundle = os.path.abspath(opts.bundle)
    spec = opts.spec if opts.spec is not None else load_spec(bundle)
    rootfs = validate(spec, bundle)
    store.reserve(container_id)
    trace.mark("config")
    with CleanupStack() as cleanup:
        cleanup.push(store.remove, container_id)
        return _create(store, container_id, spec, bundle, rootfs, opts, cleanup)
    raise AssertionError("unreachable")


def _create(
    store: StateStore,
    cid: str,
    spec: Spec,
    bundle: str,
    rootfs: str,
    opts: CreateOptions,
    cleanup: CleanupStack,
) -> Created:
    assert spec.linux is not None
    cgroups_path, tree_paths = placement(spec.linux.cgroups_path, cid)
    state = ContainerState(
        id=cid,
        bundle=bundle,
        rootfs=rootfs,
        cgroups_path=cgroups_path,
        cgroup_paths=tree_paths,
        created=_utc_now(),
        owner=_owner(),
        annotations=dict(spec.annotations or {}),
        config=spec.to_json(),
    )
    cgroup = open_cgroup(state.cgroups_path, state.cgroup_paths)
    cgroup.create()
    cleanup.push(cgroup.destroy)
    warnings = cgroup.apply(effective_resources(spec))
    entry = cgroup.open_entry()  # the init (or its first stage) joins by itself
    cleanup.push(entry.close)
    trace.mark("cgroup")
    fifo = store.fifo(cid)
    os.mkfifo(fifo, 0o622)
    os.chmod(fifo, 0o622)  # whatever the umask: the init may run as an unprivileged host uid
    root_ids = _container_root_ids(spec)
    if root_ids is not None:
        os.chown(fifo, *root_ids)
    fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)  # the init reopens it through this fd
    cleanup.push(os.close, fifo_fd)
    console = opts.console
    if console is None and opts.console_socket and spec.process and spec.process.terminal:
        from capsa.runtime.console import connect_console_socket

        console = connect_console_socket(opts.console_socket)
        cleanup.push(console.close)
    ctx = InitContext(
        spec=spec,
        rootfs=rootfs,
        fifo_fd=fifo_fd,
        sync=None,  # type: ignore[arg-type]
        cgroup=cgroup,
        entry=entry,
        console=console,
        no_pivot=opts.no_pivot,
        preserve_fds=opts.preserve_fds,
        ns_fds=open_namespace_paths(spec),
        seccomp=prepare_seccomp(spec.linux.seccomp, store.root),
    )
    parent, child = SyncChannel.pair()
    ctx.sync = child
    sys.stdout.flush()
    sys.stderr.flush()
    old_cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
    os.chdir(bundle)  # relative bind sources are relative to the bundle
    # the init is born in its namespaces where it can be (one fork), else stage 1
    # makes them and forks it
    flags = clone_namespaces(spec, ctx.ns_fds)
    pid_a = entry.fork(flags or 0)
    one_stage = flags is not None and entry.born_inside
    if pid_a == 0:
        parent.close()
        (born_in_place if one_stage else stage1)(ctx)
    os.fchdir(old_cwd)
    os.close(old_cwd)
    child.close()
    entry.close()
    for fd in ctx.ns_fds.values():
        os.close(fd)
    if console is not None and opts.console is None:
        console.close()
    cleanup.push(_reap, pid_a)
    if one_stage:
        _started(state, pid_a, cleanup)
    try:
        warnings += _drive(parent, pid_a, state, spec, store, cleanup)
    finally:
        parent.close()
    state.created_status = "created"
    store.save(state)
    if opts.pid_file:
        write_pid_file(opts.pid_file, state.pid)
    return Created(state, warnings)


def _drive(
    sync: SyncChannel,
    pid_a: int,
    state: ContainerState,
    spec: Spec,
    store: StateStore,
    cleanup: CleanupStack,
) -> list[str]:
    """Answer the init's messages until it reports ready.

    With two stages, stage 1 sends ``pid`` and stage 2 sends ``pre-pivot``: two
    processes, so the second may arrive first; it is answered once the pid is known.
    An init born in place (``pid_a`` itself) is known from the start.
    """
    waiting_pivot = False
    while True:
        msg = sync.recv()
        kind = msg["type"]
        if kind == "userns":
            assert spec.linux is not None
            _write_id_maps(pid_a, spec.linux.uid_mappings or [], spec.linux.gid_mappings or [])
            sync.send("userns-ok")
        elif kind == "pid":
            _reap(pid_a)
            _started(state, int(msg["pid"]), cleanup)
            if waiting_pivot:
                _answer_pre_pivot(sync, state, spec, store)
        elif kind == "pre-pivot":
            trace.mark("mounts")
            waiting_pivot = not state.pid
            if state.pid:
                _answer_pre_pivot(sync, state, spec, store)
        elif kind == "ready":
            trace.mark("pivot_and_process")
            return list(msg.get("warnings") or [])


def _started(state: ContainerState, pid: int, cleanup: CleanupStack) -> None:
    """The init exists (pid in the runtime's namespace)."""
    state.pid = pid
    cleanup.push(_kill, pid)
    state.pid_start = _start_time(pid)
    trace.mark("namespaces")


def _answer_pre_pivot(
    sync: SyncChannel, state: ContainerState, spec: Spec, store: StateStore
) -> None:
    """The init is in its cgroup and has its mounts: run the runtime-side hooks."""
    store.save(state)
    oci = oci_state(state, "creating")
    hooks_mod.run_hooks(spec.hooks, "prestart", oci)
    hooks_mod.run_hooks(spec.hooks, "createRuntime", oci)
    sync.send("hooks-done", state=oci)


def _utc_now() -> str:
    """RFC 3339 with nanoseconds, as runc writes ``created``."""
    import time

    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def _container_root_ids(spec: Spec) -> tuple[int, int] | None:
    """The host uid/gid that root in the container's user namespace maps to."""
    linux = spec.linux
    if linux is None or not linux.uid_mappings:
        return None

    def host_id(maps: list[IDMapping]) -> int:
        for m in maps:
            if m.container_id <= 0 < m.container_id + m.size or m.container_id == 0:
                return m.host_id - m.container_id
        return 0

    return host_id(linux.uid_mappings), host_id(linux.gid_mappings or [])


def _start_time(pid: int) -> int:
    from capsa.linux.proc import start_time

    return start_time(pid) or 0


def _write_id_maps(pid: int, uids: list[IDMapping], gids: list[IDMapping]) -> None:
    def fmt(maps: list[IDMapping]) -> str:
        return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)

    if os.geteuid() != 0:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(fmt(uids))
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(fmt(gids))


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass


def _owner() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def write_pid_file(path: str, pid: int) -> None:
    """Write ``pid`` to ``path`` atomically; a path that cannot be written is the
    caller's mistake (a missing directory ...), said in one line."""
    from capsa.linux.atomicfile import write_atomic

    target = os.path.abspath(path)
    try:
        write_atomic(target, str(pid).encode(), 0o644, durable=False)
    except OSError as e:
        raise InvalidArgument(f"cannot write pid file {target}: {os_reason(e)}") from None
