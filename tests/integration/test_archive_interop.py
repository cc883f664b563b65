"""Archive interop with skopeo and umoci: capsa reads what they write and vice versa."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.helpers import requires
from tests.helpers.images import busybox_layout, umoci
from tests.helpers.rootfs import build_busybox_rootfs

from capsa.oci.image_spec import Platform
from capsa.store import archive
from capsa.store.archive import LoadedImage, SaveItem
from capsa.store.content import ContentStore
from capsa.store.importer import export_rootfs, import_rootfs

pytestmark = pytest.mark.root

AMD64 = Platform(architecture="amd64", os="linux")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def skopeo(*args: str) -> bytes:
    proc = subprocess.run(["skopeo", *args], capture_output=True, timeout=300)
    assert proc.returncode == 0, f"skopeo {' '.join(args)}: {proc.stderr.decode()}"
    return proc.stdout


def layout_image(layout: Path, tag: str = "latest") -> tuple[str, dict[str, object]]:
    """(manifest digest, manifest) of ``tag`` in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    [desc] = [
        d
        for d in index["manifests"]
        if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    blob = layout / "blobs" / "sha256" / desc["digest"].partition(":")[2]
    return desc["digest"], json.loads(blob.read_bytes())


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    requires("skopeo", "umoci")
    return busybox_layout(tmp_path_factory.mktemp("capsa-test-archive") / "layout")


@pytest.fixture
def content(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "root"))


def load_file(content: ContentStore, path: Path) -> list[LoadedImage]:
    with open(path, "rb") as f:
        return archive.load(content, f)


def save_file(content: ContentStore, images: list[LoadedImage], path: Path, fmt: str) -> None:
    items = [SaveItem(i.manifest_digest, i.config_digest, i.names) for i in images]
    with open(path, "wb") as f:
        archive.save(content, items, f, fmt)


def test_docker_archive_round_trip(busybox: Path, tmp_path: Path, content: ContentStore) -> None:
    theirs = tmp_path / "skopeo.tar"
    skopeo("copy", f"oci:{busybox}:latest", f"docker-archive:{theirs}:busybox:latest")
    [image] = load_file(content, theirs)
    assert image.names == ["docker.io/library/busybox:latest"]
    assert image.config_digest == sha(
        skopeo("inspect", "--config", "--raw", f"docker-archive:{theirs}")
    )

    ours = tmp_path / "capsa.tar"
    save_file(content, [image], ours, "docker-archive")
    raw_config = skopeo("inspect", "--config", "--raw", f"docker-archive:{ours}")
    assert sha(raw_config) == image.config_digest
    info = json.loads(skopeo("inspect", f"docker-archive:{ours}"))
    assert info["Layers"] == image.config.rootfs.diff_ids
    # skopeo converts the config when going to OCI: both archives must convert alike
    skopeo("copy", f"docker-archive:{theirs}", f"oci:{tmp_path / 'from-theirs'}:x")
    skopeo("copy", f"docker-archive:{ours}", f"oci:{tmp_path / 'from-ours'}:x")
    _, converted_theirs = layout_image(tmp_path / "from-theirs", "x")
    _, converted_ours = layout_image(tmp_path / "from-ours", "x")
    assert converted_ours["config"] == converted_theirs["config"]
    assert converted_ours["layers"] == converted_theirs["layers"]

    [again] = load_file(ContentStore(str(tmp_path / "again")), ours)
    assert (again.config_digest, again.names) == (image.config_digest, image.names)


def test_oci_archive_round_trip(busybox: Path, tmp_path: Path, content: ContentStore) -> None:
    manifest_digest, manifest = layout_image(busybox)
    theirs = tmp_path / "skopeo-oci.tar"
    skopeo("copy", f"oci:{busybox}:latest", f"oci-archive:{theirs}:busybox:latest")
    [image] = load_file(content, theirs)
    assert image.manifest_digest == manifest_digest
    assert image.names == ["docker.io/library/busybox:latest"]

    ours = tmp_path / "capsa-oci.tar"
    save_file(content, [image], ours, "oci-archive")
    skopeo("inspect", f"oci-archive:{ours}")
    skopeo("copy", f"oci-archive:{ours}", f"oci:{tmp_path / 'copied'}:latest")
    copied_digest, copied = layout_image(tmp_path / "copied")
    assert copied["config"] == manifest["config"]
    assert copied_digest == manifest_digest


def test_gzip_image_to_docker_archive(busybox: Path, tmp_path: Path, content: ContentStore) -> None:
    """An image as pulled (gzip layers) saves as a docker-archive of plain layers."""
    theirs = tmp_path / "skopeo-oci.tar"
    skopeo("copy", f"oci:{busybox}:latest", f"oci-archive:{theirs}")
    [image] = load_file(content, theirs)
    assert all(layer.media_type.endswith("gzip") for layer in image.manifest.layers)
    image.names = ["localhost:5000/test/busybox:v1"]
    ours = tmp_path / "capsa.tar"
    save_file(content, [image], ours, "docker-archive")
    assert sha(skopeo("inspect", "--config", "--raw", f"docker-archive:{ours}")) == (
        image.config_digest
    )
    skopeo("copy", f"docker-archive:{ours}", f"oci:{tmp_path / 'copied'}:latest")
    skopeo("copy", f"docker-archive:{ours}:localhost:5000/test/busybox:v1", f"dir:{tmp_path / 'd'}")


def test_import_busybox_rootfs(tmp_path: Path, content: ContentStore) -> None:
    requires("skopeo", "umoci")
    rootfs = build_busybox_rootfs(tmp_path / "rootfs")
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        assert tar.stdout is not None
        image = import_rootfs(content, tar.stdout, ['CMD ["/bin/sh"]'], AMD64, "busybox")
    assert tar.returncode == 0
    config = json.loads(content.read(image.config_digest))
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["history"][0]["comment"] == "busybox"

    image.names = ["localhost/imported:latest"]
    ours = tmp_path / "imported.tar"
    save_file(content, [image], ours, "oci-archive")
    skopeo("copy", f"oci-archive:{ours}", f"oci:{tmp_path / 'layout'}:latest")
    umoci("unpack", "--image", f"{tmp_path / 'layout'}:latest", str(tmp_path / "bundle"))
    unpacked = tmp_path / "bundle" / "rootfs"
    assert (unpacked / "bin" / "busybox").read_bytes() == (rootfs / "bin" / "busybox").read_bytes()
    assert os.readlink(unpacked / "bin" / "sh") == "busybox"
    assert (unpacked / "home" / "user").stat().st_uid == 1000


def test_export_then_import(tmp_path: Path, content: ContentStore) -> None:
    rootfs = build_busybox_rootfs(tmp_path / "rootfs")
    (rootfs / "bin" / "busybox").chmod(0o4755)
    out = io.BytesIO()
    export_rootfs(str(rootfs), out)
    out.seek(0)
    image = import_rootfs(content, out, [], AMD64)
    docker = tmp_path / "exported.tar"
    save_file(content, [image], docker, "docker-archive")
    info = json.loads(skopeo("inspect", f"docker-archive:{docker}"))
    assert info["Layers"] == image.config.rootfs.diff_ids
