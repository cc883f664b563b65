"""Verbs over every object kind: ``system prune``, ``system df`` and ``info``.

Each kind's service prunes and measures its own objects; this module runs them in
Docker's order and adds up what the docker CLI adds up (``system df``'s rows are
computed by the docker CLI from dockerd's lists; here the engine does it, so that
every frontend shows the same numbers).
"""

from __future__ import annotations

from capsa.engine.system.filters import CONTAINER_PRUNE, VOLUME_PRUNE, parse_prune
from capsa.engine.system.types import (
    ContainerUsage,
    DiskUsage,
    DiskUsageItem,
    SystemPruneOptions,
    SystemPruneReport,
)
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.service import ContainerService
    from capsa.engine.images.service import ImageService
    from capsa.engine.network.service import NetworkService
    from capsa.engine.system.info import SystemInfo
    from capsa.engine.system.types import ImagesUsage, VolumeUsage
    from capsa.engine.volumes.service import VolumeService


class SystemService:
    def __init__(
        self,
        containers: ContainerService,
        images: ImageService,
        volumes: VolumeService,
        networks: NetworkService,
    ) -> None:
        self.containers = containers
        self.images = images
        self.volumes = volumes
        self.networks = networks

    def info(self) -> SystemInfo:
        """What ``info`` shows (``GET /info``): counts, the host, the runtimes."""
        from capsa.engine.system.info import system_info

        return system_info(self.containers)

    # -- prune -----------------------------------------------------------------------

    def check_prune(self, opts: SystemPruneOptions) -> None:
        """What the docker CLI and dockerd refuse, before anything is pruned."""
        if opts.volumes and "until" in opts.filters:
            raise InvalidArgument('The "until" filter is not supported with "--volumes"')
        parse_prune(opts.filters, CONTAINER_PRUNE)  # pruned first; networks and images take
        if opts.volumes:  # these names too, volumes fewer
            parse_prune(opts.filters, VOLUME_PRUNE)

    def prune(self, opts: SystemPruneOptions) -> SystemPruneReport:
        """Stopped containers, unused networks, (anonymous volumes), unused images, in
        that order; the filters are checked for every kind before anything goes."""
        self.check_prune(opts)
        report = SystemPruneReport()
        report.containers, report.space_reclaimed = self.containers.prune(opts.filters)
        report.networks = self.networks.prune(opts.filters)
        if opts.volumes:
            volumes = self.volumes.prune(opts.filters)
            report.volumes = volumes.deleted
            report.space_reclaimed += volumes.space_reclaimed
        report.images = self.images.prune(opts.all_images, opts.filters)
        report.space_reclaimed += report.images.space_reclaimed
        return report

    # -- df --------------------------------------------------------------------------

    def disk_usage(self) -> DiskUsage:
        from capsa.engine.containers.types import PsOptions

        images = self.images.disk_usage()
        containers = [
            ContainerUsage(
                rec,
                self.containers.rw_size(rec),
                sum(1 for m in rec.spec.mounts if m.type == "volume"),
            )
            for rec in self.containers.list_containers(PsOptions(all=True))
        ]
        volumes = self.volumes.disk_usage()
        return DiskUsage(
            items=[
                _images_row(images),
                _containers_row(containers),
                _volumes_row(volumes),
                DiskUsageItem("Build Cache", 0, 0, 0, 0, percent=False),
            ],
            images=images.images,
            containers=containers,
            volumes=volumes,
        )


def _images_row(usage: ImagesUsage) -> DiskUsageItem:
    """The docker CLI's: reclaimable is what the images no container uses hold alone."""
    active = [i for i in usage.images if i.summary.containers]
    used = sum(i.unique_size for i in active)
    return DiskUsageItem(
        "Images",
        total=len(usage.images),
        active=len(active),
        size=usage.layers_size,
        reclaimable=max(0, usage.layers_size - used),
    )


def _containers_row(usage: list[ContainerUsage]) -> DiskUsageItem:
    from capsa.engine.containers.types import is_live

    idle = [c for c in usage if not is_live(c.record.state)]
    return DiskUsageItem(
        "Containers",
        total=len(usage),
        active=len(usage) - len(idle),
        size=sum(c.size_rw for c in usage),
        reclaimable=sum(c.size_rw for c in idle),
    )


def _volumes_row(usage: list[VolumeUsage]) -> DiskUsageItem:
    return DiskUsageItem(
        "Local Volumes",
        total=len(usage),
        active=sum(1 for v in usage if v.links),
        size=sum(v.size for v in usage),
        reclaimable=sum(v.size for v in usage if not v.links),
    )
