"""Wiring: settings -> stores -> services. No logic lives here."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.config import Settings
    from capsa.engine.images import ImageService


class LocalEngine:
    """The engine in this process. Services are built on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._images: ImageService | None = None

    @property
    def images(self) -> ImageService:
        if self._images is None:
            from capsa.engine.images import ImageService
            from capsa.store.content import ContentStore
            from capsa.store.images import ImageStore
            from capsa.store.snapshots import SnapshotStore

            root = self.settings.root
            self._images = ImageService(
                self.settings, ContentStore(root), ImageStore(root), SnapshotStore(root)
            )
        return self._images

    def close(self) -> None:
        if self._images is not None:
            self._images.images.close()
