"""Push: blobs then the manifest, from the content store to a repository.

For each blob: skip it if the registry has it (HEAD), else try a cross-repository
mount from a repository of the same registry, else upload it: monolithic (POST then
PUT with the data) up to ``chunk_threshold`` bytes, chunked (PATCH with
``Content-Range``, then PUT) above. The manifest goes last, with its media type.
An index is pushed with each of its manifests (all must be in the content store).
"""

from __future__ import annotations

import asyncio

from capsa.errors import FailedPrecondition, Internal
from capsa.oci import image_spec as spec
from capsa.progress import NullProgress, ProgressEvent
from capsa.store.registry.errors import error_for
from capsa.store.registry.pull import short_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    import aiohttp

    from capsa.oci.reference import Reference
    from capsa.progress import ProgressSink
    from capsa.store.content import ContentStore
    from capsa.store.registry.client import Endpoint, RegistryHttp

DEFAULT_CHUNK_THRESHOLD = 16 << 20
_OCTET = "application/octet-stream"


class Pusher:
    def __init__(
        self,
        http: RegistryHttp,
        content: ContentStore,
        progress: ProgressSink | None,
        concurrency: int,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
    ) -> None:
        self.http = http
        self.content = content
        self.progress = progress or NullProgress()
        self.concurrency = max(1, concurrency)
        self.chunk_threshold = max(1, chunk_threshold)

    async def push(
        self, ep: Endpoint, ref: Reference, digest: str, mount_from: str | None = None
    ) -> str:
        """Push the document ``digest`` as ``ref``; return the manifest digest pushed."""
        mount = _mount_source(ref, mount_from)
        scopes = [f"repository:{ref.path}:pull,push"]
        if mount:
            scopes.append(f"repository:{mount}:pull")
        raw = await asyncio.to_thread(self.content.read, digest)
        mtype = spec.media_type_of(raw)
        if mtype in spec.INDEX_TYPES:
            for child in spec.load_index(raw).manifests:
                if not self.content.has(child.digest):
                    raise FailedPrecondition(
                        f"cannot push {ref.familiar}: manifest "
                        f"{child.digest} of the index is not stored"
                    )
                await self._image(ep, ref, child.digest, mount, scopes)
        else:
            await self._blobs(ep, ref, spec.load_manifest(raw), mount, scopes)
        return await self._put_manifest(
            ep, ref, ref.tag or ref.digest or digest, raw, mtype, scopes
        )

    async def _image(
        self, ep: Endpoint, ref: Reference, digest: str, mount: str | None, scopes: list[str]
    ) -> None:
        raw = await asyncio.to_thread(self.content.read, digest)
        await self._blobs(ep, ref, spec.load_manifest(raw), mount, scopes)
        await self._put_manifest(ep, ref, digest, raw, spec.media_type_of(raw), scopes)

    async def _blobs(
        self,
        ep: Endpoint,
        ref: Reference,
        manifest: spec.Manifest,
        mount: str | None,
        scopes: list[str],
    ) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        for layer in manifest.layers:
            self._emit(layer.digest, "Waiting")

        async def one(desc: spec.Descriptor, show: bool) -> None:
            async with sem:
                await self._blob(ep, ref, desc.digest, mount, scopes, show)

        jobs = [one(d, True) for d in manifest.layers] + [one(manifest.config, False)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

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
        ep: Endpoint,
        ref: Reference,
        digest: str,
        mount: str | None,
        scopes: list[str],
        show: bool,
    ) -> None:
        size = self.content.size(digest)
        if await self._exists(ep, ref, digest, scopes):
            if show:
                self._emit(digest, "Layer already exists", size, size, True)
            return
        query = f"?mount={digest}&from={mount}" if mount else ""
        what = f"upload of blob {digest}"
        resp = await self.http.send(
            "POST", ep, f"/v2/{ref.path}/blobs/uploads/{query}", scopes=scopes, what=what
        )
        location = await self._location(resp, ep, what, (201, 202))
        if resp.status == 201:
            if show:
                self._emit(digest, f"Mounted from {mount}", size, size, True)
            return
        if size > self.chunk_threshold:
            await self._chunked(ep, location, digest, size, scopes, show)
        else:
            data = await asyncio.to_thread(self.content.read, digest)
            if show:
                self._emit(digest, "Pushing", 0, size)
            await self._finish(ep, location, digest, data, scopes)
        if show:
            self._emit(digest, "Pushed", size, size, True)

    async def _exists(self, ep: Endpoint, ref: Reference, digest: str, scopes: list[str]) -> bool:
        resp = await self.http.send(
            "HEAD",
            ep,
            f"/v2/{ref.path}/blobs/{digest}",
            scopes=scopes,
            what=f"check of blob {digest}",
        )
        resp.release()
        return resp.status == 200

    async def _chunked(
        self, ep: Endpoint, location: str, digest: str, size: int, scopes: list[str], show: bool
    ) -> None:
        what = f"upload of blob {digest}"
        offset = 0
        with self.content.open(digest) as f:
            while offset < size:
                chunk = await asyncio.to_thread(f.read, self.chunk_threshold)
                if not chunk:
                    raise Internal(f"blob {digest} is shorter than {size} bytes")
                headers = {
                    "Content-Type": _OCTET,
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                }
                resp = await self.http.send(
                    "PATCH", ep, location, scopes=scopes, headers=headers, data=chunk, what=what
                )
                location = await self._location(resp, ep, what, (202,))
                offset += len(chunk)
                if show:
                    self._emit(digest, "Pushing", offset, size)
        await self._finish(ep, location, digest, b"", scopes)

    async def _finish(
        self, ep: Endpoint, location: str, digest: str, data: bytes, scopes: list[str]
    ) -> None:
        from yarl import URL

        url = str(URL(location).update_query(digest=digest))
        what = f"upload of blob {digest}"
        resp = await self.http.send(
            "PUT", ep, url, scopes=scopes, data=data, headers={"Content-Type": _OCTET}, what=what
        )
        await self._location(resp, ep, what, (201, 204))

    async def _location(
        self, resp: aiohttp.ClientResponse, ep: Endpoint, what: str, ok: tuple[int, ...]
    ) -> str:
        """Check the status; return the absolute ``Location`` the answer names."""
        from urllib.parse import urljoin

        try:
            if resp.status not in ok:
                body = await resp.read()
                raise error_for(resp.status, body, ep.host, what, f"{what}: not found")
            return urljoin(ep.url + "/", resp.headers.get("Location", ""))
        finally:
            resp.release()

    async def _put_manifest(
        self, ep: Endpoint, ref: Reference, target: str, raw: bytes, mtype: str, scopes: list[str]
    ) -> str:
        what = f"push of {ref.familiar}"
        resp = await self.http.send(
            "PUT",
            ep,
            f"/v2/{ref.path}/manifests/{target}",
            scopes=scopes,
            data=raw,
            headers={"Content-Type": mtype},
            what=what,
        )
        await self._location(resp, ep, what, (200, 201, 202))
        return spec.sha256_digest(raw)


def _mount_source(ref: Reference, mount_from: str | None) -> str | None:
    """The repository path to mount from, if it is another repository of ref's registry."""
    if not mount_from:
        return None
    source = mount_from.removeprefix(f"{ref.domain}/")
    if (
        "/" in source
        and source.split("/", 1)[0] != ref.domain
        and ("." in source.split("/", 1)[0] or ":" in source.split("/", 1)[0])
    ):
        return None  # names another registry: a mount cannot cross registries
    return None if source == ref.path else source
