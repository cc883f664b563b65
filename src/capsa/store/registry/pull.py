"""Pull: resolve a reference, pick the platform, fetch manifest, config and layers.

Every document and blob lands in the content store verified. Layers download in
parallel (``max_concurrent_downloads``), each retried with backoff and resumed with
HTTP Range from what an earlier, interrupted attempt left in the ingest area. For a
pull, each request tries the mirrors in order and then the origin.
"""

from __future__ import annotations

import asyncio

from capsa.errors import CapsaError, InvalidArgument, NotFound, PermissionDenied, Unavailable
from capsa.oci import image_spec as spec
from capsa.progress import NullProgress, ProgressEvent
from capsa.record import record
from capsa.store.content import DigestMismatch
from capsa.store.registry.errors import Transient, error_for
from capsa.store.registry.platform import host_platform, select_manifest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import TypeVar

    import aiohttp

    from capsa.oci.reference import Reference
    from capsa.progress import ProgressSink
    from capsa.store.content import BlobWriter, ContentStore
    from capsa.store.registry.client import Endpoint, RegistryHttp

    T = TypeVar("T")

ACCEPT = ", ".join([spec.OCI_INDEX, spec.DOCKER_LIST, spec.OCI_MANIFEST, spec.DOCKER_MANIFEST])
MAX_MANIFEST = 4 << 20
_CHUNK = 1 << 20
_FALL_THROUGH = (NotFound, Unavailable, PermissionDenied)


@record
class PullResult:
    reference: Reference
    top_digest: str  # what the tag resolved to: an index or a manifest
    top_media_type: str
    manifest_digest: str
    manifest: spec.Manifest
    config_digest: str
    config: spec.ImageConfig
    platform: spec.Platform


class _StalePartial(Exception):
    """Data resumed from an earlier ingest did not verify; it has been dropped."""


def short_id(digest: str) -> str:
    return digest.partition(":")[2][:12]


class Puller:
    def __init__(
        self,
        http: RegistryHttp,
        content: ContentStore,
        progress: ProgressSink | None,
        concurrency: int,
        retries: int = 3,
        retry_delay: float = 0.5,
    ) -> None:
        self.http = http
        self.content = content
        self.progress = progress or NullProgress()
        self.concurrency = max(1, concurrency)
        self.retries = max(1, retries)
        self.retry_delay = retry_delay

    async def pull(
        self, ref: Reference, eps: list[Endpoint], platform: spec.Platform | None = None
    ) -> PullResult:
        scopes = [f"repository:{ref.path}:pull"]
        want = platform or host_platform()
        target = ref.digest or ref.tag or "latest"
        top_raw, top_type, top_digest = await self._manifest(eps, ref, target, scopes)
        raw, mtype, digest = top_raw, top_type, top_digest
        if top_type in spec.INDEX_TYPES:
            desc = select_manifest(spec.load_index(top_raw), want)
            raw, mtype, digest = await self._manifest(eps, ref, desc.digest, scopes)
        if mtype not in spec.MANIFEST_TYPES:
            raise InvalidArgument(f"{ref.familiar}: unsupported manifest type {mtype}")
        manifest = spec.load_manifest(raw)
        await self._blobs(eps, ref, manifest, scopes)
        config_raw = await asyncio.to_thread(self.content.read, manifest.config.digest)
        config = spec.load_config(config_raw)
        return PullResult(
            reference=ref,
            top_digest=top_digest,
            top_media_type=top_type,
            manifest_digest=digest,
            manifest=manifest,
            config_digest=manifest.config.digest,
            config=config,
            platform=config.platform,
        )

    async def _each(self, eps: list[Endpoint], attempt: Callable[[Endpoint], Awaitable[T]]) -> T:
        """``attempt`` on each endpoint in turn; a mirror's failure falls through."""
        for ep in eps[:-1]:
            try:
                return await attempt(ep)
            except _FALL_THROUGH:
                continue
        return await attempt(eps[-1])

    async def _manifest(
        self, eps: list[Endpoint], ref: Reference, target: str, scopes: list[str]
    ) -> tuple[bytes, str, str]:
        """Fetch one manifest or index by tag or digest; store it; (raw, type, digest)."""

        async def attempt(ep: Endpoint) -> tuple[bytes, str]:
            return await self._get_manifest(ep, ref, target, scopes)

        raw, mtype = await self._retry(lambda: self._each(eps, attempt))
        digest = spec.sha256_digest(raw)
        if target.startswith("sha256:") and digest != target:
            raise DigestMismatch(f"manifest digest mismatch: expected {target}, got {digest}")
        await asyncio.to_thread(self.content.put, raw, digest)
        return raw, mtype, digest

    async def _get_manifest(
        self, ep: Endpoint, ref: Reference, target: str, scopes: list[str]
    ) -> tuple[bytes, str]:
        what = f"pull of {ref.familiar}"
        resp = await self.http.send(
            "GET",
            ep,
            f"/v2/{ref.path}/manifests/{target}",
            scopes=scopes,
            headers={"Accept": ACCEPT},
            what=what,
        )
        try:
            if resp.status != 200:
                body = await resp.content.read(64 << 10)
                raise error_for(
                    resp.status, body, ep.host, what, f"manifest for {ref.familiar} not found"
                )
            if (resp.content_length or 0) > MAX_MANIFEST:
                raise InvalidArgument(f"manifest for {ref.familiar} is too large")
            raw = await resp.content.read(MAX_MANIFEST + 1)
        except _aiohttp_errors() as e:
            raise Transient(f"cannot reach registry {ep.host}: {e}") from None
        finally:
            resp.release()
        if len(raw) > MAX_MANIFEST:
            raise InvalidArgument(f"manifest for {ref.familiar} is too large")
        declared = spec.parse_json(raw, f"manifest for {ref.familiar}").get("mediaType")
        header = resp.content_type
        mtype = declared or (
            header if header in spec.MANIFEST_TYPES | spec.INDEX_TYPES else spec.media_type_of(raw)
        )
        return raw, str(mtype)

    async def _retry(self, step: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.retries):
            try:
                return await step()
            except Transient:
                if attempt == self.retries - 1:
                    raise
                await asyncio.sleep(self.retry_delay * 2**attempt)
        raise AssertionError("unreachable")

    async def _blobs(
        self, eps: list[Endpoint], ref: Reference, manifest: spec.Manifest, scopes: list[str]
    ) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        for layer in manifest.layers:
            if not self.content.has(layer.digest):
                self._emit(layer.digest, "Waiting")

        async def one(desc: spec.Descriptor, show: bool) -> None:
            async with sem:
                await self._blob(eps, ref, desc, scopes, show)

        jobs = [one(manifest.config, False)] + [one(d, True) for d in manifest.layers]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise _first_error(errors)

    def _emit(
        self,
        digest: str,
        action: str,
        current: int = 0,
        total: int | None = None,
        done: bool = False,
    ) -> None:
        self.progress.emit(ProgressEvent(short_id(digest), action, current, total, done))

    async def _blob(
        self,
        eps: list[Endpoint],
        ref: Reference,
        desc: spec.Descriptor,
        scopes: list[str],
        show: bool,
    ) -> None:
        """Fetch one blob into the store; retried, resumed, verified."""
        fetched = False
        if not self.content.has(desc.digest):
            try:
                fetched = await self._ingest(eps, ref, desc, scopes, show)
            except _StalePartial:
                fetched = await self._ingest(eps, ref, desc, scopes, show)
        if show and fetched:
            self._emit(desc.digest, "Download complete", desc.size, desc.size, True)
        elif show:
            self._emit(desc.digest, "Already exists", desc.size, desc.size, True)

    async def _ingest(
        self,
        eps: list[Endpoint],
        ref: Reference,
        desc: spec.Descriptor,
        scopes: list[str],
        show: bool,
    ) -> bool:
        """Download into an ingest and commit it; False if another writer got there first."""
        writer = await asyncio.to_thread(self.content.writer, desc.digest, desc.size)
        try:
            if writer.exists:
                return False
            resumed = writer.offset > 0
            await self._fetch(eps, ref, desc, writer, scopes, show)
            if show:
                self._emit(desc.digest, "Verifying checksum", desc.size, desc.size)
            try:
                await asyncio.to_thread(writer.commit)
            except DigestMismatch:
                if resumed:
                    raise _StalePartial() from None  # the commit dropped it: start over
                raise
            return True
        finally:
            writer.close()

    async def _fetch(
        self,
        eps: list[Endpoint],
        ref: Reference,
        desc: spec.Descriptor,
        writer: BlobWriter,
        scopes: list[str],
        show: bool,
    ) -> None:
        async def attempt(ep: Endpoint) -> None:
            await self._download(ep, ref, desc, writer, scopes, show)

        await self._retry(lambda: self._each(eps, attempt))

    async def _download(
        self,
        ep: Endpoint,
        ref: Reference,
        desc: spec.Descriptor,
        writer: BlobWriter,
        scopes: list[str],
        show: bool,
    ) -> None:
        if writer.offset >= desc.size:
            return  # complete already: commit verifies it
        headers = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
        what = f"download of {desc.digest}"
        resp = await self.http.send(
            "GET",
            ep,
            f"/v2/{ref.path}/blobs/{desc.digest}",
            scopes=scopes,
            headers=headers,
            what=what,
        )
        try:
            if resp.status == 416 or (resp.status == 200 and writer.offset):
                writer.truncate()  # the server ignored or refused our Range: start over
                if resp.status == 416:
                    raise Transient(f"{what}: range not satisfiable")
            elif resp.status == 206 and _range_start(resp) != writer.offset:
                writer.truncate()
                raise Transient(f"{what}: server sent the wrong range")
            elif resp.status not in (200, 206):
                body = await resp.content.read(64 << 10)
                raise error_for(resp.status, body, ep.host, what, f"blob {desc.digest} not found")
            await self._stream(resp, desc, writer, show)
        except _aiohttp_errors() as e:
            raise Transient(f"{what} from {ep.host} failed: {e or type(e).__name__}") from None
        finally:
            resp.release()

    async def _stream(
        self, resp: aiohttp.ClientResponse, desc: spec.Descriptor, writer: BlobWriter, show: bool
    ) -> None:
        async for chunk in resp.content.iter_chunked(_CHUNK):
            if writer.offset + len(chunk) > desc.size:
                raise DigestMismatch(
                    f"blob {desc.digest}: more than the {desc.size} bytes announced"
                )
            writer.write(chunk)
            if show:
                self._emit(desc.digest, "Downloading", writer.offset, desc.size)
        if writer.offset < desc.size:
            raise Transient(
                f"download of {desc.digest}: connection closed after "
                f"{writer.offset} of {desc.size} bytes"
            )


def _aiohttp_errors() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (aiohttp.ClientError, TimeoutError, ConnectionError)


def _range_start(resp: aiohttp.ClientResponse) -> int:
    """First byte of a 206 answer (``Content-Range: bytes 100-199/200``); -1 if unclear."""
    unit, _, rest = resp.headers.get("Content-Range", "").partition(" ")
    start = rest.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else -1


def _first_error(errors: list[BaseException]) -> BaseException:
    """The most telling of several failures: typed errors before cancellations."""
    for e in errors:
        if isinstance(e, CapsaError):
            return e
    return errors[0]
