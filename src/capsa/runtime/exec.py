"""``exec``: start another process inside a running container's namespaces and cgroup."""

from __future__ import annotations

import os
import sys

from capsa.errors import (
    InvalidArgument,
)
from capsa.linux import syscalls as sc
from capsa.oci.runtime_spec import Process, Spec
from capsa.record import record
from capsa.runtime import entering
from capsa.runtime import process as proc_mod
from capsa.runtime.cgroup import open_cgroup
from capsa.runtime.container import Runtime
from capsa.runtime.status import Op, check
from capsa.runtime.sync import SyncChannel

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any, NoReturn

    from capsa.cgroups.entry import CgroupEntry

# join the user namespace first: it grants the rights to join the others
_ORDER = ("user", "mount", "ipc", "uts", "network", "pid", "cgroup", "time")


@record
class ExecOptions:
    process: Process
    detach: bool = False
    pid_file: str | None = None
    console_socket: str | None = None
    preserve_fds: int = 0
    console: socket.socket | None = None  # the runtime's own pty proxy
    sub_cgroups: dict[str, str] | None = None  # exec --cgroup: {controller or "": path}


@record
class Execed:
    pid: int
    warnings: list[str]


def _namespace_fds(pid: int, spec: Spec) -> list[tuple[str, int]]:
    wanted = {ns.type for ns in (spec.linux.namespaces if spec.linux else None) or []}
    fds = []
    for kind in _ORDER:
        if kind not in wanted:
            continue
        name = sc.NAMESPACE_PROC_NAMES[kind]
        if os.readlink(f"/proc/{pid}/ns/{name}") == os.readlink(f"/proc/self/ns/{name}"):
            continue
        fds.append((kind, os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
    return fds


def exec_process(runtime: Runtime, cid: str, opts: ExecOptions) -> Execed:
    info = runtime.info(cid)
    check(cid, info.status, Op.EXEC)
    spec = runtime.spec_of(info.state)
    if not opts.process.args:
        raise InvalidArgument("exec: no command given")
    ns_fds = _namespace_fds(info.state.pid, spec)
    console = opts.console
    if console is None and opts.process.terminal and opts.console_socket:
        from capsa.runtime.console import connect_console_socket

        console = connect_console_socket(opts.console_socket)
    if console is not None:
        import capsa.runtime.console  # noqa: F401 - the child runs it after entering the container
    prepared_filter = proc_mod.prepare_seccomp(
        spec.linux.seccomp if spec.linux else None, runtime.store.root
    )
    entry = open_cgroup(info.state.cgroups_path, info.state.cgroup_paths).open_entry(
        opts.sub_cgroups
    )
    parent, child = SyncChannel.pair()
    sys.stdout.flush()
    sys.stderr.flush()
    pid_c = entry.fork()
    if pid_c == 0:
        parent.close()
        _stage1(child, entry, ns_fds, prepared_filter, opts, console)
    entry.close()
    child.close()
    for _, fd in ns_fds:
        os.close(fd)
    if console is not None and opts.console is None:
        console.close()
    try:
        pid, warnings = _drive(parent, pid_c)
        _check_exec(parent, opts.process.args[0])
    except BaseException:
        _reap_quietly(pid_c)
        raise
    finally:
        parent.close()
    if opts.pid_file:
        from capsa.linux.atomicfile import write_atomic

        write_atomic(os.path.abspath(opts.pid_file), str(pid).encode(), 0o644)
    return Execed(pid, warnings)


def _drive(sync: SyncChannel, pid_c: int) -> tuple[int, list[str]]:
    """``pid`` (from the joining process) and ``ready`` (from the new one) in any order."""
    pid = 0
    warnings: list[str] | None = None
    while not pid or warnings is None:
        msg = sync.recv()
        if msg["type"] == "pid":
            pid = int(msg["pid"])
            os.waitpid(pid_c, 0)
        elif msg["type"] == "ready":
            warnings = list(msg.get("warnings") or [])
    return pid, warnings


def _check_exec(sync: SyncChannel, program: str) -> None:
    """Wait for the new process's ``execve``: its end of the channel closes then, or
    the trampoline reports why the exec failed (an errno, 4 bytes)."""
    data = sync.read_to_eof()
    if len(data) < 4:
        return
    err = int.from_bytes(data[-4:], sys.byteorder)
    raise proc_mod.exec_error(program, OSError(err, os.strerror(err)))


def _reap_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _stage1(
    sync: SyncChannel,
    entry: CgroupEntry,
    ns_fds: list[tuple[str, int]],
    prepared_filter: Any,
    opts: ExecOptions,
    console: socket.socket | None,
) -> NoReturn:
    try:
        # before anything of the container can see us: no dumpable memory, no host fds
        # but the ones for the container, and no imports from the container's files
        keep = (sync.rfd, sync.wfd, *entry.fds(), *(fd for _, fd in ns_fds))
        if console is not None:
            keep += (console.fileno(),)
        entering.hide(keep + entering.preserved(opts.preserve_fds))
        entering.seal_imports()
        entry.join()  # the container's cgroup, before its namespaces: stage 2 is born inside
        for kind, fd in ns_fds:
            sc.setns(fd, sc.NAMESPACE_FLAGS[kind])
            os.close(fd)
        pid = os.fork()
        if pid == 0:
            _stage2(sync, prepared_filter, opts, console)
        sync.send("pid", pid=pid)
        os._exit(0)
    except BaseException as e:
        sync.send_error(e)
        os._exit(1)


def _stage2(
    sync: SyncChannel, prepared_filter: Any, opts: ExecOptions, console: socket.socket | None
) -> NoReturn:
    try:
        os.chdir("/")
        if console is not None:
            from capsa.runtime.console import setup_container_tty

            size = opts.process.console_size
            setup_container_tty(console, (size.height, size.width) if size else None)
        prepared = proc_mod.prepare(opts.process, prepared_filter)
        sync.send("ready", warnings=prepared.warnings)
        sync.close_reading()  # the writing end tells the parent how the exec went
    except BaseException as e:
        sync.send_error(e)
        os._exit(1)
    try:
        proc_mod.finalize_and_exec(opts.process, prepared, opts.preserve_fds, sync.wfd)
    except BaseException as e:
        sys.stderr.write(f"capsa-runtime exec: {e}\n")
    os._exit(127)
