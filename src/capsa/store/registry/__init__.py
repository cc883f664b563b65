"""Distribution API v2 client: pull and push images between registries and the store.

``RegistryClient`` is the entry point; it owns one aiohttp session (created on first
use, closed by ``close``). aiohttp is imported only when a request is made.
"""

from __future__ import annotations

from capsa.store.registry.client import RegistryHttp, endpoints
from capsa.store.registry.platform import host_platform, parse_platform
from capsa.store.registry.pull import Puller, PullResult
from capsa.store.registry.push import DEFAULT_CHUNK_THRESHOLD, Pusher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

    from capsa.config import Settings
    from capsa.oci.image_spec import Platform
    from capsa.oci.reference import Reference
    from capsa.progress import ProgressSink
    from capsa.store.content import ContentStore
    from capsa.store.credentials import Credentials

__all__ = ["PullResult", "RegistryClient", "host_platform", "parse_platform"]


class RegistryClient:
    """Pulls into and pushes from a ContentStore, as ``settings`` configure registries.

    Credentials default to ``settings.auth_file`` (docker's config.json format).
    """

    def __init__(
        self,
        settings: Settings,
        content: ContentStore,
        progress: ProgressSink | None = None,
        credentials: Credentials | None = None,
        *,
        retries: int = 3,
        retry_delay: float = 0.5,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
    ) -> None:
        if credentials is None and settings.auth_file:
            from capsa.store.credentials import Credentials

            credentials = Credentials(settings.auth_file)
        self.settings = settings
        self.content = content
        self.http = RegistryHttp(settings, credentials)
        self._puller = Puller(
            self.http, content, progress, settings.max_concurrent_downloads, retries, retry_delay
        )
        self._pusher = Pusher(
            self.http, content, progress, settings.max_concurrent_uploads, chunk_threshold
        )

    async def pull(self, ref: Reference, platform: Platform | None = None) -> PullResult:
        """Fetch the image ``ref`` names (for ``platform``, default the host's) into the
        content store: index or manifest, the platform's manifest, config and layers."""
        return await self._puller.pull(ref, endpoints(self.settings, ref.domain), platform)

    async def push(
        self, ref: Reference, manifest_digest: str, mount_from: str | None = None
    ) -> str:
        """Push the stored manifest (or index) ``manifest_digest`` as ``ref``; return the
        digest pushed. ``mount_from``: a repository of the same registry holding the
        blobs already (tried as a cross-repository mount)."""
        ep = endpoints(self.settings, ref.domain, push=True)[0]
        return await self._pusher.push(ep, ref, manifest_digest, mount_from)

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
