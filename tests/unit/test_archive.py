"""save/load of docker-archive and oci-archive tarballs against a temp ContentStore."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from capsa.errors import InvalidArgument, NotFound
from capsa.oci.image_spec import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    dump,
    load_manifest,
)
from capsa.store import archive
from capsa.store.archive import LoadedImage, SaveItem
from capsa.store.content import ContentStore


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def config_json(diff_ids: list[str], cmd: str = "/bin/sh") -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "test"}],
        }
    ).encode()


def put_image(
    content: ContentStore, layers: list[bytes], gzipped: bool = True, cmd: str = "/bin/sh"
) -> SaveItem:
    """An image in ``content``: gzip (or plain) layers, config, OCI manifest."""
    descriptors = []
    for plain in layers:
        blob = gzip.compress(plain, mtime=0) if gzipped else plain
        descriptors.append(
            Descriptor(
                media_type=OCI_LAYER_GZIP if gzipped else OCI_LAYER,
                digest=content.put(blob),
                size=len(blob),
            )
        )
    config = config_json([sha(p) for p in layers], cmd)
    manifest = Manifest(
        media_type=OCI_MANIFEST,
        layers=descriptors,
        config=Descriptor(media_type=OCI_CONFIG, digest=content.put(config), size=len(config)),
    )
    return SaveItem(content.put(dump(manifest)), sha(config), [])


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def make_tar(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """A tar of (name, data, symlink target) entries, in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                assert data is not None
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def content(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "src"))


@pytest.fixture
def target(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "dst"))


L1 = layer_tar({"bin/sh": b"#!shell\n", "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"})
L2 = layer_tar({"etc/motd": b"hello\n"})


def saved(content: ContentStore, items: list[SaveItem], fmt: str = "docker-archive") -> bytes:
    out = io.BytesIO()
    archive.save(content, items, out, fmt)
    return out.getvalue()


def test_docker_archive_structure(content: ContentStore) -> None:
    item = put_image(content, [L1, L2])
    item.names = ["busybox", "localhost:5000/team/app:v1", "busybox@sha256:" + "a" * 64]
    data = saved(content, [item])
    names = members(data)
    config_path = "blobs/sha256/" + item.config_digest.partition(":")[2]
    layer_paths = ["blobs/sha256/" + sha(x).partition(":")[2] for x in (L1, L2)]
    assert {
        "manifest.json",
        "index.json",
        "oci-layout",
        "repositories",
        config_path,
        *layer_paths,
    } <= set(names)
    assert all(m.mtime == 0 and m.uid == 0 for m in names.values())
    entries = json.loads(read_member(data, "manifest.json"))
    assert entries == [
        {
            "Config": config_path,
            "RepoTags": ["busybox:latest", "localhost:5000/team/app:v1"],
            "Layers": layer_paths,
        }
    ]
    assert read_member(data, config_path) == content.read(item.config_digest)
    for plain, path in zip((L1, L2), layer_paths, strict=True):
        assert read_member(data, path) == plain  # uncompressed: digest = diff id
    repos = json.loads(read_member(data, "repositories"))
    assert repos == {
        "busybox": {"latest": layer_paths[1].rpartition("/")[2]},
        "localhost:5000/team/app": {"v1": layer_paths[1].rpartition("/")[2]},
    }
    index = json.loads(read_member(data, "index.json"))
    annotations = [d["annotations"] for d in index["manifests"]]
    assert annotations[0] == {
        "io.containerd.image.name": "docker.io/library/busybox:latest",
        "org.opencontainers.image.ref.name": "latest",
    }
    manifest = json.loads(
        read_member(data, "blobs/sha256/" + index["manifests"][0]["digest"].partition(":")[2])
    )
    assert [layer["digest"] for layer in manifest["layers"]] == [sha(L1), sha(L2)]
    assert json.loads(read_member(data, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}


def test_save_is_deterministic(content: ContentStore) -> None:
    item = put_image(content, [L1])
    assert saved(content, [item]) == saved(content, [item])


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
@pytest.mark.parametrize("gzipped", [True, False])
def test_round_trip(content: ContentStore, target: ContentStore, fmt: str, gzipped: bool) -> None:
    first = put_image(content, [L1, L2], gzipped)
    first.names = ["docker.io/library/busybox:latest", "example.com/a/b:1"]
    second = put_image(content, [L1], gzipped, cmd="/bin/true")  # shares L1
    loaded = archive.load(target, io.BytesIO(saved(content, [first, second], fmt)))
    assert [img.config_digest for img in loaded] == [first.config_digest, second.config_digest]
    assert loaded[0].names == first.names
    assert loaded[1].names == []
    for image in loaded:
        assert_stored(target, image)
    if fmt == "oci-archive":  # blobs are kept as they were: the manifest digest too
        assert [img.manifest_digest for img in loaded] == [
            first.manifest_digest,
            second.manifest_digest,
        ]
    else:
        assert [d.digest for d in loaded[0].manifest.layers] == [sha(L1), sha(L2)]


def assert_stored(store: ContentStore, image: LoadedImage) -> None:
    assert store.has(image.manifest_digest)
    assert sha(store.read(image.config_digest)) == image.config_digest
    for layer in image.manifest.layers:
        assert sha(store.read(layer.digest)) == layer.digest
        assert store.size(layer.digest) == layer.size


def test_oci_archive_index(content: ContentStore) -> None:
    item = put_image(content, [L1])
    item.names = ["busybox:1.36"]
    data = saved(content, [item], "oci-archive")
    index = json.loads(read_member(data, "index.json"))
    assert index["mediaType"] == OCI_INDEX
    [desc] = index["manifests"]
    assert desc["digest"] == item.manifest_digest
    assert (
        desc["annotations"]["org.opencontainers.image.ref.name"] == "docker.io/library/busybox:1.36"
    )
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    assert read_member(data, "oci-layout")


def pipe_stream(data: bytes) -> tuple[io.BufferedReader, Callable[[], None]]:
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=feed)
    thread.start()
    return os.fdopen(r, "rb"), thread.join


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_load_from_pipe_with_spooling(
    content: ContentStore, target: ContentStore, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MEMORY_LIMIT", 64)  # every layer goes to the store
    item = put_image(content, [L1, L2])
    item.names = ["busybox"]
    stream, join = pipe_stream(saved(content, [item], fmt))
    with stream:
        [image] = archive.load(target, stream)
    join()
    assert image.config_digest == item.config_digest
    assert_stored(target, image)
    assert os.listdir(target.ingest_dir) == []


def test_load_compressed_archive(content: ContentStore, target: ContentStore) -> None:
    item = put_image(content, [L1])
    [image] = archive.load(target, io.BytesIO(gzip.compress(saved(content, [item]))))
    assert image.config_digest == item.config_digest


def legacy_archive(layers: list[bytes], extra_name: str = "") -> tuple[bytes, bytes]:
    """An archive as older ``docker save`` wrote it, members in an awkward order."""
    config = config_json([sha(x) for x in layers])
    ids = [hashlib.sha256(b"v1" + x).hexdigest() for x in layers]
    manifest = [
        {
            "Config": sha(config).partition(":")[2] + ".json",
            "RepoTags": ["busybox:latest"],
            "Layers": [f"{i}/layer.tar" for i in ids],
        }
    ]
    if extra_name:
        manifest.append(
            {
                **manifest[0],
                "RepoTags": [extra_name],
                "Layers": [f"./{ids[0]}x/layer.tar", *manifest[0]["Layers"][1:]],
            }
        )
    entries: list[tuple[str, bytes | None, str | None]] = [
        ("manifest.json", json.dumps(manifest).encode(), None),
        ("repositories", json.dumps({"busybox": {"latest": ids[-1]}}).encode(), None),
    ]
    for i, x in zip(ids, layers, strict=True):
        entries += [
            (f"{i}/VERSION", b"1.0", None),
            (f"{i}/json", b"{}", None),
            (f"{i}/layer.tar", x, None),
        ]
    if extra_name:  # a second image whose first layer is a symlink to the same tar
        entries.append((f"{ids[0]}x/layer.tar", None, f"../{ids[0]}/layer.tar"))
    entries.append((sha(config).partition(":")[2] + ".json", config, None))
    return make_tar(entries), config


def test_load_legacy_archive(target: ContentStore) -> None:
    data, config = legacy_archive([L1, L2], extra_name="other:2")
    first, second = archive.load(target, io.BytesIO(data))
    assert first.config_digest == sha(config) == second.config_digest
    assert first.names == ["docker.io/library/busybox:latest"]
    assert second.names == ["docker.io/library/other:2"]
    assert first.manifest_media_type == OCI_MANIFEST
    assert [(d.media_type, d.digest) for d in first.manifest.layers] == [
        (OCI_LAYER, sha(L1)),
        (OCI_LAYER, sha(L2)),
    ]
    assert first.config.config is not None and first.config.config.cmd == ["/bin/sh"]
    assert_stored(target, first)


def test_load_gzip_layer_in_docker_archive(target: ContentStore) -> None:
    compressed = gzip.compress(L1, mtime=0)
    config = config_json([sha(L1)])
    manifest = [{"Config": "c.json", "RepoTags": None, "Layers": ["l.tar"]}]
    data = make_tar(
        [
            ("l.tar", compressed, None),
            ("c.json", config, None),
            ("manifest.json", json.dumps(manifest).encode(), None),
        ]
    )
    [image] = archive.load(target, io.BytesIO(data))
    assert image.manifest.layers == [
        Descriptor(media_type=OCI_LAYER_GZIP, digest=sha(compressed), size=len(compressed))
    ]
    assert image.names == []


def test_tampered_layer_is_rejected(target: ContentStore) -> None:
    data, config = legacy_archive([L1])
    tampered = data.replace(b"#!shell", b"#!SHELL")
    assert tampered != data
    with pytest.raises(InvalidArgument, match="does not match the image config"):
        archive.load(target, io.BytesIO(tampered))
    assert not target.has(sha(config))  # nothing an image could be built from


def test_layer_count_mismatch(target: ContentStore) -> None:
    config = config_json([sha(L1), sha(L2)])
    manifest = [{"Config": "c.json", "RepoTags": [], "Layers": ["l.tar"]}]
    data = make_tar(
        [
            ("l.tar", L1, None),
            ("c.json", config, None),
            ("manifest.json", json.dumps(manifest).encode(), None),
        ]
    )
    with pytest.raises(InvalidArgument, match="1 layers but 2 diff ids"):
        archive.load(target, io.BytesIO(data))


def test_missing_layer(target: ContentStore) -> None:
    manifest = [{"Config": "c.json", "RepoTags": [], "Layers": ["gone.tar"]}]
    data = make_tar(
        [
            ("c.json", config_json([sha(L1)]), None),
            ("manifest.json", json.dumps(manifest).encode(), None),
        ]
    )
    with pytest.raises(InvalidArgument, match=r"archive has no gone\.tar"):
        archive.load(target, io.BytesIO(data))


def test_corrupt_oci_blob(content: ContentStore, target: ContentStore) -> None:
    item = put_image(content, [L1], gzipped=False)
    data = saved(content, [item], "oci-archive").replace(b"#!shell", b"#!SHELL")
    with pytest.raises(InvalidArgument, match="corrupt"):
        archive.load(target, io.BytesIO(data))


def test_oci_nested_index_picks_complete_image(content: ContentStore, target: ContentStore) -> None:
    item = put_image(content, [L1])
    raw = content.read(item.manifest_digest)
    missing = Descriptor(media_type=OCI_MANIFEST, digest="sha256:" + "b" * 64, size=10)
    present = Descriptor(media_type=OCI_MANIFEST, digest=item.manifest_digest, size=len(raw))
    nested = dump(Index(media_type=OCI_INDEX, manifests=[missing, present]))
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_INDEX,
                "digest": sha(nested),
                "size": len(nested),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    layers = [d.digest for d in load_manifest(raw).layers]
    entries: list[tuple[str, bytes | None, str | None]] = [
        ("index.json", json.dumps(index).encode(), None),
        (archive.blob_path(sha(nested)), nested, None),
    ]
    for digest in [item.manifest_digest, item.config_digest, *layers]:
        entries.append((archive.blob_path(digest), content.read(digest), None))
    [image] = archive.load(target, io.BytesIO(make_tar(entries)))
    assert image.manifest_digest == item.manifest_digest
    assert image.names == []  # a bare tag names no repository


def test_not_an_archive(target: ContentStore) -> None:
    with pytest.raises(InvalidArgument, match="not an image archive"):
        archive.load(target, io.BytesIO(make_tar([("hello.txt", b"hi", None)])))
    with pytest.raises(InvalidArgument, match="invalid tar"):
        archive.load(target, io.BytesIO(b"definitely not a tar archive" * 40))
    with pytest.raises(InvalidArgument, match=r"invalid gzip data|truncated"):
        archive.load(target, io.BytesIO(gzip.compress(make_tar([("a", b"x" * 5000, None)]))[:-50]))
    with pytest.raises(InvalidArgument, match="invalid gzip data"):
        archive.load(target, io.BytesIO(b"\x1f\x8b" + b"junk" * 200))


def test_save_errors(content: ContentStore) -> None:
    item = put_image(content, [L1])
    with pytest.raises(InvalidArgument, match="unsupported archive format"):
        archive.save(content, [item], io.BytesIO(), "zip")
    with pytest.raises(InvalidArgument, match="no images"):
        archive.save(content, [], io.BytesIO())
    out = io.BytesIO()
    with pytest.raises(InvalidArgument, match="invalid reference"):
        archive.save(content, [SaveItem(item.manifest_digest, item.config_digest, ["A:b"])], out)
    with pytest.raises(InvalidArgument, match="is not of image"):
        archive.save(content, [SaveItem(item.manifest_digest, sha(b"other"), [])], out)
    manifest = load_manifest(content.read(item.manifest_digest))
    content.delete(manifest.layers[0].digest)
    with pytest.raises(NotFound, match="not in the content store"):
        archive.save(content, [item], out)
    assert out.getvalue() == b""  # nothing written before the checks passed


@pytest.mark.parametrize(
    ("annotations", "names"),
    [
        ({"org.opencontainers.image.ref.name": "busybox:1"}, ["docker.io/library/busybox:1"]),
        ({"org.opencontainers.image.ref.name": "latest"}, []),
        ({"org.opencontainers.image.ref.name": "Bad/Name:x"}, []),
        (
            {"io.containerd.image.name": "quay.io/a/b:c", "org.opencontainers.image.ref.name": "c"},
            ["quay.io/a/b:c"],
        ),
        (None, []),
    ],
)
def test_oci_names(annotations: dict[str, str] | None, names: list[str]) -> None:
    desc = Descriptor(media_type=OCI_MANIFEST, digest="sha256:" + "c" * 64, annotations=annotations)
    assert archive._annotated_names(desc) == names
