"""Platform parsing, normalization and selection from an index."""

from __future__ import annotations

import pytest

from capsa.errors import InvalidArgument, NotFound
from capsa.oci.image_spec import Descriptor, Index, Platform
from capsa.store.registry.platform import (
    host_platform,
    normalize,
    parse_platform,
    rank,
    select_manifest,
)


def test_parse_and_normalize() -> None:
    assert parse_platform("linux/arm64") == Platform("arm64", "linux", variant="v8")
    assert parse_platform("linux/arm64/v8") == parse_platform("linux/aarch64")
    assert parse_platform("linux/x86_64") == Platform("amd64", "linux")
    assert parse_platform("linux/arm") == Platform("arm", "linux", variant="v7")
    assert parse_platform("Linux/ARM/6") == Platform("arm", "linux", variant="v6")
    assert str(parse_platform("linux/amd64")) == "linux/amd64"
    for bad in ("linux", "linux/", "/amd64", "a/b/c/d"):
        with pytest.raises(InvalidArgument):
            parse_platform(bad)


def test_host_platform() -> None:
    host = host_platform()
    assert host.os == "linux"
    assert host == normalize(host)
    assert host.architecture in ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64")


def test_rank_follows_containerd() -> None:
    arm64 = parse_platform("linux/arm64")
    assert rank(arm64, Platform("arm64", "linux")) == 0
    assert rank(arm64, Platform("arm", "linux", variant="v7")) is not None
    assert rank(arm64, Platform("amd64", "linux")) is None
    armv7 = parse_platform("linux/arm/v7")
    assert rank(armv7, Platform("arm", "linux", variant="v6")) is not None
    assert rank(armv7, Platform("arm", "linux", variant="v8")) is None
    assert rank(parse_platform("linux/arm/v6"), Platform("arm", "linux", variant="v7")) is None
    amd64 = parse_platform("linux/amd64")
    assert rank(amd64, Platform("amd64", "linux", variant="v2")) == 0
    assert rank(amd64, Platform("amd64", "windows")) is None


def _index(*platforms: Platform | None) -> Index:
    return Index(
        manifests=[
            Descriptor(digest=f"sha256:{i:064x}", platform=p) for i, p in enumerate(platforms)
        ]
    )


def test_select_manifest() -> None:
    idx = _index(
        Platform("unknown", "unknown"),
        Platform("arm", "linux", variant="v6"),
        Platform("arm", "linux", variant="v7"),
        Platform("amd64", "linux"),
        Platform("arm64", "linux", variant="v8"),
        None,
    )
    assert select_manifest(idx, parse_platform("linux/amd64")).digest.endswith("3")
    assert select_manifest(idx, parse_platform("linux/arm64")).digest.endswith("4")
    assert select_manifest(idx, parse_platform("linux/arm/v7")).digest.endswith("2")
    assert select_manifest(idx, parse_platform("linux/arm/v6")).digest.endswith("1")
    with pytest.raises(NotFound, match="linux/s390x"):
        select_manifest(idx, parse_platform("linux/s390x"))
    # an arm64 host falls back to 32-bit arm when that is all there is
    assert select_manifest(
        _index(Platform("arm", "linux", variant="v7")), parse_platform("linux/arm64")
    ).digest.endswith("0")
