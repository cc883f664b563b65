"""Pull against an in-process fake registry: auth flows, redirects, resume, mirrors."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.registry import FakeRegistry, free_port, storage_app

from capsa.config import RegistryConfig, Settings
from capsa.errors import NotFound, PermissionDenied, Unavailable
from capsa.oci.reference import parse
from capsa.progress import RecordingProgress
from capsa.store.content import ContentStore, DigestMismatch
from capsa.store.credentials import Credentials
from capsa.store.registry import RegistryClient, parse_platform

pytestmark = pytest.mark.asyncio

LAYERS = [gzip.compress(os.urandom(3000)), gzip.compress(b"second layer" * 500)]


class Env:
    def __init__(self, tmp: Path, **registries: RegistryConfig) -> None:
        self.settings = Settings(
            root=str(tmp / "root"), auth_file=str(tmp / "config.json"), registries=dict(registries)
        )
        self.content = ContentStore(self.settings.root)
        self.progress = RecordingProgress()

    def client(self, **kw: Any) -> RegistryClient:
        return RegistryClient(self.settings, self.content, self.progress, retry_delay=0, **kw)

    async def pull(self, ref: str, **kw: Any) -> Any:
        client = self.client()
        try:
            return await client.pull(parse(ref), **kw)
        finally:
            await client.close()

    def actions(self, digest: str) -> list[str]:
        short = digest[7:19]
        return [e.action for e in self.progress.events if e.id == short]


async def serve(aiohttp_server: Any, app: Any) -> str:
    server = await aiohttp_server(app)
    return f"127.0.0.1:{server.port}"


def blob_gets(fake: FakeRegistry, digest: str) -> list[dict[str, str]]:
    return [h for m, p, h in fake.requests if m == "GET" and p.endswith(digest)]


async def test_anonymous_pull_stores_everything(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    digest = fake.add_image("test/img", "v1", LAYERS)
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    result = await env.pull(f"{host}/test/img:v1")
    assert result.manifest_digest == result.top_digest == digest
    assert result.platform.architecture == "amd64"
    for desc in [result.manifest.config, *result.manifest.layers]:
        assert env.content.read(desc.digest) == fake.blobs[desc.digest]
    assert env.content.has(digest)
    layer = result.manifest.layers[0].digest
    assert env.actions(layer)[0] == "Waiting"
    assert env.actions(layer)[-2:] == ["Verifying checksum", "Download complete"]
    again = await env.pull(f"{host}/test/img:v1")
    assert again.manifest_digest == digest
    assert env.actions(layer)[-1] == "Already exists"


async def test_docker_schema2_and_pull_by_digest(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    digest = fake.add_image("test/img", "v2s2", LAYERS, media_type="v2s2")
    host = await serve(aiohttp_server, fake.app())
    result = await Env(tmp_path).pull(f"{host}/test/img@{digest}")
    assert result.top_media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert result.manifest_digest == digest


async def test_digest_reference_must_match(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.add_image("test/img", "v1", LAYERS)
    wrong = "sha256:" + "0" * 64
    fake.manifests[("test/img", wrong)] = fake.manifests[("test/img", "v1")]
    host = await serve(aiohttp_server, fake.app())
    with pytest.raises(DigestMismatch, match=wrong):
        await Env(tmp_path).pull(f"{host}/test/img@{wrong}")


async def test_bearer_token_flow(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry(auth="bearer")
    fake.add_image("test/img", "latest", LAYERS)
    host = await serve(aiohttp_server, fake.app())
    await Env(tmp_path).pull(f"{host}/test/img")
    token_requests = [p for m, p, h in fake.requests if p.startswith("/token")]
    assert token_requests, "no token was fetched"
    assert "scope=repository:test/img:pull" in token_requests[0]
    assert "service=fake-registry" in token_requests[0]
    assert len(fake.tokens_issued) == 1  # cached for every later request


async def test_bearer_with_credentials(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry(auth="bearer")
    fake.add_image("test/img", "latest", LAYERS)
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    Credentials(env.settings.auth_file).set(host, "capsa", "secret")
    await env.pull(f"{host}/test/img")
    token_headers = [h for m, p, h in fake.requests if p.startswith("/token")]
    assert token_headers[0]["Authorization"].startswith("Basic ")
    Credentials(env.settings.auth_file).set(host, "capsa", "wrong")
    with pytest.raises(PermissionDenied, match="unauthorized"):
        await Env(tmp_path).pull(f"{host}/test/img:other")


async def test_basic_auth(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry(auth="basic")
    fake.add_image("test/img", "latest", LAYERS)
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    with pytest.raises(PermissionDenied):
        await env.pull(f"{host}/test/img")
    Credentials(env.settings.auth_file).set(host, "capsa", "secret")
    await env.pull(f"{host}/test/img")


async def test_redirect_to_other_host_drops_authorization(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    fake = FakeRegistry(auth="bearer")
    fake.add_image("test/img", "latest", LAYERS)
    host = await serve(aiohttp_server, fake.app())
    storage = await aiohttp_server(storage_app(fake))
    fake.blob_redirect = f"http://localhost:{storage.port}"
    result = await Env(tmp_path).pull(f"{host}/test/img")
    layer = result.manifest.layers[0].digest
    at_registry = [h for m, p, h in fake.requests if p == f"/v2/test/img/blobs/{layer}"]
    at_storage = [h for m, p, h in fake.requests if p == f"/storage/{layer}"]
    assert at_storage and at_registry
    assert any("Authorization" in h for h in at_registry)
    assert not any("Authorization" in h for h in at_storage)


async def test_dropped_connection_resumes_with_range(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.add_image("test/img", "latest", LAYERS)
    layer = json.loads(fake.manifests[("test/img", "latest")][0])["layers"][0]["digest"]
    fake.drop_after[layer] = 1000
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    await env.pull(f"{host}/test/img")
    ranges = [h.get("Range") for h in blob_gets(fake, layer)]
    assert ranges == [None, "bytes=1000-"]
    assert env.content.read(layer) == fake.blobs[layer]


async def test_server_ignoring_range_starts_over(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.add_image("test/img", "latest", LAYERS)
    layer = json.loads(fake.manifests[("test/img", "latest")][0])["layers"][0]["digest"]
    fake.drop_after[layer] = 1000
    fake.ignore_range = True
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    await env.pull(f"{host}/test/img")
    assert len(blob_gets(fake, layer)) == 2
    assert env.content.read(layer) == fake.blobs[layer]


async def test_resume_from_earlier_partial_ingest(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.add_image("test/img", "latest", LAYERS)
    good, stale = (
        json.loads(fake.manifests[("test/img", "latest")][0])["layers"][i]["digest"] for i in (0, 1)
    )
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    with env.content.writer(good, len(fake.blobs[good])) as w:
        w.write(fake.blobs[good][:500])  # an interrupted pull left this
    with env.content.writer(stale, len(fake.blobs[stale])) as w:
        w.write(b"x" * 10)  # and this, which is garbage
    await env.pull(f"{host}/test/img")
    assert [h.get("Range") for h in blob_gets(fake, good)] == ["bytes=500-"]
    assert [h.get("Range") for h in blob_gets(fake, stale)] == ["bytes=10-", None]
    assert env.content.read(good) == fake.blobs[good]
    assert env.content.read(stale) == fake.blobs[stale]


async def test_corrupt_blob_is_rejected(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.add_image("test/img", "latest", LAYERS)
    layer = json.loads(fake.manifests[("test/img", "latest")][0])["layers"][1]["digest"]
    fake.corrupt[layer] = b"y" * len(fake.blobs[layer])
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    with pytest.raises(DigestMismatch, match=layer):
        await env.pull(f"{host}/test/img")
    assert not env.content.has(layer)
    assert not os.listdir(env.content.ingest_dir) or all(
        os.path.getsize(os.path.join(env.content.ingest_dir, n)) == 0
        for n in os.listdir(env.content.ingest_dir)
    )


async def test_mirrors_fall_through_to_origin(aiohttp_server: Any, tmp_path: Path) -> None:
    origin, empty = FakeRegistry(), FakeRegistry()
    digest = origin.add_image("library/busybox", "latest", LAYERS)
    origin_host = await serve(aiohttp_server, origin.app())
    empty_host = await serve(aiohttp_server, empty.app())
    refused = f"http://127.0.0.1:{free_port()}"
    mirrors = [refused, f"http://{empty_host}"]
    env = Env(tmp_path, **{origin_host: RegistryConfig(mirrors=mirrors)})
    result = await env.pull(f"{origin_host}/library/busybox")
    assert result.manifest_digest == digest
    assert any(p.startswith("/v2/library/busybox/manifests") for _, p, _ in empty.requests)


async def test_mirror_serves_when_origin_is_down(aiohttp_server: Any, tmp_path: Path) -> None:
    mirror = FakeRegistry()
    digest = mirror.add_image("library/busybox", "latest", LAYERS)
    mirror_host = await serve(aiohttp_server, mirror.app())
    env = Env(tmp_path, **{"docker.io": RegistryConfig(mirrors=[f"http://{mirror_host}"])})
    result = await env.pull("busybox")
    assert result.manifest_digest == digest
    assert str(result.reference) == "docker.io/library/busybox:latest"


async def test_index_selects_platform(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    amd = fake.add_image("test/multi", "amd", LAYERS[:1], arch="amd64")
    arm = fake.add_image("test/multi", "arm", LAYERS[1:], arch="arm64")
    entries = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d,
            "size": len(fake.manifests[("test/multi", d)][0]),
            "platform": {"os": "linux", "architecture": a},
        }
        for d, a in ((amd, "amd64"), (arm, "arm64"))
    ]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": entries,
            "mediaType": "application/vnd.oci.image.index.v1+json",
        }
    ).encode()
    top = fake.add_manifest(
        "test/multi", "latest", index, "application/vnd.oci.image.index.v1+json"
    )
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    result = await env.pull(f"{host}/test/multi", platform=parse_platform("linux/amd64"))
    assert (result.top_digest, result.manifest_digest) == (top, amd)
    result = await env.pull(f"{host}/test/multi", platform=parse_platform("linux/arm64"))
    assert (result.manifest_digest, result.platform.architecture) == (arm, "arm64")
    assert env.content.has(top)
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        await env.pull(f"{host}/test/multi", platform=parse_platform("linux/s390x"))


async def test_missing_manifest_is_not_found(aiohttp_server: Any, tmp_path: Path) -> None:
    host = await serve(aiohttp_server, FakeRegistry().app())
    with pytest.raises(NotFound, match=f"manifest for {host}/test/none:latest not found"):
        await Env(tmp_path).pull(f"{host}/test/none")


async def test_unreachable_registry(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable, match=f"cannot reach registry {host}"):
        await Env(tmp_path).pull(f"{host}/test/img")


async def test_server_errors_are_retried_then_unavailable(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    fake = FakeRegistry()
    fake.status = 503
    host = await serve(aiohttp_server, fake.app())
    with pytest.raises(Unavailable, match="status 503"):
        await Env(tmp_path).pull(f"{host}/test/img")
    assert len([r for r in fake.requests if "/manifests/" in r[1]]) == 3


async def test_concurrent_pulls_of_one_image(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry()
    digest = fake.add_image("test/img", "latest", [gzip.compress(os.urandom(1 << 20))])
    host = await serve(aiohttp_server, fake.app())
    env = Env(tmp_path)
    results = await asyncio.gather(*(env.pull(f"{host}/test/img") for _ in range(3)))
    assert {r.manifest_digest for r in results} == {digest}
    layer = results[0].manifest.layers[0].digest
    assert env.content.read(layer) == fake.blobs[layer]
