"""Options and reports of the verbs over every object kind: ``system prune`` and
``system df``. Frontends render them (the docker CLI's sections and columns live in
``capsa.cli``); the engine computes every number, with dockerd's and the docker CLI's
rules, so that the CLI and the API report the same.
"""

from __future__ import annotations

from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.images.types import ImageSummary, PruneReport
    from capsa.engine.volumes.types import Volume


@record
class SystemPruneOptions:
    all_images: bool = False  # -a: every unused image, not only dangling ones
    volumes: bool = False  # --volumes: unused anonymous volumes too
    filters: dict[str, list[str]] = field(default_factory=dict)  # until, label, label!


@record
class SystemPruneReport:
    containers: list[str] = field(default_factory=list)  # ids
    networks: list[str] = field(default_factory=list)  # names
    volumes: list[str] = field(default_factory=list)  # names
    images: PruneReport | None = None
    space_reclaimed: int = 0


@record
class DiskUsageItem:
    """One row of ``system df``."""

    kind: str  # "Images", "Containers", "Local Volumes", "Build Cache"
    total: int
    active: int
    size: int
    reclaimable: int
    percent: bool = True  # the docker CLI shows "(N%)" after it, except for the build cache


@record
class ImageUsage:
    summary: ImageSummary
    shared_size: int = 0  # bytes of its layers that other images use too

    @property
    def unique_size(self) -> int:
        return self.summary.size - self.shared_size


@record
class ImagesUsage:
    layers_size: int = 0  # every layer once
    images: list[ImageUsage] = field(default_factory=list)


@record
class ContainerUsage:
    record: ContainerRecord
    size_rw: int = 0  # bytes it wrote (Docker's SizeRw)
    local_volumes: int = 0  # volumes of the local driver it mounts


@record
class VolumeUsage:
    volume: Volume
    size: int = 0  # bytes of its files
    links: int = 0  # containers using it


@record
class DiskUsage:
    items: list[DiskUsageItem] = field(default_factory=list)  # the four rows, in order
    images: list[ImageUsage] = field(default_factory=list)
    containers: list[ContainerUsage] = field(default_factory=list)
    volumes: list[VolumeUsage] = field(default_factory=list)
    build_cache_size: int = 0  # capsa has no build cache yet: its section stays empty
