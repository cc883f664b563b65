"""The container service: create, start (a monitor), stop, kill, remove, list, wait.

State lives in the metadata store and is observed, not assumed: a container whose
monitor and init are both gone is reported exited even if nobody recorded it (a
monitor killed with SIGKILL), and cleaned up on the way.
"""

from __future__ import annotations

import os
import time

from capsa.cleanup import CleanupStack
from capsa.engine.containers.names import generate_name, validate_name
from capsa.engine.containers.types import (
    Action,
    ContainerRecord,
    ContainerSpec,
    MountSpec,
    NetworkAttachment,
    PsOptions,
    State,
    check,
    is_live,
)
from capsa.engine.containers.views import ContainerViews
from capsa.errors import CapsaError, Conflict, InvalidArgument, NotFound
from capsa.linux.proc import is_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from capsa.engine.containers.attach import AttachStream
    from capsa.engine.containers.batch import ContainerBatch
    from capsa.engine.containers.exec_watch import ExecSession
    from capsa.engine.containers.types import ExecSpec, ExecStdio
    from capsa.engine.images.service import ImageService
    from capsa.engine.service_context import ServiceContext
    from capsa.engine.system.filters import FilterArgs
    from capsa.progress import ProgressSink


_SIGKILL = 9  # signal.SIGKILL: the signal module costs listing ~0.5 ms to import


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class ContainerService(ContainerViews):
    def __init__(self, ctx: ServiceContext, images: Callable[[], ImageService]) -> None:
        """``images``: the image service, asked for when needed (listing containers
        does not: building it imports and opens the image stores)."""
        self.ctx = ctx
        self._images = images

    @property
    def images(self) -> ImageService:
        return self._images()

    # -- lookup and observed state -------------------------------------------

    def get(self, text: str) -> ContainerRecord:
        return self.observe(self.ctx.store.find(text))

    def observe(self, rec: ContainerRecord) -> ContainerRecord:
        """Correct the recorded state with what the kernel says (``engine.restore``)."""
        if not is_live(rec.state):
            return rec
        from capsa.engine.containers import restore

        if restore.supervised(rec, self.ctx):
            return rec
        # gone without a word (a killed monitor, a reboot): finish its work here
        from capsa.store.space import NoSpace

        try:
            return restore.settle_dead(self.ctx, rec)
        except NoSpace:  # no room to record it: shown as exited all the same (rm works)
            rec.state, rec.pid, rec.exit_code = State.EXITED, 0, None
            rec.error = restore.UNKNOWN_EXIT
            return rec

    def list_containers(self, opts: PsOptions | None = None) -> list[ContainerRecord]:
        from capsa.engine.system.filters import container_matches

        opts = opts or PsOptions()
        out = []
        for rec in self.ctx.store.list():
            rec = self.observe(rec)
            if (
                not opts.all
                and not opts.last
                and rec.state is not State.RUNNING
                and rec.state is not State.PAUSED
                and rec.state is not State.RESTARTING
            ):
                continue
            if container_matches(rec, opts.filters, self.ctx):
                out.append(rec)
        if opts.last:
            out = out[: opts.last]
        return out

    # -- create ------------------------------------------------------------------

    def create(self, spec: ContainerSpec, progress: ProgressSink | None = None) -> ContainerRecord:
        image = self._image(spec.image, progress)
        name = spec.name or generate_name(self.ctx.store.names())
        validate_name(name)
        container_id = os.urandom(32).hex()
        chain_ids = self.images.chain_ids(image)
        spec.mounts = self._volume_mounts(spec, image)
        self._validate(spec)
        self._networking(spec, image)
        with CleanupStack() as cleanup:
            self.ctx.snapshots.prepare(container_id, chain_ids)
            cleanup.push(self.ctx.snapshots.remove_rw, container_id)
            self._create_volumes(spec)
            self.ctx.images.lease(container_id, image.id)
            cleanup.push(self.ctx.images.release, container_id)
            rec = ContainerRecord(
                id=container_id,
                name=name,
                image_id=image.id,
                image_name=spec.image,
                created=now_rfc3339(),
                spec=spec,
                rootfs_key=container_id,
                chain_ids=chain_ids,
            )
            self.ctx.store.add(rec)
            cleanup.push(self.ctx.store.remove, container_id)
            os.makedirs(self.ctx.paths(container_id).data, mode=0o700, exist_ok=True)
            self.ctx.events.emit(
                "container", "create", container_id, {"name": name, "image": spec.image}
            )
        return rec

    def _image(self, text: str, progress: ProgressSink | None) -> Any:
        found = self.ctx.images.find(text)
        if found is not None:
            return found
        from capsa.engine.images.types import PullOptions

        self.images.pull(text, PullOptions(), progress)
        return self.ctx.images.resolve(text)

    def _volume_mounts(self, spec: ContainerSpec, image: Any) -> list[MountSpec]:
        """Give anonymous volumes a name; add the image's VOLUMEs nobody mounts over."""
        from capsa.oci import image_spec

        mounts = []
        for m in spec.mounts:
            if m.type == "volume" and not m.source:
                m.source = os.urandom(32).hex()
                m.options = [*m.options, "anonymous"]
            mounts.append(m)
        for m in self._volumes_from(spec):
            if not any(x.target == m.target for x in mounts):
                mounts.append(m)
        config = image_spec.load_config(self.ctx.content.read(image.id))
        declared = sorted(((config.config.volumes if config.config else None) or {}).keys())
        for target in declared:
            if not any(os.path.normpath(m.target) == os.path.normpath(target) for m in mounts):
                mounts.append(
                    MountSpec(
                        type="volume",
                        target=target,
                        source=os.urandom(32).hex(),
                        options=["anonymous"],
                    )
                )
        return mounts

    def _volumes_from(self, spec: ContainerSpec) -> list[MountSpec]:
        out = []
        for item in spec.volumes_from:
            name, _, mode = item.partition(":")
            other = self.ctx.store.find(name)
            for m in other.spec.mounts:
                if m.type in ("volume", "bind"):
                    copy = MountSpec(
                        type=m.type,
                        target=m.target,
                        source=m.source,
                        readonly=(mode == "ro") or (m.readonly and mode != "rw"),
                        propagation=m.propagation,
                    )
                    out.append(copy)
        return out

    def _create_volumes(self, spec: ContainerSpec) -> None:
        from capsa.engine.volumes.types import VolumeCreateOptions

        for m in spec.mounts:
            if m.type == "volume":
                anonymous = "anonymous" in m.options
                self.ctx.volumes.create(VolumeCreateOptions(name=m.source, anonymous=anonymous))

    def _networking(self, spec: ContainerSpec, image: Any) -> None:
        """The network must exist; -p/-P ports get their random host ports now."""
        from capsa.engine.containers import netwire
        from capsa.oci import image_spec

        name = netwire.network_of(spec)
        if name is not None and name != "bridge":
            self.ctx.networks.get(name)  # NotFound: "network X not found"
        if spec.network_mode.startswith("container:"):
            self.get(spec.network_mode.partition(":")[2])
        config = image_spec.load_config(self.ctx.content.read(image.id))
        exposed = config.config.exposed_ports if config.config else None
        spec.ports = netwire.resolve_ports(spec, exposed)

    def network_connect(
        self, text: str, network: str, aliases: list[str] | None = None, ip: str = ""
    ) -> None:
        """Join another network (``network connect``), now if running, else at start."""
        rec = self.get(text)
        net = self.ctx.networks.get(network)
        mode = rec.spec.network_mode
        if mode == "none":  # dockerd's words
            raise Conflict(
                "container cannot be connected to multiple networks with one of the "
                "networks in private (none) mode"
            )
        if mode == "host" or mode.startswith("container:"):
            raise Conflict(
                "container sharing network namespace with another container or host "
                "cannot be connected to any other network"
            )
        others = [a for a in rec.spec.networks if a.name != net.name]
        joined = NetworkAttachment(net.name, sorted(set(aliases or [])), ip)
        rec.spec.networks = [*others, joined]
        self.ctx.store.update_spec(rec.id, rec.spec)
        if rec.state in (State.RUNNING, State.PAUSED) and rec.pid:
            self.ctx.networks.connect(net.name, rec.id, rec.name, rec.pid, aliases or [], ip)
        self.ctx.events.emit("network", "connect", net.id, {"container": rec.id, "name": net.name})

    def network_disconnect(self, text: str, network: str, force: bool = False) -> None:
        rec = self.get(text)
        net = self.ctx.networks.get(network)
        rec.spec.networks = [a for a in rec.spec.networks if a.name != net.name]
        if rec.spec.network_mode == net.name:
            rec.spec.network_mode = "none"
        self.ctx.store.update_spec(rec.id, rec.spec)
        self.ctx.networks.disconnect(net.name, rec.id, rec.pid)
        self.ctx.events.emit(
            "network", "disconnect", net.id, {"container": rec.id, "name": net.name}
        )

    def _validate(self, spec: ContainerSpec) -> None:
        from capsa.engine.containers import specgen
        from capsa.syntax.policies import parse_log_opts, parse_on_failure, parse_restart

        policy = parse_restart(spec.restart)
        if spec.auto_remove and policy.name != "no":
            raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
        specgen.capabilities(spec)  # unknown capability names fail now, not at start
        specgen.resources(spec)
        specgen.check_sysctls(spec)
        specgen.check_modes(spec)
        specgen.rlimits(spec)
        parse_log_opts(spec.log_opts)
        if spec.healthcheck:
            parse_on_failure(spec.healthcheck.on_failure)
        for m in spec.mounts:
            if not m.target.startswith("/"):
                raise InvalidArgument(
                    f"invalid mount path: '{m.target}' mount path must be absolute"
                )

    # -- start / stop ---------------------------------------------------------------

    def start(self, text: str, wait_attach: bool = False) -> tuple[ContainerRecord, Any]:
        """Start the container's monitor. With ``wait_attach`` the monitor creates the
        container and waits for one attach client before starting it; the caller gets a
        ``Launch`` to connect through before calling ``Launch.wait_ready``."""
        rec = self.get(text)
        if rec.state in (State.RUNNING, State.PAUSED):
            return rec, None
        check(Action.START, rec.state, rec.name, rec.id)
        self.ctx.store.update(rec.id, stopped_by_user=False, restarting=False)
        from capsa.engine.containers.launch import Launch

        launch = Launch(self, rec, wait_attach)
        if wait_attach:  # connected: the monitor starts the container once it is greeted
            from capsa.engine.containers.attach import emit_attach

            emit_attach(self, rec)
        else:
            launch.wait_ready()
            rec = self.ctx.store.get(rec.id)
        return rec, launch

    def stop(
        self, text: str, timeout: int | None = None, sig: int | None = None
    ) -> ContainerRecord:
        """Send the stop signal (``sig``, else the container's), then SIGKILL after the
        grace period (``timeout``, else the container's, else 10 s)."""
        rec = self.get(text)
        try:
            return self._stop(rec, timeout, sig)
        except NotFound:
            if self._exists(rec.id):
                raise
            return _gone(rec)  # an --rm container, removed as it stopped: stopped

    def _stop(
        self, rec: ContainerRecord, timeout: int | None, sig: int | None = None
    ) -> ContainerRecord:
        if not is_live(rec.state):
            if rec.state is not State.EXITED:
                self.ctx.store.update(rec.id, stopped_by_user=True)
            return rec
        self.ctx.store.update(rec.id, stopped_by_user=True)
        if rec.state is State.RESTARTING:
            rec = self._settle(rec)
            if rec.state is not State.RUNNING and rec.state is not State.PAUSED:
                return rec
        from capsa.engine.containers.specgen import stop_signal
        from capsa.oci import image_spec

        config = image_spec.load_config(self.ctx.content.read(rec.image_id))
        if sig is None:
            sig = stop_signal(rec.spec, config)
        grace = (
            timeout
            if timeout is not None
            else (rec.spec.stop_timeout if rec.spec.stop_timeout is not None else 10)
        )
        backend = self.ctx.backend(rec.spec.runtime)
        if rec.state is State.PAUSED:
            backend.resume(rec.id)
        # Docker's events of a stop: kill (each signal sent), die, then stop
        attrs = {"name": rec.name, "image": rec.image_name}
        self.ctx.events.emit("container", "kill", rec.id, {**attrs, "signal": str(sig)})
        self._signal(rec, sig)
        if not self._wait_exit(rec, float(grace)):
            self.ctx.events.emit("container", "kill", rec.id, {**attrs, "signal": str(_SIGKILL)})
            self._signal(rec, _SIGKILL, all_processes=True)
        try:
            return self._wait_down(rec, 10.0)
        finally:  # also when an --rm container is gone already
            self.ctx.events.emit("container", "stop", rec.id, attrs)

    def _settle(self, rec: ContainerRecord, timeout: float = 10.0) -> ContainerRecord:
        """A restarting container either gives up (it saw the stop) or comes back up
        (the stop arrived while it was being started): wait to know which."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rec = self.get(rec.id)
            if rec.state in (State.RUNNING, State.PAUSED):
                return rec
            if not is_live(rec.state) and not (
                rec.monitor_pid and is_alive(rec.monitor_pid, rec.monitor_start or None)
            ):
                return rec
            time.sleep(0.02)
        return rec

    def _signal(self, rec: ContainerRecord, sig: int, all_processes: bool = False) -> None:
        try:
            self.ctx.backend(rec.spec.runtime).kill(rec.id, sig, all_processes)
        except CapsaError:
            if rec.pid and is_alive(rec.pid, rec.pid_start or None):
                os.kill(rec.pid, sig)

    def _wait_exit(self, rec: ContainerRecord, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not (rec.pid and is_alive(rec.pid, rec.pid_start or None)):
                return True
            time.sleep(0.02)
        return False

    def _wait_down(self, rec: ContainerRecord, timeout: float) -> ContainerRecord:
        """Until the monitor has recorded the exit (and is gone, unless restarting)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(rec.id)
            if not is_live(current.state) and not (
                current.monitor_pid and is_alive(current.monitor_pid, current.monitor_start or None)
            ):
                return current
            if time.monotonic() > deadline:
                return current
            time.sleep(0.02)

    def exec(self, text: str, spec: ExecSpec, stdio: ExecStdio) -> ExecSession | None:
        """Another process in the running container, with the caller's ``stdio``: its
        session to pump and wait for (None with ``spec.detach``)."""
        from capsa.engine.containers.execs import start_exec

        return start_exec(self, text, spec, stdio)

    def attach(self, text: str) -> AttachStream:
        """A connection to the running container's stdio (Docker's ``attach`` event)."""
        from capsa.engine.containers.attach import AttachStream, connect_client

        rec = self.get(text)
        check(Action.ATTACH, rec.state, rec.name, rec.id)
        if rec.state is not State.RUNNING:
            raise Conflict("You cannot attach to a stopped container, start it first")
        return AttachStream(connect_client(self, rec))

    def resize(self, text: str, rows: int, cols: int) -> None:
        """Set the running container's terminal size (nothing without a terminal)."""
        from capsa.engine.containers.attach import AttachStream, connect_client

        rec = self.get(text)
        if rec.state is not State.RUNNING:
            raise Conflict(f"container {rec.id} is not running")
        if not rec.spec.tty:
            return
        stream = AttachStream(connect_client(self, rec, event=False))
        try:
            stream.hello(False, False, False, size=(rows, cols))
        finally:
            stream.close()

    def kill(self, text: str, sig: int) -> ContainerRecord:
        rec = self.get(text)
        check(Action.KILL, rec.state, rec.name, rec.id)
        try:
            self.ctx.store.update(rec.id, stopped_by_user=True)
        except NotFound:
            if self._exists(rec.id):
                raise
            return _gone(rec)  # an --rm container that ended and went meanwhile
        self._signal(rec, sig)
        self.ctx.events.emit("container", "kill", rec.id, {"name": rec.name, "signal": str(sig)})
        return rec

    def proxy_signal(self, text: str, sig: int) -> None:
        """Pass on a signal an attached client received (``--sig-proxy``): unlike
        ``kill`` it is no request to stop, so the restart policy still applies."""
        rec = self.get(text)
        if is_live(rec.state):
            self._signal(rec, sig)

    def restart(
        self, text: str, timeout: int | None = None, sig: int | None = None
    ) -> ContainerRecord:
        """Stop, then start: an ``--rm`` container is kept through it, as in Docker."""
        rec = self.get(text)
        if rec.spec.auto_remove:
            self.ctx.store.update(rec.id, restarting=True)  # read by its monitor's finish
        rec = self.stop(rec.id, timeout, sig)
        rec, _ = self.start(rec.id)
        self.ctx.events.emit("container", "restart", rec.id, {"name": rec.name})
        return rec

    def pause(self, text: str) -> None:
        rec = self.get(text)
        check(Action.PAUSE, rec.state, rec.name, rec.id)
        self.ctx.backend(rec.spec.runtime).pause(rec.id)
        self.ctx.store.update(rec.id, State.PAUSED)
        self.ctx.events.emit("container", "pause", rec.id, {"name": rec.name})

    def unpause(self, text: str) -> None:
        rec = self.get(text)
        check(Action.UNPAUSE, rec.state, rec.name, rec.id)
        self.ctx.backend(rec.spec.runtime).resume(rec.id)
        self.ctx.store.update(rec.id, State.RUNNING)
        self.ctx.events.emit("container", "unpause", rec.id, {"name": rec.name})

    def wait(self, text: str, condition: str = "not-running") -> int | None:
        """The exit code once the container stops (``removed``: once it is removed);
        None when nobody saw how it ended (``engine.restore``)."""
        began = time.time()
        return self.wait_for(self.get(text), condition, began)

    def wait_for(
        self,
        rec: ContainerRecord,
        condition: str,
        began: float,
        gone: Callable[[], bool] | None = None,
    ) -> int | None:
        """``wait`` of a container already looked up (at ``began``). ``next-exit``
        waits for an exit after that look-up: a container not running then must start
        and end (Docker's ``run`` asks before it starts the container). Once ``gone()``
        says the caller has left, it returns None at once."""
        first = rec
        while (
            condition == "removed"
            or _still_up(rec)
            or (condition == "next-exit" and not _exited_since(first, rec))
        ):
            time.sleep(0.05)
            if gone is not None and gone():
                return None
            try:
                rec = self.get(rec.id)
            except NotFound:  # removed (--rm): the last record seen may predate the exit
                return self._exit_of_removed(rec, began)
        return rec.exit_code

    def _exit_of_removed(self, last: ContainerRecord, since: float) -> int | None:
        """The exit code of a container removed while waited on: what its monitor wrote
        in the ``die`` event, if it died after ``since``; else its last record's."""
        code = None if is_live(last.state) else last.exit_code
        for event in self.ctx.events.read(since=since - 1.0, match=_died(last.id)):
            text = event.get("Actor", {}).get("Attributes", {}).get("exitCode", "")
            code = int(text) if text.lstrip("-").isdigit() else None
        return code

    @property
    def each(self) -> ContainerBatch:
        """The verbs that take several names, a report per name (``stop a b c``)."""
        from capsa.engine.containers.batch import ContainerBatch

        return ContainerBatch(self)

    # -- remove ------------------------------------------------------------------------

    def remove(self, text: str, force: bool = False, volumes: bool = False) -> str:
        rec = self.get(text)
        try:
            self._remove(rec, force, volumes)
        except NotFound:
            if self._exists(rec.id):
                raise  # else an --rm container removed meanwhile: removed all the same
        return rec.name

    def _remove(self, rec: ContainerRecord, force: bool, volumes: bool) -> None:
        from capsa.engine.containers.removal import remove_container

        if is_live(rec.state):
            if not force:
                check(Action.REMOVE, rec.state, rec.name, rec.id)
            self.ctx.store.update(rec.id, stopped_by_user=True)
            if rec.state is State.PAUSED:
                self.ctx.backend(rec.spec.runtime).resume(rec.id)
            deadline = time.monotonic() + 15.0
            while is_live(rec.state) and time.monotonic() < deadline:
                # again each round: a restarting container may have come back meanwhile
                self._signal(rec, _SIGKILL, all_processes=True)
                rec = self._wait_down(rec, 1.0)
            if is_live(rec.state):
                raise Conflict(f"could not kill container {rec.name}")
        remove_container(self.ctx, rec, volumes)

    def _exists(self, container_id: str) -> bool:
        try:
            self.ctx.store.get(container_id)
        except NotFound:
            return False
        return True

    def rename(self, text: str, name: str) -> None:
        validate_name(name)
        rec = self.get(text)
        if name == rec.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        self.ctx.store.rename(rec.id, name)
        self.ctx.events.emit("container", "rename", rec.id, {"name": name, "oldName": rec.name})

    def prune(self, filters: FilterArgs | None = None) -> tuple[list[str], int]:
        """Remove stopped containers (``until``/``label``/``label!`` filters, as
        dockerd's); their ids and the bytes their rw layers held."""
        from capsa.engine.containers.removal import remove_container
        from capsa.engine.system.filters import CONTAINER_PRUNE, parse_prune

        parsed = parse_prune(filters, CONTAINER_PRUNE)
        deleted, freed = [], 0
        for rec in self.list_containers(PsOptions(all=True)):
            if is_live(rec.state) or not parsed.matches(rec.spec.labels, rec.created):
                continue
            freed += self.rw_size(rec)
            remove_container(self.ctx, rec, volumes=False)
            deleted.append(rec.id)
        return deleted, freed


def _gone(rec: ContainerRecord) -> ContainerRecord:
    """The last record of a container removed meanwhile (``--rm``): it no longer runs."""
    rec.state, rec.pid = State.EXITED, 0
    return rec


def _exited_since(first: ContainerRecord, rec: ContainerRecord) -> bool:
    """Whether ``rec`` ended after ``first`` was seen (it was running, or it has finished
    once more since)."""
    return _still_up(first) or rec.finished_at != first.finished_at


def _still_up(rec: ContainerRecord) -> bool:
    """Running, or its monitor still at work on its exit (recording it, cleaning up)."""
    return is_live(rec.state) or bool(
        rec.monitor_pid
        and is_alive(rec.monitor_pid, rec.monitor_start or None)
        and rec.state is not State.CREATED
    )


def _died(container_id: str) -> Any:
    return lambda e: e.get("id") == container_id and e.get("Action") == "die"
