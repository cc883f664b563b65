"""hugetlb controller: per page size limits (v1 files, or the unified tree in hybrid mode)."""

from __future__ import annotations

from capsa.cgroups import fs
from capsa.cgroups.plan import UNIFIED, Context, Plan
from capsa.cgroups.stats import HugetlbStats
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import HugepageLimit

H = "hugetlb"


def _validate(limits: list[HugepageLimit], ctx: Context, plan: Plan) -> bool:
    for hp in limits:
        if hp.limit < 0:
            raise InvalidArgument(f"invalid hugepage limit {hp.limit} for {hp.page_size}")
        if not hp.page_size or "/" in hp.page_size or "." in hp.page_size:
            raise InvalidArgument(f"invalid hugepage size {hp.page_size!r}")
        if ctx.hugepage_sizes and hp.page_size not in ctx.hugepage_sizes:
            sizes = ", ".join(ctx.hugepage_sizes)
            raise InvalidArgument(f"hugepage size {hp.page_size} not supported (host: {sizes})")
    if not ctx.hugepage_sizes:
        plan.warn("hugepage limits not enforced: host has no hugepages")
        return False
    return True


def plan_v1(limits: list[HugepageLimit] | None, ctx: Context, plan: Plan) -> None:
    if not limits or not _validate(limits, ctx, plan):
        return
    for hp in limits:
        name = f"hugepageLimits.{hp.page_size}"
        if ctx.mounted(H):
            plan.add(H, f"hugetlb.{hp.page_size}.limit_in_bytes", hp.limit, name)
        elif H in ctx.unified_controllers:  # hybrid: hugetlb lives in the cgroup2 tree
            plan.add(UNIFIED, f"hugetlb.{hp.page_size}.max", hp.limit, name)
        else:
            plan.warn("hugepage limits not enforced: hugetlb controller not available")


def plan_v2(limits: list[HugepageLimit] | None, ctx: Context, plan: Plan) -> None:
    if not limits or not _validate(limits, ctx, plan):
        return
    if H not in ctx.unified_controllers:
        plan.warn("hugepage limits not enforced: hugetlb controller not enabled")
        return
    for hp in limits:
        plan.add(UNIFIED, f"hugetlb.{hp.page_size}.max", hp.limit, f"hugepageLimits.{hp.page_size}")


def stats_v1(directory: str, sizes: tuple[str, ...]) -> dict[str, HugetlbStats]:
    return {
        size: HugetlbStats(
            usage=fs.read_uint(directory, f"hugetlb.{size}.usage_in_bytes"),
            max=fs.read_uint(directory, f"hugetlb.{size}.max_usage_in_bytes"),
            failcnt=fs.read_uint(directory, f"hugetlb.{size}.failcnt"),
        )
        for size in sizes
        if fs.has(directory, f"hugetlb.{size}.usage_in_bytes")
    }


def stats_v2(directory: str, sizes: tuple[str, ...]) -> dict[str, HugetlbStats]:
    return {
        size: HugetlbStats(
            usage=fs.read_uint(directory, f"hugetlb.{size}.current"),
            failcnt=fs.read_flat_keyed(directory, f"hugetlb.{size}.events").get("max", 0),
        )
        for size in sizes
        if fs.has(directory, f"hugetlb.{size}.current")
    }
