"""Pull from Debian's docker-registry on loopback: images made offline, pushed by skopeo."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import requires
from tests.helpers.images import ImageLayouts, image_layouts
from tests.helpers.registry import LocalRegistry, free_port, inspect_raw, push_layout, registry

from capsa.config import RegistryConfig, Settings
from capsa.oci.image_spec import sha256_digest
from capsa.oci.reference import parse
from capsa.store.content import ContentStore
from capsa.store.registry import PullResult, RegistryClient, host_platform, parse_platform

__all__ = ["image_layouts", "registry"]


@pytest.fixture(scope="module")
def images(registry: LocalRegistry, image_layouts: ImageLayouts) -> Iterator[LocalRegistry]:
    """The registry holding busybox (OCI and v2s2), a multi-platform, a layered image."""
    requires("docker-registry", "skopeo", "umoci")
    push_layout(registry, image_layouts.busybox(), "test/busybox:latest")
    push_layout(registry, image_layouts.busybox(), "test/busybox:v2s2", fmt="v2s2")
    push_layout(registry, image_layouts.multiplatform(), "test/multi:latest")
    push_layout(registry, image_layouts.layered(), "test/layered:latest")
    push_layout(registry, image_layouts.busybox(), "library/busybox:latest")
    yield registry


def settings_for(tmp_path: Path, **registries: RegistryConfig) -> Settings:
    return Settings(
        root=str(tmp_path / "root"),
        auth_file=str(tmp_path / "auth.json"),
        registries=dict(registries),
    )


def pull(settings: Settings, ref: str, **kw: Any) -> PullResult:
    async def run() -> PullResult:
        async with RegistryClient(settings, ContentStore(settings.root)) as client:
            return await client.pull(parse(ref), **kw)

    return asyncio.run(run())


def assert_store_sound(content: ContentStore) -> None:
    """Every blob under blobs/ hashes to its name."""
    for digest in content.digests():
        assert sha256_digest(content.read(digest)) == digest


@pytest.mark.parametrize("tag", ["latest", "v2s2"])
def test_pull_matches_registry(images: LocalRegistry, tmp_path: Path, tag: str) -> None:
    settings = settings_for(tmp_path)
    result = pull(settings, f"{images.host}/test/busybox:{tag}")
    content = ContentStore(settings.root)
    raw = inspect_raw(images, f"test/busybox:{tag}")
    assert result.manifest_digest == result.top_digest == sha256_digest(raw)
    assert content.read(result.manifest_digest) == raw
    assert content.read(result.config_digest) == inspect_raw(
        images, f"test/busybox:{tag}", config=True
    )
    layers = json.loads(raw)["layers"]
    assert [d.digest for d in result.manifest.layers] == [d["digest"] for d in layers]
    assert all(content.size(d["digest"]) == d["size"] for d in layers)
    assert result.config.config is not None and result.config.config.cmd == ["/bin/sh"]
    assert_store_sound(content)


def test_multiplatform_index(images: LocalRegistry, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    index = inspect_raw(images, "test/multi:latest")
    by_arch = {m["platform"]["architecture"]: m["digest"] for m in json.loads(index)["manifests"]}
    native = pull(settings, f"{images.host}/test/multi")
    assert native.top_digest == sha256_digest(index)
    if host_platform().architecture in by_arch:
        assert native.manifest_digest == by_arch[host_platform().architecture]
    arm = pull(settings, f"{images.host}/test/multi", platform=parse_platform("linux/arm64"))
    assert arm.manifest_digest == by_arch["arm64"]
    assert arm.platform.architecture == "arm64"
    amd = pull(settings, f"{images.host}/test/multi", platform=parse_platform("linux/amd64"))
    assert amd.manifest_digest == by_arch["amd64"]
    assert ContentStore(settings.root).read(native.top_digest) == index


def test_layered_image(images: LocalRegistry, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    result = pull(settings, f"{images.host}/test/layered")
    assert len(result.manifest.layers) == 3
    config = json.loads(ContentStore(settings.root).read(result.config_digest))
    assert len(config["rootfs"]["diff_ids"]) == 3


def test_mirror_serves_docker_hub_names(images: LocalRegistry, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    hub = RegistryConfig(mirrors=[dead, images.url])
    result = pull(settings_for(tmp_path, **{"docker.io": hub}), "busybox")
    assert result.reference.name == "docker.io/library/busybox:latest"
    assert result.manifest_digest == sha256_digest(inspect_raw(images, "library/busybox"))


_CRASHER = textwrap.dedent("""
    import asyncio, os, signal, sys
    from capsa.config import Settings
    from capsa.oci.reference import parse
    from capsa.store.content import ContentStore
    from capsa.store.registry import RegistryClient

    class KillOnFirstBytes:
        def emit(self, event):
            if event.action == "Downloading":
                os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        settings = Settings(root=sys.argv[1])
        client = RegistryClient(settings, ContentStore(settings.root), KillOnFirstBytes())
        await client.pull(parse(sys.argv[2]))

    asyncio.run(main())
""")


def test_pull_killed_midway_then_again(images: LocalRegistry, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    ref = f"{images.host}/test/layered:latest"
    proc = subprocess.run(
        [sys.executable, "-c", _CRASHER, settings.root, ref], capture_output=True, timeout=60
    )
    assert proc.returncode == -9, proc.stderr.decode()
    content = ContentStore(settings.root)
    assert_store_sound(content)
    assert os.listdir(content.ingest_dir)  # the interrupted download left its partial data
    result = pull(settings, ref)
    for desc in result.manifest.layers:
        assert content.has(desc.digest)
    assert_store_sound(content)
    content.clean_ingest()
    assert os.listdir(content.ingest_dir) == []
