"""Records against the kernel after a crash or a reboot, and ``capsa system restore``.

A container's record says what its monitor last wrote. When the monitor and the
container's init are both gone without a word (SIGKILLed, or the machine restarted:
processes, mounts, cgroups, veths, bridges and nftables rules all vanish while the data
root keeps every record), whoever notices first (``ps``, ``inspect``, ``start``...)
finishes the monitor's work here: the runtime's state, the rootfs mount, the network
endpoints and leases, the volume users; the record becomes *exited*. Its exit code is
then unknown: the record keeps none (``None``, shown as ``Exited (unknown)``) and
``State.Error`` says why; no number is made up.

``restore`` is what Docker's daemon does when it starts and podman's
``podman-restart.service`` at boot: settle every record, drop the network state no
container holds any more, then start the containers whose restart policy brings them
back (``always``; ``unless-stopped`` unless a user stopped it; ``on-failure`` if it was
running when the host went down). ``contrib/systemd/capsa-restore.service`` runs it.
"""

from __future__ import annotations

import time

from capsa.engine.containers.types import ContainerRecord, State, is_live
from capsa.errors import CapsaError
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.service import ContainerService
    from capsa.engine.service_context import ServiceContext

UNKNOWN_EXIT = (
    "exit status unknown: the container's monitor and process were gone"
    " (killed, or the host restarted)"
)


@record
class RestoreFailure:
    name: str
    message: str


@record
class RestoreReport:
    settled: list[str] = field(default_factory=list)  # found dead, now exited (names)
    removed: list[str] = field(default_factory=list)  # --rm containers that were running
    dropped_endpoints: list[str] = field(default_factory=list)  # container ids
    started: list[str] = field(default_factory=list)  # names
    failed: list[RestoreFailure] = field(default_factory=list)


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


# -- one container ------------------------------------------------------------------------


def supervised(rec: ContainerRecord, ctx: ServiceContext | None = None) -> bool:
    """Someone still answers for this live record: its monitor runs (or the shim it
    became), its init runs, or its init is a zombie whose parent is a capsa monitor (a
    monitor host that took it over is about to reap it and record how it ended: no
    guessing before that). With ``ctx``, a shim whose host was killed gets a new host,
    which adopts it (``capsa.engine.monitor.shim``)."""
    from capsa.linux.proc import is_alive, stat_fields

    if rec.monitor_pid > 0 and is_alive(rec.monitor_pid, rec.monitor_start or None):
        if ctx is not None:
            _host_for(ctx, rec.monitor_pid)
        return True
    if rec.pid <= 0:
        return False
    if is_alive(rec.pid, rec.pid_start or None):
        return True
    fields = stat_fields(rec.pid)
    if not fields or fields[0] != "Z":
        return False
    if rec.pid_start and int(fields[19]) != rec.pid_start:
        return False
    return _is_monitor(int(fields[1]))


def _host_for(ctx: ServiceContext, monitor: int) -> None:
    """A host for ``monitor`` if it is a shim and none serves the run root (the lock's
    test first: it is the cheaper, about 8 us)."""
    from capsa.engine.monitor import client as monitor_client

    settings = ctx.settings
    if not monitor_client.host_alive(settings.runroot) and _is_shim(monitor):
        monitor_client.ensure_host(settings.runroot, settings.monitor_linger)


def _is_shim(pid: int) -> bool:
    from capsa.engine.monitor.shim import TITLE

    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(TITLE.encode())
    except OSError:
        return False


def _is_monitor(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(b"capsa-monitor")
    except OSError:
        return False


def settle_dead(ctx: ServiceContext, rec: ContainerRecord) -> ContainerRecord:
    """Finish the work of a monitor that died with its container (see the module doc)."""
    _cleanup_runtime(ctx, rec)
    from capsa.engine.containers import netwire

    netwire.detach(ctx, rec.id)
    release_volumes(ctx, rec)
    known = rec.state is State.RESTARTING  # between two runs: the last exit was recorded
    settled = ctx.store.update(
        rec.id,
        State.EXITED,
        exit_code=rec.exit_code if known else None,
        error=rec.error if known else UNKNOWN_EXIT,
        finished_at=rec.finished_at if known else now_rfc3339(),
        pid=0,
        monitor_pid=0,
        monitor_start=0,
    )
    if not known:
        attrs = {"name": rec.name, "image": rec.image_name, "exitCode": "unknown"}
        ctx.events.emit("container", "die", rec.id, attrs)
    return settled


def _cleanup_runtime(ctx: ServiceContext, rec: ContainerRecord) -> None:
    import os

    from capsa.linux.mount import unmount

    try:
        ctx.backend(rec.spec.runtime).delete(rec.id, True)
    except CapsaError:
        pass
    rootfs = ctx.paths(rec.id).rootfs
    if os.path.ismount(rootfs):
        try:
            unmount(rootfs, detach=True)
        except OSError:
            pass


def release_volumes(ctx: ServiceContext, rec: ContainerRecord) -> None:
    for m in rec.spec.mounts:
        if m.type == "volume" and m.source:
            try:
                ctx.volumes.release(m.source, rec.id)
            except CapsaError:
                pass


# -- the whole root --------------------------------------------------------------------------


class RestoreService:
    """``capsa system restore``: settle, clean, bring back (see the module doc)."""

    def __init__(self, ctx: ServiceContext, containers: ContainerService) -> None:
        self.ctx = ctx
        self.containers = containers

    def run(self) -> RestoreReport:
        report = RestoreReport()
        before = sorted(self.ctx.store.list(), key=lambda r: r.created)
        for rec in before:
            self._settle(rec, report)
        self._clean_networks(report)
        for rec in before:
            if self._comes_back(rec):
                self._start(rec, report)
        try:
            self.ctx.networks.teardown_idle()
        except CapsaError as e:
            report.failed.append(RestoreFailure("networks", str(e)))
        return report

    def _settle(self, rec: ContainerRecord, report: RestoreReport) -> None:
        after = self.containers.observe(rec)
        if not is_live(rec.state) or is_live(after.state):
            return
        report.settled.append(rec.name)
        if rec.spec.auto_remove:  # as Docker's daemon does with a --rm container
            try:
                self.containers.remove(rec.id)
                report.removed.append(rec.name)
            except CapsaError as e:
                report.failed.append(RestoreFailure(rec.name, str(e)))

    def _clean_networks(self, report: RestoreReport) -> None:
        networks = self.ctx.networks
        try:
            report.dropped_endpoints = networks.drop_stale_endpoints()
            known = {rec.id for rec in self.ctx.store.list()}
            gone = sorted(networks.store.holders() - known)
            networks.cleanup_stale(known)
            report.dropped_endpoints = sorted({*report.dropped_endpoints, *gone})
        except CapsaError as e:
            report.failed.append(RestoreFailure("networks", str(e)))

    def _comes_back(self, was: ContainerRecord) -> bool:
        from capsa.engine.containers.restart import RestartManager
        from capsa.syntax.policies import parse_restart

        try:
            now = self.ctx.store.get(was.id)
            policy = parse_restart(was.spec.restart)
        except CapsaError:  # removed meanwhile, or a policy this version refuses
            return False
        if is_live(now.state) or not now.started_at:  # running, or never started
            return False
        manager = RestartManager(policy, now.restart_count)
        return manager.restart_on_boot(is_live(was.state), now.stopped_by_user)

    def _start(self, rec: ContainerRecord, report: RestoreReport) -> None:
        try:
            self.containers.start(rec.id)
        except CapsaError as e:
            report.failed.append(RestoreFailure(rec.name, str(e)))
            return
        report.started.append(rec.name)
