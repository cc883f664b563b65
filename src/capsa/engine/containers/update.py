"""``update``: change a container's resource limits and restart policy.

The stored spec changes (a stopped container gets the new limits at its next start),
and a running or paused container's cgroup is updated at once through its runtime
backend, with the OCI resources specgen makes from the new spec. Only the options
given change, as with ``docker update``.
"""

from __future__ import annotations

import copy

from capsa.errors import CapsaError, InvalidArgument
from capsa.record import fields, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.types import ContainerRecord, ContainerSpec
    from capsa.engine.service_context import ServiceContext
    from capsa.oci.runtime_spec import Resources


@record
class ResourceUpdate:
    """What to change; None leaves a setting as it is."""

    memory: int | None = None
    memory_swap: int | None = None  # -1: unlimited swap
    memory_reservation: int | None = None
    nano_cpus: int | None = None  # --cpus * 1e9
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None  # 0 or -1: unlimited
    blkio_weight: int | None = None
    network_rate_in: int | None = None  # bits per second, 0 = no limit
    network_rate_out: int | None = None
    restart: str | None = None

    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def _check_memory(spec: ContainerSpec, changes: ResourceUpdate) -> None:
    r = spec.resources
    if changes.memory and changes.memory < 6 * 1024 * 1024:
        raise InvalidArgument("minimum memory limit allowed is 6MB")
    if (
        changes.memory
        and changes.memory_swap is None
        and r.memory_swap > 0
        and changes.memory > r.memory_swap
    ):
        raise InvalidArgument(
            "memory limit should be smaller than already set memoryswap limit, "
            "update the memoryswap at the same time"
        )
    if changes.blkio_weight and not 10 <= changes.blkio_weight <= 1000:
        raise InvalidArgument("range of blkio weight is from 10 to 1000")


def _check_restart(spec: ContainerSpec, text: str) -> None:
    from capsa.syntax.policies import parse_restart

    if parse_restart(text).name != "no" and spec.auto_remove:
        raise InvalidArgument(
            "restart policy cannot be updated because autoremove is enabled for the container"
        )


def apply_changes(spec: ContainerSpec, changes: ResourceUpdate) -> ContainerSpec:
    """A copy of ``spec`` with ``changes``; raises InvalidArgument on conflicts."""
    _check_memory(spec, changes)
    out = copy.deepcopy(spec)
    r = out.resources
    for name in (
        "memory",
        "memory_swap",
        "memory_reservation",
        "nano_cpus",
        "cpu_shares",
        "cpu_quota",
        "cpu_period",
        "cpuset_cpus",
        "cpuset_mems",
        "blkio_weight",
        "network_rate_in",
        "network_rate_out",
    ):
        value = getattr(changes, name)
        if value is not None:
            setattr(r, name, value)
    if changes.pids_limit is not None:
        r.pids_limit = changes.pids_limit if changes.pids_limit > 0 else -1
    if changes.restart is not None:
        _check_restart(out, changes.restart)
        out.restart = changes.restart
    cgroup_resources(out)  # conflicts (--cpus with --cpu-quota, swap < memory) fail here
    return out


def cgroup_resources(spec: ContainerSpec) -> Resources:
    """The resources to write into a live cgroup: everything but the device rules."""
    from capsa.engine.containers.specgen import resources

    res = resources(spec)
    res.devices = None
    return res


def update_container(
    ctx: ServiceContext, rec: ContainerRecord, changes: ResourceUpdate
) -> list[str]:
    """Store the new spec and apply it to a live container; return the warnings."""
    from capsa.engine.containers.types import State, is_live

    spec = apply_changes(rec.spec, changes)
    warnings: list[str] = []
    if not _only_restart(changes) and is_live(rec.state):
        try:
            warnings = ctx.backend(spec.runtime).update(rec.id, cgroup_resources(spec))
        except CapsaError:
            # it stopped meanwhile, or restarts (no cgroup between two runs): the next
            # start applies the stored spec
            if ctx.store.get(rec.id).state in (State.RUNNING, State.PAUSED):
                raise
    rates = (changes.network_rate_in, changes.network_rate_out)
    if rates != (None, None) and is_live(rec.state):
        ctx.networks.set_rate(
            rec.id, spec.resources.network_rate_in, spec.resources.network_rate_out
        )
    ctx.store.update_spec(rec.id, spec)
    ctx.events.emit("container", "update", rec.id, {"name": rec.name})
    return list(warnings or [])


def _only_restart(changes: ResourceUpdate) -> bool:
    return all(getattr(changes, f.name) is None for f in fields(changes) if f.name != "restart")
