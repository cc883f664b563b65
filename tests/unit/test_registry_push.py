"""Push to an in-process fake registry: monolithic, chunked, skip, mount, auth."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.registry import FakeRegistry

from capsa.config import Settings
from capsa.errors import NotFound
from capsa.oci.reference import parse
from capsa.progress import RecordingProgress
from capsa.store.content import ContentStore
from capsa.store.credentials import Credentials
from capsa.store.registry import RegistryClient

pytestmark = pytest.mark.asyncio

LAYERS = [gzip.compress(os.urandom(4000)), gzip.compress(os.urandom(2500))]


async def setup(
    aiohttp_server: Any, tmp_path: Path, auth: str | None = None
) -> tuple[FakeRegistry, str, Settings, str]:
    """A fake registry holding test/src, and a store that pulled it."""
    fake = FakeRegistry(auth=auth)
    fake.add_image("test/src", "latest", LAYERS)
    server = await aiohttp_server(fake.app())
    host = f"127.0.0.1:{server.port}"
    settings = Settings(root=str(tmp_path / "root"), auth_file=str(tmp_path / "auth.json"))
    if auth:
        Credentials(settings.auth_file).set(host, "capsa", "secret")
    client = RegistryClient(settings, ContentStore(settings.root))
    try:
        digest = (await client.pull(parse(f"{host}/test/src"))).manifest_digest
    finally:
        await client.close()
    return fake, host, settings, digest


async def push(settings: Settings, ref: str, digest: str, **kw: Any) -> tuple[str, list[str]]:
    progress = RecordingProgress()
    client = RegistryClient(
        settings,
        ContentStore(settings.root),
        progress,
        chunk_threshold=kw.pop("chunk_threshold", 16 << 20),
    )
    try:
        pushed = await client.push(parse(ref), digest, **kw)
    finally:
        await client.close()
    return pushed, [e.action for e in progress.events if e.done]


def methods(fake: FakeRegistry, start: int = 0) -> list[str]:
    return [m for m, p, _ in fake.requests[start:] if "/blobs/uploads/" in p]


async def test_monolithic_push_then_skip(aiohttp_server: Any, tmp_path: Path) -> None:
    fake, host, settings, digest = await setup(aiohttp_server, tmp_path)
    pushed, done = await push(settings, f"{host}/test/dst:v1", digest)
    assert pushed == digest
    assert fake.manifests[("test/dst", "v1")][0] == fake.manifests[("test/src", "latest")][0]
    assert done == ["Pushed", "Pushed"]
    assert sorted(methods(fake)) == ["POST"] * 3 + ["PUT"] * 3  # two layers and the config
    start = len(fake.requests)
    _, done = await push(settings, f"{host}/test/dst:v2", digest)
    assert done == ["Layer already exists"] * 2
    assert methods(fake, start) == []


async def test_chunked_push(aiohttp_server: Any, tmp_path: Path) -> None:
    fake, host, settings, digest = await setup(aiohttp_server, tmp_path)
    originals = dict(fake.blobs)
    await push(settings, f"{host}/test/dst", digest, chunk_threshold=1000)
    assert fake.links["test/dst"] == fake.links["test/src"]
    assert fake.blobs == originals
    patches = [p for m, p, _ in fake.requests if m == "PATCH"]
    assert len(patches) >= 5  # 4000+ and 2500+ byte layers in 1000-byte chunks


async def test_cross_repository_mount(aiohttp_server: Any, tmp_path: Path) -> None:
    fake, host, settings, digest = await setup(aiohttp_server, tmp_path)
    start = len(fake.requests)
    _, done = await push(settings, f"{host}/test/dst", digest, mount_from=f"{host}/test/src")
    assert done == ["Mounted from test/src"] * 2
    posts = [p for m, p, _ in fake.requests[start:] if m == "POST"]
    assert len(posts) == 3
    assert all("mount=sha256:" in p and "from=test/src" in p for p in posts)
    assert [m for m, _, _ in fake.requests[start:] if m in ("PUT", "PATCH")] == ["PUT"]


async def test_failed_mount_falls_back_to_upload(aiohttp_server: Any, tmp_path: Path) -> None:
    fake, host, settings, digest = await setup(aiohttp_server, tmp_path)
    _, done = await push(settings, f"{host}/test/dst", digest, mount_from="test/elsewhere")
    assert done == ["Pushed", "Pushed"]
    assert ("test/dst", "latest") in fake.manifests


async def test_push_with_bearer_auth_asks_push_scope(aiohttp_server: Any, tmp_path: Path) -> None:
    fake, host, settings, digest = await setup(aiohttp_server, tmp_path, auth="bearer")
    await push(settings, f"{host}/test/dst", digest)
    scopes = [p for m, p, _ in fake.requests if p.startswith("/token")]
    assert any("scope=repository:test/dst:pull,push" in p for p in scopes)
    assert ("test/dst", "latest") in fake.manifests


async def test_push_unknown_manifest(aiohttp_server: Any, tmp_path: Path) -> None:
    _, host, settings, _ = await setup(aiohttp_server, tmp_path)
    with pytest.raises(NotFound):
        await push(settings, f"{host}/test/dst", "sha256:" + "1" * 64)
