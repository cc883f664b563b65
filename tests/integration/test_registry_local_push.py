"""Push a pulled image to another repository (mount, monolithic, chunked) and pull it back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import requires
from tests.helpers.images import ImageLayouts, image_layouts
from tests.helpers.registry import LocalRegistry, inspect_raw, push_layout, registry

from capsa.config import Settings
from capsa.oci.image_spec import sha256_digest
from capsa.oci.reference import parse
from capsa.progress import RecordingProgress
from capsa.store.content import ContentStore
from capsa.store.registry import PullResult, RegistryClient

__all__ = ["image_layouts", "registry"]


@pytest.fixture(scope="module")
def source(registry: LocalRegistry, image_layouts: ImageLayouts) -> Iterator[LocalRegistry]:
    requires("docker-registry", "skopeo", "umoci")
    push_layout(registry, image_layouts.layered(), "test/src:latest")
    push_layout(registry, image_layouts.busybox(), "test/src:v2s2", fmt="v2s2")
    yield registry


def client(
    root: Path, progress: RecordingProgress | None = None, chunk_threshold: int = 16 << 20
) -> RegistryClient:
    settings = Settings(root=str(root), auth_file=str(root / "auth.json"))
    return RegistryClient(
        settings, ContentStore(settings.root), progress, chunk_threshold=chunk_threshold
    )


def pull(root: Path, ref: str) -> PullResult:
    async def run() -> PullResult:
        async with client(root) as c:
            return await c.pull(parse(ref))

    return asyncio.run(run())


def push(
    root: Path,
    ref: str,
    digest: str,
    mount_from: str | None = None,
    chunk_threshold: int = 16 << 20,
) -> tuple[str, list[str]]:
    progress = RecordingProgress()

    async def run() -> str:
        async with client(root, progress, chunk_threshold) as c:
            return await c.push(parse(ref), digest, mount_from)

    pushed = asyncio.run(run())
    return pushed, [e.action for e in progress.events if e.done]


@pytest.mark.parametrize("tag", ["latest", "v2s2"])
def test_push_and_pull_back(source: LocalRegistry, tmp_path: Path, tag: str) -> None:
    pulled = pull(tmp_path / "a", f"{source.host}/test/src:{tag}")
    dest = f"{source.host}/test/copy-{tag}:latest"
    pushed, done = push(tmp_path / "a", dest, pulled.manifest_digest)
    assert pushed == pulled.manifest_digest
    assert set(done) == {"Pushed"}
    assert sha256_digest(inspect_raw(source, f"test/copy-{tag}:latest")) == pushed
    back = pull(tmp_path / "b", dest)
    assert back.manifest_digest == pulled.manifest_digest
    _, again = push(tmp_path / "a", dest, pulled.manifest_digest)
    assert set(again) == {"Layer already exists"}


def test_cross_repository_mount(source: LocalRegistry, tmp_path: Path) -> None:
    pulled = pull(tmp_path, f"{source.host}/test/src")
    _, done = push(
        tmp_path,
        f"{source.host}/test/mounted",
        pulled.manifest_digest,
        mount_from=f"{source.host}/test/src",
    )
    assert done == ["Mounted from test/src"] * len(pulled.manifest.layers)
    assert pull(tmp_path / "b", f"{source.host}/test/mounted").manifest_digest == (
        pulled.manifest_digest
    )


def test_chunked_push(source: LocalRegistry, tmp_path: Path) -> None:
    pulled = pull(tmp_path / "a", f"{source.host}/test/src")
    dest = f"{source.host}/test/chunked:v1"
    pushed, _ = push(tmp_path / "a", dest, pulled.manifest_digest, chunk_threshold=64 << 10)
    assert pushed == pulled.manifest_digest
    back = pull(tmp_path / "b", dest)
    assert back.manifest_digest == pushed
    big = max(pulled.manifest.layers, key=lambda d: d.size)
    assert big.size > 64 << 10
    assert ContentStore(str(tmp_path / "b")).read(big.digest) == ContentStore(
        str(tmp_path / "a")
    ).read(big.digest)
