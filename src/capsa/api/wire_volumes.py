"""Docker's JSON shapes of volumes (``volume inspect``, ``GET /volumes``), built from the
engine's ``Volume`` records. The API and the CLI's ``volume inspect`` both render
through here."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.volumes.types import Volume, VolumePruneReport


def volume_inspect(v: Volume) -> dict[str, Any]:
    """``GET /volumes/{name}``; also each item of ``GET /volumes``."""
    return {
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": dict(sorted(v.labels.items())),  # Go marshals maps sorted
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": dict(sorted(v.options.items())),
        "Scope": v.scope,
    }


def volume_list(volumes: list[Volume]) -> dict[str, Any]:
    """``GET /volumes``."""
    return {"Volumes": [volume_inspect(v) for v in volumes], "Warnings": []}


def volume_prune(report: VolumePruneReport) -> dict[str, Any]:
    """``POST /volumes/prune``."""
    return {"VolumesDeleted": list(report.deleted), "SpaceReclaimed": report.space_reclaimed}
