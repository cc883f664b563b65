"""Wiring: settings -> stores -> services. No logic lives here."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.config import Settings
    from capsa.engine.containers.restore import RestoreService
    from capsa.engine.containers.service import ContainerService
    from capsa.engine.fsops.service import FsService
    from capsa.engine.images.service import ImageService
    from capsa.engine.network.service import NetworkService
    from capsa.engine.service_context import ServiceContext
    from capsa.engine.system.events import EventService
    from capsa.engine.system.service import SystemService
    from capsa.engine.volumes.service import VolumeService


class LocalEngine:
    """The engine in this process. Services are built on first use."""

    def __init__(self, settings: Settings, monitor_start: str = "fork") -> None:
        """``monitor_start``: the frontend's policy for starting monitors when no
        monitor host takes them (``ServiceContext``): a command-line process forks, a
        threaded or async server passes ``spawn``."""
        self.settings = settings
        self.monitor_start = monitor_start
        self._ctx: ServiceContext | None = None
        self._images: ImageService | None = None
        self._containers: ContainerService | None = None

    @property
    def ctx(self) -> ServiceContext:
        if self._ctx is None:
            from capsa.engine.service_context import ServiceContext

            self._ctx = ServiceContext(self.settings, self.monitor_start)
        return self._ctx

    @property
    def images(self) -> ImageService:
        if self._images is None:
            from capsa.engine.images.service import ImageService

            ctx = self.ctx
            self._images = ImageService(
                self.settings, ctx.content, ctx.images, lambda: self.ctx.snapshots
            )
        return self._images

    @property
    def containers(self) -> ContainerService:
        if self._containers is None:
            from capsa.engine.containers.service import ContainerService

            self._containers = ContainerService(self.ctx, lambda: self.images)
        return self._containers

    @property
    def restore(self) -> RestoreService:
        from capsa.engine.containers.restore import RestoreService

        return RestoreService(self.ctx, self.containers)

    @property
    def system(self) -> SystemService:
        from capsa.engine.system.service import SystemService

        return SystemService(self.containers, self.images, self.volumes, self.networks)

    @property
    def events(self) -> EventService:
        from capsa.engine.system.events import EventService

        return EventService(self.ctx.events)

    @property
    def fs(self) -> FsService:
        """cp, export, diff and commit: files in and out of containers."""
        from capsa.engine.fsops.service import FsService

        return FsService(self.ctx, self.containers, self.images)

    @property
    def volumes(self) -> VolumeService:
        return self.ctx.volumes

    @property
    def networks(self) -> NetworkService:
        return self.ctx.networks

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()
