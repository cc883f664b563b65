"""Basic-auth registry (htpasswd): pull refused without credentials; login, then pull."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import requires
from tests.helpers.images import ImageLayouts, image_layouts
from tests.helpers.registry import LocalRegistry, auth_registry, push_layout

from capsa.config import Settings
from capsa.errors import PermissionDenied
from capsa.oci.reference import parse
from capsa.store.content import ContentStore
from capsa.store.credentials import Credentials, login
from capsa.store.registry import PullResult, RegistryClient

__all__ = ["auth_registry", "image_layouts"]


@pytest.fixture(scope="module")
def secured(auth_registry: LocalRegistry, image_layouts: ImageLayouts) -> Iterator[LocalRegistry]:
    requires("docker-registry", "skopeo", "umoci", "htpasswd")
    push_layout(auth_registry, image_layouts.busybox(), "test/busybox:latest")
    yield auth_registry


def pull(settings: Settings, ref: str) -> PullResult:
    async def run() -> PullResult:
        async with RegistryClient(settings, ContentStore(settings.root)) as client:
            return await client.pull(parse(ref))

    return asyncio.run(run())


def test_login_then_pull(secured: LocalRegistry, tmp_path: Path) -> None:
    settings = Settings(root=str(tmp_path / "root"), auth_file=str(tmp_path / "auth.json"))
    ref = f"{secured.host}/test/busybox"
    with pytest.raises(PermissionDenied):
        pull(settings, ref)
    with pytest.raises(PermissionDenied, match=f"login to {secured.host} failed: unauthorized"):
        asyncio.run(login(settings, secured.host, "capsa", "wrong"))
    assert not Path(settings.auth_file).exists()
    asyncio.run(login(settings, secured.host, "capsa", "secret"))
    assert Credentials(settings.auth_file).get(secured.host) == ("capsa", "secret")
    result = pull(settings, ref)
    assert ContentStore(settings.root).has(result.manifest.layers[0].digest)
    assert Credentials(settings.auth_file).remove(secured.host)
    with pytest.raises(PermissionDenied):
        pull(settings, f"{ref}:latest")
