"""``capsa explain``: what makes a container a container, read back from the kernel.

Every section puts the container's init process side by side with the host (pid 1,
or this process when pid 1's namespaces cannot be read): namespaces, the cgroup limits
asked (the OCI config the container was started with) and in force (read back from
the cgroup files), capabilities, seccomp, mounts, root filesystem layers and the user.

The builders take the /proc root as a parameter so that tests run them on fake trees;
``explain`` wires them to a container record. A stopped container is explained from
its configuration alone.
"""

from __future__ import annotations

import json
import os
import stat

from capsa.engine.container_types import is_live
from capsa.errors import CapsaError
from capsa.linux import capabilities as caps
from capsa.oci import runtime_spec as oci
from capsa.oci.codec import from_dict, to_dict
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsa.cgroups import CgroupManager
    from capsa.cgroups.stats import CgroupStats
    from capsa.engine.container_types import ContainerRecord, MountSpec
    from capsa.engine.service_context import ServiceContext

NAMESPACES = ("pid", "net", "mnt", "ipc", "uts", "user", "cgroup", "time")
_OCI_NAMESPACE = {"net": "network", "mnt": "mount"}
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}
_CAP_SETS = ("effective", "permitted", "bounding", "inheritable", "ambient")
_ETC_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")
_UNLIMITED = 1 << 62
SHARED, OWN, UNKNOWN, STOPPED = "shared with host", "own", "unknown", "not running"


# -- the report ---------------------------------------------------------------------


@record
class Namespace:
    kind: str  # pid, net, mnt, ipc, uts, user, cgroup, time
    container: int | None  # inode of /proc/<pid>/ns/<kind>
    host: int | None
    status: str  # own | shared with host | unknown | not running
    asked: str = ""  # from the config: new | host | join <path>


@record
class Limit:
    name: str  # in spec terms, e.g. memory.limit
    file: str  # the cgroup file holding it ("" when not running)
    asked: str
    in_force: str | None
    ok: bool


@record
class CgroupDir:
    hierarchy: str  # memory, cpu,cpuacct, unified, "" (v2 root)
    fstype: str
    host_path: str
    member: bool | None = None  # the init is in this cgroup (None: not running)


@record
class Usage:
    memory: int | None = None
    memory_max: int | None = None
    memory_limit: int | None = None  # None: unlimited
    pids: int | None = None
    pids_limit: int | None = None
    cpu_ns: int | None = None
    oom_kills: int | None = None


@record
class CgroupReport:
    version: int
    path: str
    dirs: list[CgroupDir] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the host cannot enforce
    usage: Usage | None = None


@record
class CapSet:
    name: str  # effective, permitted, bounding, inheritable, ambient
    container: list[str]
    host: list[str]


@record
class CapabilityReport:
    sets: list[CapSet]
    dropped: list[str]  # in Docker's default set, not in the container's bounding set
    added: list[str]  # in the container's bounding set, not in Docker's default
    not_granted: list[str]  # the kernel's capabilities the container cannot ever gain
    kernel_total: int


@record
class SeccompReport:
    mode: int | None  # /proc/<pid>/status Seccomp: 0 disabled, 1 strict, 2 filter
    mode_name: str
    filters: int | None
    host_mode: int | None
    host_mode_name: str
    profile: str  # default | unconfined | custom
    default_action: str = ""
    rules: int = 0
    syscalls: int = 0
    no_new_privs: bool | None = None
    host_no_new_privs: bool | None = None
    no_new_privs_asked: bool = False


@record
class MountRow:
    target: str
    fstype: str
    source: str  # host path for binds and volumes, else the filesystem's source
    mode: str  # ro | rw
    kind: str  # root proc sys dev cgroup masked readonly volume bind tmpfs etc other
    detail: str = ""


@record
class MountReport:
    mounted: bool  # rows read from /proc/<pid>/mountinfo (else from the config)
    rows: list[MountRow] = field(default_factory=list)
    masked_absent: list[str] = field(default_factory=list)  # asked, not present here
    readonly_absent: list[str] = field(default_factory=list)


@record
class Layer:
    index: int
    chain_id: str
    diff_id: str
    directory: str
    size: int | None
    created_by: str = ""


@record
class RootfsReport:
    driver: str
    readonly: bool
    layers: list[Layer] = field(default_factory=list)
    upper: str = ""
    upper_size: int | None = None


@record
class UserReport:
    uid: int | None
    gid: int | None
    name: str = ""
    groups: list[int] = field(default_factory=list)
    host_uid: int | None = None
    host_gid: int | None = None
    uid_map: list[str] = field(default_factory=list)
    gid_map: list[str] = field(default_factory=list)
    asked: str = ""  # --user as given, or the config's uid:gid


@record
class Explanation:
    id: str
    name: str
    image: str
    image_id: str
    state: str
    pid: int
    running: bool
    host: str  # whose view stands for the host: "pid 1" or "this process (pid N)"
    config_source: str  # bundle (the config it was started with) | generated | none
    notes: list[str] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    cgroup: CgroupReport | None = None
    capabilities: CapabilityReport | None = None
    seccomp: SeccompReport | None = None
    mounts: MountReport | None = None
    rootfs: RootfsReport | None = None
    user: UserReport | None = None


# -- reading /proc --------------------------------------------------------------------


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


# -- cgroup -----------------------------------------------------------------------------


def plan_warnings(manager: CgroupManager, resources: oci.Resources) -> list[str]:
    """What the host cannot enforce of ``resources``: the warnings ``apply`` gives."""
    plan = getattr(manager, "_plan", None)  # TODO: a public CgroupManager.warnings()
    if plan is None:
        return []
    try:
        return list(plan(resources).warnings)
    except CapsaError as e:
        return [str(e)]


def asked_limits(resources: oci.Resources) -> list[tuple[str, str]]:
    """``(name, value)`` of every limit in ``resources`` (device rules left out)."""
    out: list[tuple[str, str]] = []
    for group, values in to_dict(resources).items():
        if group == "devices":
            continue
        items = values.items() if isinstance(values, dict) else [("", values)]
        for key, value in items:
            name = f"{group}.{key}" if key else group
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        item = " ".join(f"{k}={v}" for k, v in item.items())
                    out.append((name, str(item)))
            else:
                out.append((name, json.dumps(value) if isinstance(value, bool) else str(value)))
    return out


def _membership(text: str | None) -> dict[str, str]:
    """/proc/<pid>/cgroup: sorted controllers ("" for the v2 tree) -> path."""
    out = {}
    for line in (text or "").splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        out[",".join(sorted(controllers.split(","))) if controllers else ""] = path
    return out


def _usage(stats: CgroupStats, oom_kills: int) -> Usage:
    limit = stats.memory.usage.limit
    return Usage(
        memory=stats.memory.usage.usage,
        memory_max=stats.memory.usage.max or None,
        memory_limit=limit if 0 < limit < _UNLIMITED else None,
        pids=stats.pids.current,
        pids_limit=stats.pids.limit or None,
        cpu_ns=stats.cpu.total,
        oom_kills=oom_kills,
    )


def cgroup_report(
    manager: CgroupManager, resources: oci.Resources | None, view: ProcView | None
) -> CgroupReport:
    res = resources or oci.Resources()
    report = CgroupReport(manager.version, manager.path)
    member = _membership(view.read("cgroup")) if view else {}
    for m in manager.mount_plan():
        key = "" if m.fstype == "cgroup2" else ",".join(sorted(m.controllers))
        inside = member.get(key) == manager.path if view else None
        report.dirs.append(CgroupDir(m.name or "unified", m.fstype, m.host_path, inside))
    if view is not None and manager.exists():
        report.warnings = plan_warnings(manager, res)  # planned against the cgroup's files
        report.limits = [
            Limit(e.name, e.file, e.asked, e.in_force, e.ok) for e in manager.read_back(res)
        ]
        report.usage = _usage(manager.stats(), manager.oom_kill_count())
    else:
        report.limits = [Limit(name, "", value, None, False) for name, value in asked_limits(res)]
    return report


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


# -- mounts -----------------------------------------------------------------------------


@record(frozen=True)
class MountInfo:
    """One line of /proc/<pid>/mountinfo."""

    root: str  # the path inside the mounted filesystem (a bind's source)
    target: str
    options: str  # per-mount options (ro/rw, nosuid...)
    fstype: str
    source: str
    super_options: str


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return text.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


def parse_mountinfo(text: str) -> list[MountInfo]:
    out = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 6 or len(rest) < 2:
            continue
        options = rest[2] if len(rest) > 2 else ""
        out.append(
            MountInfo(
                _unescape(fields[3]), _unescape(fields[4]), fields[5], rest[0], rest[1], options
            )
        )
    return out


def overlay_dirs(super_options: str) -> tuple[list[str], str]:
    """Lower dirs (``lowerdir=a:b`` or repeated ``lowerdir+=``) and the upper dir."""
    lowers: list[str] = []
    upper = ""
    for opt in super_options.split(","):
        key, _, value = opt.partition("=")
        if key == "lowerdir":
            lowers.extend(p for p in value.split(":") if p)
        elif key == "lowerdir+":
            lowers.append(value)
        elif key == "upperdir":
            upper = value
    return lowers, upper


def _layers(count: int) -> str:
    return f"{count} layer{'' if count == 1 else 's'}"


def _mode(options: list[str] | str) -> str:
    items = options.split(",") if isinstance(options, str) else options
    return "ro" if "ro" in items else "rw"


class _MountContext:
    """What the config says about mount targets."""

    def __init__(self, spec: oci.Spec | None, user: list[MountSpec]) -> None:
        linux = spec.linux if spec else None
        self.masked = set(linux.masked_paths or []) if linux else set()
        self.readonly = set(linux.readonly_paths or []) if linux else set()
        self.config = (
            {os.path.normpath(m.destination): m for m in (spec.mounts or [])} if spec else {}
        )
        self.user = {os.path.normpath(m.target): m for m in user}

    def user_row(self, target: str, fstype: str, mode: str) -> MountRow | None:
        spec = self.user.get(target)
        if spec is None:
            return None
        conf = self.config.get(target)
        source = (conf.source or "") if conf else spec.source
        detail = f"volume {spec.source}" if spec.type == "volume" else ""
        return MountRow(target, fstype, source, mode, spec.type, detail)


def _classify(e: MountInfo, ctx: _MountContext) -> MountRow:
    mode = _mode(e.options)
    if e.target == "/":
        lowers, upper = overlay_dirs(e.super_options)
        detail = f"{_layers(len(lowers))}, upper {upper}" if e.fstype == "overlay" else ""
        return MountRow("/", e.fstype, e.source, mode, "root", detail)
    null = e.root.endswith("/null") and e.fstype in ("tmpfs", "devtmpfs")
    if e.target in ctx.masked or (null and e.target.startswith(("/proc/", "/sys/"))):
        how = "/dev/null" if null else f"{mode} {e.fstype}"
        return MountRow(e.target, e.fstype, e.source, mode, "masked", how)
    if e.target in ctx.readonly:
        return MountRow(e.target, e.fstype, e.source, mode, "readonly")
    row = ctx.user_row(e.target, e.fstype, mode)
    if row is not None:
        return row
    conf = ctx.config.get(e.target)
    if conf is not None and conf.type == "bind":
        kind = "etc" if e.target in _ETC_FILES else "bind"
        return MountRow(e.target, e.fstype, conf.source or e.root, mode, kind)
    return MountRow(e.target, e.fstype, e.source, mode, _kind_of(e.target, e.fstype))


def _kind_of(target: str, fstype: str) -> str:
    if fstype == "proc":
        return "proc"
    if fstype == "sysfs":
        return "sys"
    if fstype.startswith("cgroup") or target.startswith("/sys/fs/cgroup"):
        return "cgroup"
    if target == "/dev" or target.startswith("/dev/"):
        return "dev"
    return "tmpfs" if fstype == "tmpfs" else "other"


def mount_report(
    mountinfo: str | None, spec: oci.Spec | None, user: list[MountSpec], layers: int
) -> MountReport:
    """The mount table of a running container, or the mounts its config asks for."""
    ctx = _MountContext(spec, user)
    if mountinfo is None:
        return _configured_mounts(spec, ctx, layers)
    rows = [_classify(e, ctx) for e in parse_mountinfo(mountinfo)]
    present = {r.target for r in rows}
    return MountReport(
        True,
        rows,
        sorted(p for p in ctx.masked if p not in present),
        sorted(p for p in ctx.readonly if p not in present),
    )


def _configured_mounts(spec: oci.Spec | None, ctx: _MountContext, layers: int) -> MountReport:
    report = MountReport(False)
    if spec is None:
        return report
    root_mode = "ro" if spec.root and spec.root.readonly else "rw"
    report.rows.append(MountRow("/", "overlay", "overlay", root_mode, "root", _layers(layers)))
    for m in spec.mounts or []:
        target, fstype = os.path.normpath(m.destination), m.type or ""
        mode = _mode(m.options or [])
        row = ctx.user_row(target, fstype, mode)
        if row is None:
            kind = _kind_of(target, fstype) if fstype != "bind" else "bind"
            kind = "etc" if target in _ETC_FILES else kind
            row = MountRow(target, fstype, m.source or "", mode, kind)
        report.rows.append(row)
    for path in sorted(ctx.masked):
        report.rows.append(MountRow(path, "", "", "", "masked"))
    for path in sorted(ctx.readonly):
        report.rows.append(MountRow(path, "", "", "ro", "readonly"))
    return report


# -- root filesystem and user --------------------------------------------------------


def _image_layers(ctx: ServiceContext, image_id: str) -> tuple[list[str], list[str]]:
    """The image's diff ids and, per layer, the history line that made it."""
    from capsa.oci import image_spec

    try:
        config = image_spec.load_config(ctx.content.read(image_id))
    except (CapsaError, OSError):
        return [], []
    made = [h.created_by or "" for h in config.history or [] if not h.empty_layer]
    return list(config.rootfs.diff_ids), made


def rootfs_report(ctx: ServiceContext, rec: ContainerRecord, readonly: bool) -> RootfsReport:
    from capsa.store.snapshots import disk_usage

    diff_ids, made = _image_layers(ctx, rec.image_id)
    sizes = {u.chain_id: u.size for u in ctx.snapshots.usage() if u.kind == "layer"}
    report = RootfsReport("overlay", readonly)
    for i, chain in enumerate(rec.chain_ids):
        try:
            directory = ctx.snapshots.layer_dirs([chain])[0]
        except CapsaError:
            directory = ""
        diff_id = diff_ids[i] if i < len(diff_ids) else ""
        created_by = made[i] if i < len(made) else ""
        report.layers.append(Layer(i + 1, chain, diff_id, directory, sizes.get(chain), created_by))
    report.upper = os.path.join(ctx.snapshots.rw_dir_of(rec.rootfs_key or rec.id), "upper")
    report.upper_size = disk_usage(report.upper) if os.path.isdir(report.upper) else None
    return report


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


# -- putting it together ---------------------------------------------------------------


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
    from capsa.engine import specgen
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
