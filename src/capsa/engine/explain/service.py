"""``capsa explain``: what makes a container a container, read back from the kernel.

Every section puts the container's init process side by side with the host (pid 1,
or this process when pid 1's namespaces cannot be read): namespaces, the cgroup limits
asked (the OCI config the container was started with) and in force (read back from
the cgroup files), capabilities, seccomp, mounts, root filesystem layers and the user.

The builders take the /proc root as a parameter so that tests run them on fake trees;
``explain`` wires them to a container record. A stopped container is explained from
its configuration alone.

The sections are built in ``explain.proc`` (namespaces, capabilities, seccomp, user),
``explain.cgroup`` and ``explain.mounts`` (mounts, root filesystem) into the records of
``explain.types``; this module re-exports them all.
"""

from __future__ import annotations

import json
import os

from capsa.engine.containers.types import is_live
from capsa.engine.explain.cgroup import asked_limits, cgroup_report, plan_warnings
from capsa.engine.explain.mounts import (
    MountInfo,
    mount_report,
    overlay_dirs,
    parse_mountinfo,
    rootfs_report,
)
from capsa.engine.explain.proc import (
    ProcView,
    capability_report,
    host_view,
    last_cap,
    map_id,
    namespace_report,
    passwd_name,
    profile_kind,
    seccomp_report,
    user_report,
)
from capsa.engine.explain.types import (
    NAMESPACES,
    OWN,
    SECCOMP_MODES,
    SHARED,
    STOPPED,
    UNKNOWN,
    CapabilityReport,
    CapSet,
    CgroupDir,
    CgroupReport,
    Explanation,
    Layer,
    Limit,
    MountReport,
    MountRow,
    Namespace,
    RootfsReport,
    SeccompReport,
    Usage,
    UserReport,
)
from capsa.errors import CapsaError
from capsa.linux import capabilities as caps
from capsa.oci import runtime_spec as oci
from capsa.oci.codec import from_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsa.cgroups import CgroupManager
    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.service_context import ServiceContext

__all__ = [
    "NAMESPACES",
    "OWN",
    "SECCOMP_MODES",
    "SHARED",
    "STOPPED",
    "UNKNOWN",
    "CapSet",
    "CapabilityReport",
    "CgroupDir",
    "CgroupReport",
    "Explanation",
    "Layer",
    "Limit",
    "MountInfo",
    "MountReport",
    "MountRow",
    "Namespace",
    "ProcView",
    "RootfsReport",
    "SeccompReport",
    "Usage",
    "UserReport",
    "asked_limits",
    "capability_report",
    "cgroup_report",
    "explain",
    "host_view",
    "last_cap",
    "live_view",
    "load_config",
    "map_id",
    "mount_report",
    "namespace_report",
    "overlay_dirs",
    "parse_mountinfo",
    "passwd_name",
    "plan_warnings",
    "profile_kind",
    "rootfs_report",
    "seccomp_report",
    "user_report",
]


def load_config(ctx: ServiceContext, rec: ContainerRecord) -> tuple[oci.Spec | None, str]:
    """The OCI config the container was (last) started with, else one generated now."""
    path = os.path.join(ctx.paths(rec.id).bundle, "config.json")
    try:
        with open(path, "rb") as f:
            return from_dict(oci.Spec, json.loads(f.read())), "bundle"
    except FileNotFoundError:
        pass
    except (OSError, ValueError, CapsaError):
        return None, "none"
    from capsa.engine.containers import specgen
    from capsa.oci import image_spec

    try:
        image = image_spec.load_config(ctx.content.read(rec.image_id))
        inputs = specgen.Inputs(container_id=rec.id, rootfs=ctx.paths(rec.id).rootfs, image=image)
        return specgen.generate(rec.spec, inputs), "generated"
    except (CapsaError, OSError):
        return None, "none"


def live_view(rec: ContainerRecord, proc: str = "/proc") -> ProcView | None:
    """The container's init, if it is running (and is still the process recorded)."""
    if not is_live(rec.state) or rec.pid <= 0:
        return None
    view = ProcView(proc, rec.pid)
    started = view.start_time()
    raw = view.read("stat") or ""
    if started is None or (rec.pid_start and started != rec.pid_start):
        return None
    return None if raw[raw.rfind(")") + 2 :][:1] in ("Z", "X") else view


def _cgroup(
    spec: oci.Spec | None,
    rec: ContainerRecord,
    view: ProcView | None,
    open_cgroup: Callable[[str], CgroupManager] | None,
    notes: list[str],
) -> CgroupReport | None:
    linux = spec.linux if spec else None
    path = (linux.cgroups_path if linux else None) or f"/capsa-{rec.id}"
    if open_cgroup is None:
        from capsa.cgroups import open_manager

        open_cgroup = open_manager
    try:
        return cgroup_report(open_cgroup(path), linux.resources if linux else None, view)
    except CapsaError as e:
        notes.append(f"cgroup {path}: {e}")
        return None


def _notes(rec: ContainerRecord, running: bool, source: str) -> list[str]:
    notes = []
    if not running:
        state = rec.state.value
        notes.append(f"container {rec.name} is not running ({state}): showing its configuration")
    if source == "generated":
        notes.append("never started: configuration generated from its settings")
    elif source == "none":
        notes.append("no configuration found")
    return notes


def _capabilities(view: ProcView | None, host: ProcView, spec: oci.Spec | None) -> CapabilityReport:
    asked = spec.process.capabilities if spec and spec.process else None
    theirs = caps.parse_status(view.read("status") or "") if view else caps.from_spec(asked)
    host_caps = caps.parse_status(host.read("status") or "")
    return capability_report(theirs, host_caps, last_cap(host.proc))


def explain(
    ctx: ServiceContext,
    rec: ContainerRecord,
    *,
    proc: str = "/proc",
    open_cgroup: Callable[[str], CgroupManager] | None = None,
) -> Explanation:
    """Everything that makes ``rec`` a container, next to the host's view."""
    spec, source = load_config(ctx, rec)
    view = live_view(rec, proc)
    host, host_label = host_view(proc)
    pid, running = (rec.pid, True) if view else (0, False)
    out = Explanation(
        rec.id, rec.name, rec.image_name, rec.image_id, rec.state.value, pid, running,
        host_label, source, _notes(rec, running, source),
    )  # fmt: skip
    linux = spec.linux if spec else None
    out.namespaces = namespace_report(view, host, linux.namespaces if linux else None)
    out.cgroup = _cgroup(spec, rec, view, open_cgroup, out.notes)
    out.capabilities = _capabilities(view, host, spec)
    out.seccomp = seccomp_report(view.status() if view else None, host.status(), spec)
    mountinfo = view.read("mountinfo") if view else None
    out.mounts = mount_report(mountinfo, spec, rec.spec.mounts, len(rec.chain_ids))
    out.rootfs = rootfs_report(ctx, rec, bool(spec and spec.root and spec.root.readonly))
    out.user = user_report(view, spec, rec.spec.user)
    return out
