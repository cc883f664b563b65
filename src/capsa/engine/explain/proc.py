"""``capsa explain`` from /proc: namespaces, capabilities, seccomp and the user.

A ``ProcView`` reads one process's files under a /proc root, so that tests run these
builders on fake trees; the host is pid 1, or this process when pid 1 is unreadable.
"""

from __future__ import annotations

import json
import os
import stat

from capsa.engine.explain.types import (
    NAMESPACES,
    OWN,
    SECCOMP_MODES,
    SHARED,
    STOPPED,
    UNKNOWN,
    CapabilityReport,
    CapSet,
    Namespace,
    SeccompReport,
    UserReport,
)
from capsa.errors import CapsaError
from capsa.linux import capabilities as caps
from capsa.oci import runtime_spec as oci
from capsa.oci.codec import to_dict

_OCI_NAMESPACE = {"net": "network", "mnt": "mount"}
_CAP_SETS = ("effective", "permitted", "bounding", "inheritable", "ambient")


class ProcView:
    """One process's files under a /proc root."""

    def __init__(self, proc: str, pid: int | str) -> None:
        self.proc = proc
        self.pid = pid
        self.base = os.path.join(proc, str(pid))

    def read(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.base, name), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def ns_inode(self, kind: str) -> int | None:
        """The inode of ``ns/<kind>`` from its link text, e.g. ``net:[4026531840]``."""
        try:
            text = os.readlink(os.path.join(self.base, "ns", kind))
        except OSError:
            return None
        _, _, rest = text.partition("[")
        return int(rest[:-1]) if rest.endswith("]") and rest[:-1].isdigit() else None

    def status(self) -> dict[str, str]:
        out = {}
        for line in (self.read("status") or "").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                out[key] = value.strip()
        return out

    def start_time(self) -> int | None:
        raw = self.read("stat")
        fields = raw[raw.rfind(")") + 2 :].split() if raw else []
        return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def host_view(proc: str = "/proc") -> tuple[ProcView, str]:
    """pid 1 stands for the host; this process when pid 1's namespaces are unreadable."""
    view = ProcView(proc, 1)
    if view.ns_inode("mnt") is not None:
        return view, "pid 1"
    return ProcView(proc, "self"), f"this process (pid {os.getpid()})"


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _ids(text: str | None) -> list[int]:
    return [int(t) for t in (text or "").split() if t.isdigit()]


# -- namespaces -------------------------------------------------------------------------


def _asked_namespace(kind: str, asked: list[oci.Namespace] | None) -> str:
    if asked is None:
        return ""
    oci_type = _OCI_NAMESPACE.get(kind, kind)
    ns = next((n for n in asked if n.type == oci_type), None)
    if ns is None:
        return "host"
    return f"join {ns.path}" if ns.path else "new"


def namespace_report(
    view: ProcView | None, host: ProcView, asked: list[oci.Namespace] | None
) -> list[Namespace]:
    rows = []
    for kind in NAMESPACES:
        theirs = view.ns_inode(kind) if view else None
        ours = host.ns_inode(kind)
        if view is None:
            status = STOPPED
        elif theirs is None or ours is None:
            status = UNKNOWN
        else:
            status = SHARED if theirs == ours else OWN
        rows.append(Namespace(kind, theirs, ours, status, _asked_namespace(kind, asked)))
    return rows


# -- capabilities and seccomp ----------------------------------------------------------


def last_cap(proc: str = "/proc") -> int:
    try:
        with open(os.path.join(proc, "sys/kernel/cap_last_cap")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(caps.CAPABILITIES.values())


def capability_report(container: caps.CapSets, host: caps.CapSets, last: int) -> CapabilityReport:
    """Sets by name; Docker's default and the kernel's full set against the bounding set."""
    full = (1 << (last + 1)) - 1
    default = caps.parse(caps.DOCKER_DEFAULT_CAPS, last=last)
    bounding = container.bounding
    return CapabilityReport(
        sets=[
            CapSet(n, caps.names(getattr(container, n)), caps.names(getattr(host, n)))
            for n in _CAP_SETS
        ],
        dropped=caps.names(default & ~bounding),
        added=caps.names(bounding & ~default),
        not_granted=caps.names(full & ~bounding),
        kernel_total=last + 1,
    )


def _same_json(a: object, b: object) -> bool:
    return json.dumps(to_dict(a), sort_keys=True) == json.dumps(to_dict(b), sort_keys=True)


def profile_kind(config: oci.Seccomp | None, capability_names: list[str]) -> str:
    if config is None:
        return "unconfined"
    from capsa.oci.seccomp_default import default_profile

    return "default" if _same_json(config, default_profile(set(capability_names))) else "custom"


def seccomp_report(
    status: dict[str, str] | None, host: dict[str, str], spec: oci.Spec | None
) -> SeccompReport:
    process = spec.process if spec else None
    config = spec.linux.seccomp if spec and spec.linux else None
    bounding = (process.capabilities.bounding if process and process.capabilities else None) or []
    mode = _int(status.get("Seccomp")) if status is not None else None
    host_mode = _int(host.get("Seccomp"))
    nnp = _int(status.get("NoNewPrivs")) if status is not None else None
    host_nnp = _int(host.get("NoNewPrivs"))
    return SeccompReport(
        mode=mode,
        mode_name=SECCOMP_MODES.get(mode, "") if mode is not None else STOPPED,
        filters=_int(status.get("Seccomp_filters")) if status is not None else None,
        host_mode=host_mode,
        host_mode_name=SECCOMP_MODES.get(host_mode, "") if host_mode is not None else UNKNOWN,
        profile=profile_kind(config, bounding) if spec else UNKNOWN,
        default_action=config.default_action if config else "",
        rules=len(config.syscalls or []) if config else 0,
        syscalls=sum(len(r.names) for r in config.syscalls or []) if config else 0,
        no_new_privs=None if nnp is None else nnp == 1,
        host_no_new_privs=None if host_nnp is None else host_nnp == 1,
        no_new_privs_asked=bool(process and process.no_new_privileges),
    )


# -- user ---------------------------------------------------------------------------------


def _effective(text: str | None) -> int | None:
    """The effective id of a status ``Uid:``/``Gid:`` line (real, effective, saved, fs)."""
    ids = _ids(text)
    return ids[1] if len(ids) > 1 else (ids[0] if ids else None)


def map_id(id_map: str | None, inside: int | None) -> int | None:
    """``inside`` through a uid_map/gid_map (``inside outside count`` lines)."""
    for line in (id_map or "").splitlines():
        parts = _ids(line)
        if inside is not None and len(parts) == 3 and parts[0] <= inside < parts[0] + parts[2]:
            return parts[1] + inside - parts[0]
    return None


def passwd_name(view: ProcView, uid: int | None) -> str:
    """The user name of ``uid`` in the container's /etc/passwd, resolved inside its root."""
    from capsa.linux import safepath

    if uid is None:
        return ""
    try:
        root_fd = safepath.open_root(os.path.join(view.base, "root"))
        try:
            fd = safepath.open_in_root(root_fd, "/etc/passwd", os.O_RDONLY | os.O_NONBLOCK)
        finally:
            os.close(root_fd)
    except CapsaError:
        return ""
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device would hang or lie
        os.close(fd)
        return ""
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(":")
            if len(parts) > 2 and parts[2] == str(uid):
                return parts[0]
    return ""


def user_report(view: ProcView | None, spec: oci.Spec | None, asked: str) -> UserReport:
    user = spec.process.user if spec and spec.process else None
    asked = asked or (f"{user.uid}:{user.gid}" if user else "")
    if view is None:
        uid, gid = (user.uid, user.gid) if user else (None, None)
        return UserReport(
            uid, gid, groups=list(user.additional_gids or []) if user else [], asked=asked
        )
    status = view.status()
    uid, gid = _effective(status.get("Uid")), _effective(status.get("Gid"))
    uid_map, gid_map = view.read("uid_map"), view.read("gid_map")
    return UserReport(
        uid,
        gid,
        name=passwd_name(view, uid),
        groups=_ids(status.get("Groups")),
        host_uid=map_id(uid_map, uid),
        host_gid=map_id(gid_map, gid),
        uid_map=[" ".join(line.split()) for line in (uid_map or "").splitlines()],
        gid_map=[" ".join(line.split()) for line in (gid_map or "").splitlines()],
        asked=asked,
    )
