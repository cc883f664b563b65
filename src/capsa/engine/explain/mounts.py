"""``capsa explain``'s mount table and root filesystem layers.

A running container's /proc/<pid>/mountinfo is parsed and each mount classified with the
config's help (masked, read-only, volume, bind...); a stopped one shows the configured
mounts. The root filesystem section lists the image's layers and the writable upper dir.
"""

from __future__ import annotations

import os

from capsa.engine.explain.types import Layer, MountReport, MountRow, RootfsReport
from capsa.errors import CapsaError
from capsa.oci import runtime_spec as oci
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.types import ContainerRecord, MountSpec
    from capsa.engine.service_context import ServiceContext

_ETC_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


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


# -- root filesystem ----------------------------------------------------------------------


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
