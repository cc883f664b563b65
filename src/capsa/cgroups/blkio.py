"""blkio (v1) / io (v2) controller: weights and per-device throttling."""

from __future__ import annotations

from capsa.cgroups import fs
from capsa.cgroups.plan import UNIFIED, Context, Plan
from capsa.cgroups.stats import BlkioStats, parse_blkio_v1, parse_io_stat
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import BlockIOResources, ThrottleDevice

H = "blkio"

# (spec field, v1 file suffix, v2 io.max key)
_THROTTLES = (
    ("throttle_read_bps_device", "read_bps_device", "rbps"),
    ("throttle_write_bps_device", "write_bps_device", "wbps"),
    ("throttle_read_iops_device", "read_iops_device", "riops"),
    ("throttle_write_iops_device", "write_iops_device", "wiops"),
)


def weight_to_io(weight: int) -> int:
    """blkio weight [10-1000] -> v2 io.weight [1-10000], as runc converts."""
    return 0 if weight == 0 else 1 + (weight - 10) * 9999 // 990


def _check_weight(name: str, value: int | None) -> None:
    if value is not None and value != 0 and not 10 <= value <= 1000:
        raise InvalidArgument(f"invalid blkio {name} {value} (10-1000)")


def validate(bio: BlockIOResources) -> None:
    _check_weight("weight", bio.weight)
    _check_weight("leafWeight", bio.leaf_weight)
    for wd in bio.weight_device or []:
        _check_weight("device weight", wd.weight)
        _check_weight("device leafWeight", wd.leaf_weight)
        if wd.major < 0 or wd.minor < 0:
            raise InvalidArgument(f"invalid blkio device {wd.major}:{wd.minor}")
    for attr, _, _ in _THROTTLES:
        for td in getattr(bio, attr) or []:
            if td.major < 0 or td.minor < 0 or td.rate < 0:
                raise InvalidArgument(f"invalid blkio throttle {td.major}:{td.minor} {td.rate}")


def _first(ctx: Context, h: str, *files: str) -> str | None:
    return next((f for f in files if ctx.has(h, f)), None)


def plan_v1(bio: BlockIOResources | None, ctx: Context, plan: Plan) -> None:
    if bio is None:
        return
    validate(bio)
    if not ctx.mounted(H):
        plan.warn("block io limits not enforced: blkio controller not mounted")
        return
    if bio.weight:
        file = _first(ctx, H, "blkio.weight", "blkio.bfq.weight")
        if file is None:
            plan.warn("blkio weight not enforced: no blkio.weight or blkio.bfq.weight")
        else:
            plan.add(H, file, bio.weight, "blockIO.weight")
    if bio.leaf_weight:
        if ctx.has(H, "blkio.leaf_weight"):
            plan.add(H, "blkio.leaf_weight", bio.leaf_weight, "blockIO.leafWeight")
        else:
            plan.warn("blkio leaf weight not enforced: blkio.leaf_weight missing")
    _weight_devices_v1(bio, ctx, plan)
    for attr, suffix, _ in _THROTTLES:
        for td in getattr(bio, attr) or []:
            plan.add(
                H,
                f"blkio.throttle.{suffix}",
                f"{td.major}:{td.minor} {td.rate}",
                f"blockIO.{suffix}",
                restorable=False,
            )


def _weight_devices_v1(bio: BlockIOResources, ctx: Context, plan: Plan) -> None:
    file = _first(ctx, H, "blkio.weight_device", "blkio.bfq.weight_device")
    for wd in bio.weight_device or []:
        if wd.weight:
            if file is None:
                plan.warn("blkio device weight not enforced: no blkio.weight_device")
            else:
                plan.add(
                    H,
                    file,
                    f"{wd.major}:{wd.minor} {wd.weight}",
                    "blockIO.weightDevice",
                    restorable=False,
                )
        if wd.leaf_weight:
            if ctx.has(H, "blkio.leaf_weight_device"):
                plan.add(
                    H,
                    "blkio.leaf_weight_device",
                    f"{wd.major}:{wd.minor} {wd.leaf_weight}",
                    "blockIO.leafWeightDevice",
                    restorable=False,
                )
            else:
                plan.warn("blkio device leaf weight not enforced: no blkio.leaf_weight_device")


def _io_max(td: ThrottleDevice, key: str) -> str:
    return f"{td.major}:{td.minor} {key}={td.rate if td.rate else 'max'}"


def plan_v2(bio: BlockIOResources | None, ctx: Context, plan: Plan) -> None:
    if bio is None:
        return
    validate(bio)
    if "io" not in ctx.unified_controllers:
        plan.warn("block io limits not enforced: io controller not enabled")
        return
    bfq = ctx.has(UNIFIED, "io.bfq.weight")
    if bio.weight:
        if bfq:
            plan.add(UNIFIED, "io.bfq.weight", bio.weight, "blockIO.weight")
        elif ctx.has(UNIFIED, "io.weight"):
            plan.add(UNIFIED, "io.weight", f"default {weight_to_io(bio.weight)}", "blockIO.weight")
        else:
            plan.warn("blkio weight not enforced: no io.weight or io.bfq.weight")
    if bio.leaf_weight:
        plan.warn("blkio leaf weight not enforced: not supported by cgroup v2")
    for wd in bio.weight_device or []:
        if not wd.weight:
            continue
        if bfq:
            plan.add(
                UNIFIED,
                "io.bfq.weight",
                f"{wd.major}:{wd.minor} {wd.weight}",
                "blockIO.weightDevice",
                restorable=False,
            )
        else:
            plan.warn("blkio device weight not enforced: io.bfq.weight missing")
    for attr, suffix, key in _THROTTLES:
        for td in getattr(bio, attr) or []:
            plan.add(UNIFIED, "io.max", _io_max(td, key), f"blockIO.{suffix}", restorable=False)


_V1_STAT_FILES = (
    ("blkio.io_service_bytes_recursive", "blkio.io_serviced_recursive"),
    ("blkio.bfq.io_service_bytes_recursive", "blkio.bfq.io_serviced_recursive"),
    ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive"),
)


def stats_v1(directory: str) -> BlkioStats:
    """First non-empty of the CFQ, BFQ and throttle tables, as runc picks them."""
    out = BlkioStats()
    for bytes_file, ios_file in _V1_STAT_FILES:
        text = fs.read_optional(directory, bytes_file)
        if text is None:
            continue
        out = BlkioStats(
            service_bytes=parse_blkio_v1(text),
            serviced=parse_blkio_v1(fs.read_optional(directory, ios_file) or ""),
        )
        if out.service_bytes or out.serviced:
            break
    return out


def stats_v2(directory: str) -> BlkioStats:
    return parse_io_stat(fs.read_optional(directory, "io.stat") or "")
