"""``system df``: the docker CLI's four rows (Images, Containers, Local Volumes, Build
Cache), its ``-v`` sections and columns, and ``--format`` over either. The numbers come
from the engine (``SystemService.disk_usage``); this module only lays them out."""

from __future__ import annotations

import click

from capsa.cli import render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.main import App
    from capsa.engine.system.types import DiskUsage, DiskUsageItem, ImageUsage, VolumeUsage

_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}
_IMAGE_COLUMNS = (
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("Size", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("Containers", "CONTAINERS"),
)
_CONTAINER_COLUMNS = (
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Size", "SIZE"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Names", "NAMES"),
)
_VOLUME_COLUMNS = (("Name", "VOLUME NAME"), ("Links", "LINKS"), ("Size", "SIZE"))
_CACHE_HEADERS = ("CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED")


def show(app: App, verbose: bool, fmt: str | None) -> None:
    usage = app.engine.system.disk_usage()
    if verbose:
        _verbose(app, usage, fmt)
        return
    rows = [summary_row(item) for item in usage.items]
    if fmt and fmt != "table":
        render.render_format(fmt, rows, _HEADERS)
        return
    render.print_table(list(_HEADERS.values()), [[r[k] for k in _HEADERS] for r in rows])


def summary_row(item: DiskUsageItem) -> dict[str, str]:
    """A row as the docker CLI's formatter has it (keys sorted, as its JSON)."""
    reclaimable = render.human_size(item.reclaimable, 4)
    if item.percent and item.size > 0:
        reclaimable += f" ({item.reclaimable * 100 // item.size}%)"
    return {
        "Active": str(item.active),
        "Reclaimable": reclaimable,
        "Size": render.human_size(item.size, 4),
        "TotalCount": str(item.total),
        "Type": item.kind,
    }


def _verbose(app: App, usage: DiskUsage, fmt: str | None) -> None:
    table = not fmt or fmt == "table"
    doc = {
        "Images": [_image_row(i, table) for i in usage.images],
        "Containers": _container_rows(app, usage, table),
        "Volumes": [_volume_row(v) for v in usage.volumes],
        "BuildCache": [],
    }
    if not table:
        assert fmt is not None
        render.render_format(fmt, [doc])
        return
    click.echo("Images space usage:\n")
    _section(_IMAGE_COLUMNS, doc["Images"])
    click.echo("\nContainers space usage:\n")
    _section(_CONTAINER_COLUMNS, doc["Containers"])
    click.echo("\nLocal Volumes space usage:\n")
    _section(_VOLUME_COLUMNS, doc["Volumes"])
    click.echo(f"\nBuild cache usage: {render.human_size(usage.build_cache_size, 4)}\n")
    render.print_table(_CACHE_HEADERS, [])


def _section(columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]) -> None:
    render.print_table([h for _, h in columns], [[r[k] for k, _ in columns] for r in rows])


def _image_row(usage: ImageUsage, trunc: bool) -> dict[str, str]:
    s = usage.summary
    repo, tag = "<none>", "<none>"
    if s.repo_tags:  # the first name only, as the docker CLI shows
        repo, _, tag = s.repo_tags[0].rpartition(":")
    digests = [d.partition("@")[2] for d in s.repo_digests]
    return {
        "Containers": str(s.containers),
        "CreatedAt": s.created or "",
        "CreatedSince": render.ago(s.created),
        "Digest": digests[0] if digests else "<none>",
        "ID": s.short_id if trunc else s.id,
        "Repository": repo,
        "SharedSize": render.human_size(usage.shared_size, 4),
        "Size": render.human_size(s.size),
        "Tag": tag,
        "UniqueSize": render.human_size(usage.unique_size, 4),
        "VirtualSize": render.human_size(s.size, 4),
    }


def _container_rows(app: App, usage: DiskUsage, trunc: bool) -> list[dict[str, Any]]:
    """``ps``'s rows, with the rw layer's size alone (no virtual size) and the number of
    local volumes."""
    from capsa.cli.list_containers import ps_rows

    rows = ps_rows(app, [c.record for c in usage.containers], not trunc, False)
    for row, c in zip(rows, usage.containers, strict=True):
        row["Size"] = render.human_size(c.size_rw)
        row["LocalVolumes"] = str(c.local_volumes)
    return rows


def _volume_row(usage: VolumeUsage) -> dict[str, str]:
    """The docker CLI's volume fields, with the links and size ``volume ls`` lacks."""
    v = usage.volume
    return {
        "Availability": "N/A",
        "Driver": v.driver,
        "Group": "N/A",
        "Labels": ",".join(f"{k}={val}" for k, val in sorted(v.labels.items())),
        "Links": str(usage.links),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": v.scope,
        "Size": render.human_size(usage.size, 4),
        "Status": "N/A",
    }
