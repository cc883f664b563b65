"""Test images made offline: OCI layouts built with umoci from a busybox rootfs.

Each builder creates an OCI layout at ``dest`` (which must not exist) whose image is
tagged ``latest``, and returns ``dest``:

- ``busybox_layout``: one layer, the busybox rootfs; config cmd ``/bin/sh``.
- ``layered_layout``: busybox plus two crafted layers: the second adds ``/data`` (files,
  a symlink, a hard link, a setuid file owned by 1000, ``/data/dir/{a.txt,sub/b.txt}``),
  the third deletes ``/data/gone.txt`` (whiteout) and replaces ``/data/dir`` (opaque
  directory holding only ``c.txt``).
- ``deep_layout``: busybox plus ``n - 1`` one-file layers (``/layers/NNN.txt``).
- ``multiplatform_layout``: an OCI index with linux/amd64 and linux/arm64/v8
  manifests (same layer, different configs).

``ImageLayouts`` (fixture ``image_layouts``, session scope) builds each on first use.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.helpers.rootfs import BUSYBOX, build_busybox_rootfs

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def umoci(*args: str) -> None:
    if shutil.which("umoci") is None:
        pytest.skip("needs umoci (apt-get install umoci)")
    rootless = [] if os.geteuid() == 0 else ["--rootless"]
    cmd = ["umoci", *args]
    if args and args[0] in ("unpack", "repack"):
        cmd = ["umoci", args[0], *rootless, *args[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def busybox_layout(dest: Path, arch: str = "amd64") -> Path:
    """An OCI layout at ``dest`` holding ``latest``: busybox, cmd /bin/sh."""
    if not BUSYBOX.is_file():
        pytest.skip(f"needs {BUSYBOX} (apt-get install busybox-static)")
    work = Path(tempfile.mkdtemp(prefix="capsa-test-umoci-"))
    try:
        image = f"{dest}:latest"
        umoci("init", "--layout", str(dest))
        umoci("new", "--image", image)
        bundle = work / "bundle"
        umoci("unpack", "--image", image, str(bundle))
        (bundle / "rootfs").rmdir()
        build_busybox_rootfs(bundle / "rootfs")
        umoci("repack", "--image", image, str(bundle))
        umoci(
            "config",
            "--image",
            image,
            "--config.cmd",
            "/bin/sh",
            "--config.env",
            PATH_ENV,
            "--os",
            "linux",
            "--architecture",
            arch,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    if info.type != tarfile.REGTYPE:
        info.size = 0
    tar.addfile(info, io.BytesIO(data) if info.size else None)


def _dir(tar: tarfile.TarFile, name: str) -> None:
    _add(tar, name, type=tarfile.DIRTYPE, mode=0o755)


def _layer_tar(path: Path, build: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return path


def _layer_two(tar: tarfile.TarFile) -> None:
    _dir(tar, "data")
    _add(tar, "data/keep.txt", b"keep\n")
    _add(tar, "data/gone.txt", b"to be deleted\n")
    _add(tar, "data/link", type=tarfile.SYMTYPE, linkname="keep.txt", mode=0o777)
    _add(tar, "data/hard", type=tarfile.LNKTYPE, linkname="data/keep.txt")
    _add(tar, "data/suid", b"#!/bin/sh\necho suid\n", mode=0o4755, uid=1000, gid=1000)
    _dir(tar, "data/dir")
    _add(tar, "data/dir/a.txt", b"a\n")
    _dir(tar, "data/dir/sub")
    _add(tar, "data/dir/sub/b.txt", b"b\n")
    _add(tar, "etc/motd", b"layer two\n")


def _layer_three(tar: tarfile.TarFile) -> None:
    _add(tar, "data/.wh.gone.txt")
    _dir(tar, "data/dir")
    _add(tar, "data/dir/.wh..wh..opq")
    _add(tar, "data/dir/c.txt", b"c\n")
    _add(tar, "etc/motd", b"layer three\n")


def add_layer(layout: Path, tar_path: Path, created_by: str) -> None:
    umoci(
        "raw",
        "add-layer",
        "--image",
        f"{layout}:latest",
        "--history.created_by",
        created_by,
        str(tar_path),
    )


def layered_layout(dest: Path) -> Path:
    """busybox + a layer adding /data + a layer with a whiteout and an opaque dir."""
    busybox_layout(dest)
    work = Path(tempfile.mkdtemp(prefix="capsa-test-layers-"))
    try:
        add_layer(dest, _layer_tar(work / "two.tar", _layer_two), "add /data")
        add_layer(dest, _layer_tar(work / "three.tar", _layer_three), "whiteout and opaque")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def deep_layout(dest: Path, n: int = 60) -> Path:
    """busybox + ``n - 1`` small layers: ``n`` layers in all."""
    busybox_layout(dest)
    work = Path(tempfile.mkdtemp(prefix="capsa-test-deep-"))
    try:
        for i in range(1, n):

            def build(tar: tarfile.TarFile, i: int = i) -> None:
                if i == 1:
                    _dir(tar, "layers")
                _add(tar, f"layers/{i:03d}.txt", f"layer {i}\n".encode())

            add_layer(dest, _layer_tar(work / f"{i}.tar", build), f"layer {i}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _write_blob(layout: Path, data: bytes) -> str:
    hexdigest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexdigest).write_bytes(data)
    return f"sha256:{hexdigest}"


def multiplatform_layout(dest: Path) -> Path:
    """``latest`` is an OCI index: linux/amd64 and linux/arm64/v8 manifests."""
    busybox_layout(dest)
    umoci(
        "config",
        "--image",
        f"{dest}:latest",
        "--tag",
        "arm64",
        "--architecture",
        "arm64",
        "--config.label",
        "capsa.test.arch=arm64",
    )
    index = json.loads((dest / "index.json").read_text())
    by_tag = {m["annotations"][REF_NAME]: m for m in index["manifests"]}
    platforms = {
        "latest": {"architecture": "amd64", "os": "linux"},
        "arm64": {"architecture": "arm64", "os": "linux", "variant": "v8"},
    }
    manifests = []
    for tag, platform in platforms.items():
        desc = {k: v for k, v in by_tag[tag].items() if k != "annotations"}
        manifests.append({**desc, "platform": platform})
    doc = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    top = {
        "mediaType": OCI_INDEX,
        "digest": _write_blob(dest, doc),
        "size": len(doc),
        "annotations": {REF_NAME: "latest"},
    }
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return dest


class ImageLayouts:
    """Builds each test layout once, under ``base``; never modify what it returns."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._built: dict[str, Path] = {}

    def _get(self, name: str, builder: Callable[[Path], Path]) -> Path:
        if name not in self._built:
            self._built[name] = builder(self.base / name)
        return self._built[name]

    def busybox(self) -> Path:
        return self._get("busybox", busybox_layout)

    def layered(self) -> Path:
        return self._get("layered", layered_layout)

    def deep(self) -> Path:
        return self._get("deep", deep_layout)

    def multiplatform(self) -> Path:
        return self._get("multiplatform", multiplatform_layout)


def layout_manifest(layout: Path, tag: str = "latest") -> dict[str, object]:
    """The descriptor ``index.json`` holds for ``tag``."""
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get(REF_NAME) == tag:
            return dict(desc)
    raise KeyError(tag)


@pytest.fixture(scope="session")
def image_layouts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageLayouts]:
    """Lazily built OCI layouts shared by the whole test session."""
    yield ImageLayouts(tmp_path_factory.mktemp("capsa-test-layouts"))
