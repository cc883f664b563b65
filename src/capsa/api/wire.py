"""Docker's JSON shapes (PascalCase), built from engine reports.

The only module that knows Docker's field names: the HTTP API and the CLI's
``inspect`` both render through it, so `capsa image inspect` and `docker image
inspect` against capsa's socket print the same document.
"""

from __future__ import annotations

from capsa.oci.codec import to_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.images.types import HistoryEntry, ImageDetail, ImageSummary

_EMPTY_CONFIG: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


def image_config(detail: ImageDetail) -> dict[str, Any]:
    out = dict(_EMPTY_CONFIG)
    cfg = detail.config.config
    if cfg is not None:
        out.update({k: v for k, v in to_dict(cfg).items() if v is not None})
    return out


def image_inspect(detail: ImageDetail, graph: dict[str, str] | None = None) -> dict[str, Any]:
    s = detail.summary
    cfg = detail.config
    return {
        "Id": s.id,
        "RepoTags": s.repo_tags,
        "RepoDigests": s.repo_digests,
        "Parent": s.parent_id,
        "Comment": next((h.comment for h in reversed(cfg.history or []) if h.comment), ""),
        "Created": cfg.created or "",
        "DockerVersion": "",
        "Author": cfg.author or "",
        "Config": image_config(detail),
        "Architecture": cfg.architecture,
        **({"Variant": cfg.variant} if cfg.variant else {}),
        "Os": cfg.os,
        "Size": s.size,
        "VirtualSize": s.size,
        "GraphDriver": {"Data": graph or {}, "Name": "overlay"},
        "RootFS": {"Type": cfg.rootfs.type, "Layers": list(cfg.rootfs.diff_ids)},
        "Metadata": {"LastTagTime": detail.added or "0001-01-01T00:00:00Z"},
    }


def image_summary(s: ImageSummary) -> dict[str, Any]:
    """One entry of ``GET /images/json``."""
    return {
        "Id": s.id,
        "ParentId": s.parent_id,
        "RepoTags": s.repo_tags,
        "RepoDigests": s.repo_digests,
        "Created": _unix(s.created),
        "Size": s.size,
        "SharedSize": -1,
        "VirtualSize": s.size,
        "Labels": s.labels or {},
        "Containers": s.containers,
    }


def image_history(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    return [
        {
            "Id": e.id,
            "Created": _unix(e.created),
            "CreatedBy": e.created_by,
            "Tags": e.tags or None,
            "Size": e.size,
            "Comment": e.comment,
        }
        for e in entries
    ]


def _unix(stamp: str | None) -> int:
    """RFC 3339 -> seconds since the epoch (0 when unknown)."""
    if not stamp:
        return 0
    import calendar
    import time

    try:
        base = stamp[:19]
        return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0
