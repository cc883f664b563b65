"""Operations on an existing container: state, start, kill, pause, delete, update.

``Runtime`` is what ``capsa-runtime``'s verbs call and what the engine's backend
adapter will call: typed arguments in, typed results or capsa errors out.
"""

from __future__ import annotations

import os
import select
import time

from capsa.errors import Conflict, FailedPrecondition
from capsa.linux.proc import is_alive
from capsa.linux.signals import SIGKILL
from capsa.oci.runtime_spec import OCI_VERSION, Hooks, Resources, Spec
from capsa.record import record
from capsa.runtime import hooks as hooks_mod
from capsa.runtime.cgroup import open_cgroup
from capsa.runtime.create import Created, CreateOptions, create, oci_state
from capsa.runtime.state import ContainerState, StateStore
from capsa.runtime.status import Op, Status, check
from capsa.signames import signal_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cgroups import CgroupManager
    from capsa.runtime.status import StatusName


@record
class ContainerInfo:
    state: ContainerState
    status: StatusName

    def to_runc_json(self, *, with_owner: bool) -> dict[str, Any]:
        """runc's ``containerState``, field for field: its order, ``created`` as Go writes
        a time, ``annotations`` only when there are some (sorted, as Go writes a map),
        and ``owner`` only in ``list`` (runc's ``state`` leaves it empty)."""
        st = self.state
        out: dict[str, Any] = {
            "ociVersion": OCI_VERSION,  # the runtime's, as runc writes its own
            "id": st.id,
            "pid": st.pid if self.status != Status.STOPPED else 0,
            "status": self.status,
            "bundle": st.bundle,
            "rootfs": st.rootfs,
            "created": go_time(st.created),
        }
        if st.annotations:
            out["annotations"] = dict(sorted(st.annotations.items()))
        out["owner"] = st.owner if with_owner else ""
        return out


def go_time(rfc3339: str) -> str:
    """``...T10:00:00.120000000Z`` -> ``...T10:00:00.12Z``: Go's RFC3339Nano drops the
    fraction's trailing zeros (and the fraction when it is zero)."""
    head, dot, frac = rfc3339.partition(".")
    if not dot or not frac.endswith("Z"):
        return rfc3339
    digits = frac[:-1].rstrip("0")
    return f"{head}.{digits}Z" if digits else f"{head}Z"


class Runtime:
    def __init__(self, root: str) -> None:
        self.store = StateStore(root)

    # -- queries ------------------------------------------------------------

    def status_of(self, st: ContainerState) -> StatusName:
        alive = st.pid > 0 and is_alive(st.pid, st.pid_start or None)
        if not alive:
            return Status.STOPPED
        if st.created_status == "creating":
            return Status.CREATING
        if cgroup_of(st).is_frozen():
            return Status.PAUSED
        if os.path.exists(self.store.fifo(st.id)):
            return Status.CREATED
        return Status.RUNNING

    def info(self, cid: str) -> ContainerInfo:
        st = self.store.load(cid)
        return ContainerInfo(st, self.status_of(st))

    def containers(self) -> list[ContainerInfo]:
        out = []
        for cid in self.store.ids():
            try:
                out.append(self.info(cid))
            except Exception:
                continue
        return out

    def spec_of(self, st: ContainerState) -> Spec:
        return Spec.from_json(st.config)

    def _hooks(self, st: ContainerState) -> Hooks | None:
        """The config's hooks; most configs have none, and then it is not typed again."""
        return self.spec_of(st).hooks if st.config.get("hooks") else None

    # -- lifecycle ------------------------------------------------------------

    def create(self, cid: str, opts: CreateOptions) -> Created:
        return create(self.store, cid, opts)

    def start(self, cid: str) -> list[str]:
        info = self.info(cid)
        check(cid, info.status, Op.START)
        fd = os.open(self.store.fifo(cid), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._release_init(info.state, fd)
            os.unlink(self.store.fifo(cid))
            _wait_eof(fd)  # the init's end closes when it execs the user's program
        finally:
            os.close(fd)
        return self._poststart(info.state)

    def _release_init(self, st: ContainerState, fd: int) -> None:
        """Read the init's byte from the exec fifo: it goes on to exec."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = os.read(fd, 1)
            except BlockingIOError:
                select.select([fd], [], [], 0.1)
                continue
            if data:
                return
            # no writer yet: the init is between "ready" and opening the fifo
            if not is_alive(st.pid, st.pid_start or None):
                raise FailedPrecondition(f"container {st.id} exited before it was started")
            time.sleep(0.001)
        raise FailedPrecondition(f"container {st.id} did not start in time")

    def _poststart(self, st: ContainerState) -> list[str]:
        try:
            hooks_mod.run_hooks(self._hooks(st), "poststart", oci_state(st, "running"))
        except FailedPrecondition as e:
            return [str(e)]
        return []

    def kill(self, cid: str, sig: int, all_processes: bool = False) -> None:
        info = self.info(cid)
        check(cid, info.status, Op.KILL)
        cgroup = cgroup_of(info.state)
        if all_processes:
            cgroup.kill_all(sig)
            if info.status == Status.PAUSED and sig == SIGKILL:
                cgroup.thaw()
            return
        try:
            os.kill(info.state.pid, sig)
        except ProcessLookupError:
            if sig == 0:  # the liveness check: the init just went
                raise Conflict(f"container {cid} is not running") from None

    def pause(self, cid: str) -> None:
        info = self.info(cid)
        check(cid, info.status, Op.PAUSE)
        cgroup_of(info.state).freeze()

    def resume(self, cid: str) -> None:
        info = self.info(cid)
        check(cid, info.status, Op.RESUME)
        cgroup_of(info.state).thaw()

    def delete(self, cid: str, force: bool = False) -> list[str]:
        info = self.info(cid)
        check(cid, info.status, Op.FORCE_DELETE if force else Op.DELETE)
        st = info.state
        cgroup = cgroup_of(st)
        if info.status != Status.STOPPED:
            self._kill_everything(st, cgroup)
        elif cgroup.exists() and cgroup.pids():
            # init gone but other processes (no pid namespace): they go with the container
            self._kill_everything(st, cgroup)
        cgroup.destroy()
        warnings: list[str] = []
        try:
            hooks_mod.run_hooks(self._hooks(st), "poststop", oci_state(st, "stopped"))
        except FailedPrecondition as e:
            warnings.append(str(e))
        self.store.remove(cid)
        return warnings

    def _kill_everything(self, st: ContainerState, cgroup: Any) -> None:
        if cgroup.exists():
            cgroup.kill_all(SIGKILL)
            if cgroup.is_frozen():
                cgroup.thaw()
        try:
            os.kill(st.pid, SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not is_alive(st.pid, st.pid_start or None) and not (
                cgroup.exists() and cgroup.pids()
            ):
                return
            time.sleep(0.005)
        raise Conflict(f"container {st.id}: processes did not exit after SIGKILL")

    # -- resources --------------------------------------------------------

    def pids(self, cid: str) -> list[int]:
        st = self.store.load(cid)
        cgroup = cgroup_of(st)
        return sorted(cgroup.pids()) if cgroup.exists() else []

    def update(self, cid: str, resources: Resources) -> list[str]:
        info = self.info(cid)
        check(cid, info.status, Op.UPDATE)
        warnings = cgroup_of(info.state).update(resources)
        self._record_resources(info.state, resources)
        return warnings

    def _record_resources(self, st: ContainerState, resources: Resources) -> None:
        from capsa.oci.codec import to_dict

        linux = st.config.setdefault("linux", {})
        merged = dict(linux.get("resources") or {})
        for key, value in to_dict(resources).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        linux["resources"] = merged
        self.store.save(st)

    def stats(self, cid: str) -> dict[str, Any]:
        info = self.info(cid)
        if info.status == Status.STOPPED:
            raise Conflict(f"container {cid} is not running")
        data: dict[str, Any] = cgroup_of(info.state).stats().to_runc_json()
        return {"type": "stats", "id": cid, "data": data}

    def oom_count(self, cid: str) -> int:
        st = self.store.load(cid)
        cgroup = cgroup_of(st)
        return cgroup.oom_kill_count() if cgroup.exists() else 0


def cgroup_of(st: ContainerState) -> CgroupManager:
    """The container's cgroup, where ``create`` placed it."""
    return open_cgroup(st.cgroups_path, st.cgroup_paths)


def _wait_eof(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 64):
                return
        except BlockingIOError:
            select.select([fd], [], [], 1.0)


__all__ = ["ContainerInfo", "Runtime", "cgroup_of", "go_time", "signal_number"]
