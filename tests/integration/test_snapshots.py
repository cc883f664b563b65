"""Overlay snapshots: unpack once per chain id, mount, concurrency, crashes, removal.

Images are crafted in a private content store (gzip layers built with ``tarfile``);
the umoci comparison builds an OCI layout with ``tests.helpers.images``.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsa.errors import Conflict, InvalidArgument, NotFound
from capsa.linux import mount as mountmod
from capsa.linux.mount import MOUNT_DATA_LIMIT, Mount, mount_all, unmount
from capsa.oci.image_spec import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    RootFS,
    dump,
    load_config,
    load_manifest,
    sha256_digest,
)
from capsa.progress import RecordingProgress
from capsa.store.content import ContentStore
from capsa.store.snapshots import SnapshotStore, chain_ids

pytestmark = pytest.mark.root

Entry = tuple[tarfile.TarInfo, bytes]


def entry(name: str, data: bytes = b"", **attrs: object) -> Entry:
    info = tarfile.TarInfo(name)
    info.mode = 0o755 if attrs.get("type") == tarfile.DIRTYPE else 0o644
    info.mtime = 1_600_000_000
    for key, value in attrs.items():
        setattr(info, key, value)
    info.size = len(data) if info.type == tarfile.REGTYPE else 0
    return info, data


def d(name: str) -> Entry:
    return entry(name, type=tarfile.DIRTYPE)


def make_tar(*entries: Entry) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()


def build_image(content: ContentStore, layers: list[bytes]) -> tuple[Manifest, ImageConfig]:
    descs = []
    for tar in layers:
        blob = gzip.compress(tar, compresslevel=1)
        descs.append(
            Descriptor(media_type=OCI_LAYER_GZIP, digest=content.put(blob), size=len(blob))
        )
    config = ImageConfig(
        architecture="amd64", os="linux", rootfs=RootFS(diff_ids=[sha256_digest(t) for t in layers])
    )
    raw = dump(config)
    desc = Descriptor(media_type=OCI_CONFIG, digest=content.put(raw), size=len(raw))
    return Manifest(media_type=OCI_MANIFEST, config=desc, layers=descs), config


def three_layers() -> list[bytes]:
    return [
        make_tar(
            d("etc/"),
            entry("etc/a", b"a"),
            entry("etc/b", b"b"),
            d("opq/"),
            entry("opq/old1", b"1"),
            d("opq/sub/"),
            entry("opq/sub/old2", b"2"),
            entry("bin/tool", b"tool", mode=0o4755),
        ),
        make_tar(d("etc/"), entry("etc/.wh.a"), entry("new", b"new")),
        make_tar(d("opq/"), entry("opq/.wh..wh..opq"), entry("opq/fresh", b"f")),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SnapshotStore]:
    s = SnapshotStore(str(tmp_path / "capsa-root"))
    yield s
    s.close()


@pytest.fixture
def content(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "capsa-root"))


@contextlib.contextmanager
def mounted(mounts: list[Mount], target: Path) -> Iterator[Path]:
    target.mkdir(exist_ok=True)
    mount_all(mounts, str(target))
    try:
        yield target
    finally:
        unmount(str(target), detach=True)


def test_three_layers_merged_view(
    tmp_path: Path, store: SnapshotStore, content: ContentStore
) -> None:
    manifest, config = build_image(content, three_layers())
    progress = RecordingProgress()
    chains = store.ensure(content, manifest, config, progress)
    assert chains == chain_ids(config.rootfs.diff_ids)
    done = [e.id for e in progress.events if e.action == "Pull complete"]
    assert done == [layer.digest[7:19] for layer in manifest.layers]
    assert any(e.action == "Extracting" for e in progress.events)
    assert store.ensure(content, manifest, config) == chains  # nothing left to do

    mounts = store.prepare("c1", chains)
    assert mounts[0].type == "overlay"
    with mounted(mounts, tmp_path / "merged") as root:
        assert sorted(os.listdir(root / "etc")) == ["b"]
        assert os.listdir(root / "opq") == ["fresh"]
        assert (root / "new").read_bytes() == b"new"
        assert stat.S_IMODE((root / "bin/tool").stat().st_mode) == 0o4755
        (root / "etc/b").unlink()
        (root / "written").write_text("x")
    upper = Path(store.rw_dir_of("c1"), "upper")
    assert (upper / "written").read_text() == "x"
    assert stat.S_ISCHR((upper / "etc/b").lstat().st_mode)
    store.remove_rw("c1")
    assert not Path(store.rw_dir_of("c1")).exists()


def test_sixty_layers_mount(tmp_path: Path, content: ContentStore) -> None:
    n = 60
    long_root = tmp_path / ("capsa-" + "r" * 60)  # absolute lowerdirs well past one page
    store = SnapshotStore(str(long_root))
    layers = [make_tar(d("layers/"), entry(f"layers/{i:03d}", f"{i}\n".encode())) for i in range(n)]
    manifest, config = build_image(content, layers)
    chains = store.ensure(content, manifest, config)
    assert len(store.layer_dirs(chains)) == n
    mounts = store.prepare("deep", chains)
    lowerdir = next(o for o in mounts[0].options if o.startswith("lowerdir="))
    assert len(mountmod.split_lowerdir(lowerdir[9:])) == n
    assert len(",".join(mounts[0].options)) > MOUNT_DATA_LIMIT
    with mounted(mounts, tmp_path / "merged") as root:
        names = sorted(os.listdir(root / "layers"))
        assert len(names) == n and names[0] == "000" and names[-1] == f"{n - 1:03d}"
        assert (root / "layers/000").read_text() == "0\n"
    target = tmp_path / "legacy"
    target.mkdir()
    mountmod._mount_overlay_legacy(mountmod._Overlay(mounts[0].options), str(target))
    try:
        assert len(os.listdir(target / "layers")) == n
    finally:
        unmount(str(target))
    store.remove_rw("deep")
    store.close()


def test_threads_unpack_each_layer_once(tmp_path: Path, content: ContentStore) -> None:
    layers = [make_tar(entry(f"f{i}", os.urandom(300_000))) for i in range(4)]
    manifest, config = build_image(content, layers)
    barrier = threading.Barrier(2)
    recorders = [RecordingProgress(), RecordingProgress()]
    errors: list[BaseException] = []

    def run(progress: RecordingProgress) -> None:
        s = SnapshotStore(str(tmp_path / "capsa-root"))
        try:
            barrier.wait()
            s.ensure(content, manifest, config, progress)
        except BaseException as err:
            errors.append(err)
        finally:
            s.close()

    threads = [threading.Thread(target=run, args=(r,)) for r in recorders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    done = [e.id for r in recorders for e in r.events if e.action == "Pull complete"]
    assert sorted(done) == sorted(layer.digest[7:19] for layer in manifest.layers)


CHILD = """
import json, os, signal, sys
from capsa.oci.image_spec import load_config, load_manifest
from capsa.store.content import ContentStore
from capsa.store.snapshots import SnapshotStore
root, manifest, config, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
class Sink:
    def __init__(self): self.done = []
    def emit(self, e):
        if e.action == "Pull complete": self.done.append(e.id)
        if e.action == "Extracting" and e.id == kill_at: os.kill(os.getpid(), signal.SIGKILL)
sink = Sink()
SnapshotStore(root).ensure(ContentStore(root), load_manifest(open(manifest, "rb").read()),
                           load_config(open(config, "rb").read()), sink)
print(json.dumps(sink.done))
"""


def run_child(
    tmp_path: Path, manifest: Manifest, config: ImageConfig, kill_at: str = ""
) -> subprocess.Popen[str]:
    (tmp_path / "m.json").write_bytes(dump(manifest))
    (tmp_path / "c.json").write_bytes(dump(config))
    args = [
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path / "capsa-root"),
        str(tmp_path / "m.json"),
        str(tmp_path / "c.json"),
        kill_at,
    ]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def test_processes_unpack_each_layer_once(tmp_path: Path, content: ContentStore) -> None:
    layers = [make_tar(entry(f"f{i}", os.urandom(500_000))) for i in range(4)]
    manifest, config = build_image(content, layers)
    children = [run_child(tmp_path, manifest, config) for _ in range(2)]
    outputs = [c.communicate(timeout=60)[0] for c in children]
    assert [c.returncode for c in children] == [0, 0]
    done = [i for out in outputs for i in json.loads(out)]
    assert sorted(done) == sorted(layer.digest[7:19] for layer in manifest.layers)


def test_kill_midway_leaves_no_half_snapshot(
    tmp_path: Path, store: SnapshotStore, content: ContentStore
) -> None:
    layers = [make_tar(entry("small", b"s")), make_tar(entry("big", os.urandom(3 << 20)))]
    manifest, config = build_image(content, layers)
    chains = chain_ids(config.rootfs.diff_ids)
    child = run_child(tmp_path, manifest, config, kill_at=manifest.layers[1].digest[7:19])
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert store.exists(chains[0]) and not store.exists(chains[1])
    with pytest.raises(NotFound):
        store.layer_dirs(chains)
    assert os.listdir(store.tmp_dir)  # the half unpack, invisible
    assert [u.chain_id for u in store.usage()] == [chains[0]]
    assert store.ensure(content, manifest, config) == chains
    assert os.listdir(store.tmp_dir) == []
    assert Path(store.layer_dirs(chains)[1], "big").stat().st_size == 3 << 20


def test_diff_id_mismatch_is_rejected(store: SnapshotStore, content: ContentStore) -> None:
    manifest, config = build_image(content, [make_tar(entry("f", b"1"))])
    config.rootfs.diff_ids = [sha256_digest(b"something else")]
    with pytest.raises(InvalidArgument, match=manifest.layers[0].digest):
        store.ensure(content, manifest, config)
    assert store.usage() == [] and os.listdir(store.tmp_dir) == []


def test_prepare_remove_and_refusals(
    tmp_path: Path, store: SnapshotStore, content: ContentStore
) -> None:
    manifest, config = build_image(content, three_layers()[:2])
    low, top = store.ensure(content, manifest, config)
    store.prepare("c1", [low, top])
    with pytest.raises(Conflict):
        store.prepare("c1", [low, top])
    with pytest.raises(Conflict, match="parent"):
        store.remove(low)
    with pytest.raises(Conflict, match="c1"):
        store.remove(top)
    kinds = sorted((u.kind, u.key) for u in store.usage())
    assert kinds == [("layer", ""), ("layer", ""), ("rw", "c1")]
    store.remove_rw("c1")
    with pytest.raises(NotFound):
        store.remove_rw("c1")
    assert store.remove(top) > 0
    assert store.remove(low) > 0
    with pytest.raises(NotFound):
        store.remove(low)
    assert store.usage() == []
    assert sorted(os.listdir(store.dir)) == ["locks", "tmp"]
    assert os.listdir(store.lock_dir) == []


def test_readonly_and_empty_images(
    tmp_path: Path, store: SnapshotStore, content: ContentStore
) -> None:
    manifest, config = build_image(content, [make_tar(entry("f", b"1"))])
    chains = store.ensure(content, manifest, config)
    ro = store.prepare("ro", chains, readonly=True)
    assert ro[0].type == "bind"
    with mounted(ro, tmp_path / "ro") as root:
        assert (root / "f").read_bytes() == b"1"
        with pytest.raises(OSError) as err:
            (root / "g").write_text("x")
        assert err.value.errno == errno.EROFS
    empty_manifest, empty_config = build_image(content, [])
    assert store.ensure(content, empty_manifest, empty_config) == []
    with mounted(store.prepare("empty", []), tmp_path / "empty") as root:
        assert os.listdir(root) == []
        (root / "x").write_text("x")
    store.remove_rw("empty")
    store.remove_rw("ro")


def _import_layout(layout: Path, content: ContentStore) -> tuple[Manifest, ImageConfig]:
    for blob in (layout / "blobs/sha256").iterdir():
        content.put(blob.read_bytes())
    index = json.loads((layout / "index.json").read_text())
    manifest = load_manifest(content.read(index["manifests"][0]["digest"]))
    return manifest, load_config(content.read(manifest.config.digest))


def _describe(root: Path) -> dict[str, tuple[int, int, int, str]]:
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            result[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, f"{link}{size}")
    return result


def test_matches_umoci_unpack(tmp_path: Path, store: SnapshotStore, content: ContentStore) -> None:
    images = pytest.importorskip("tests.helpers.images")
    layout = images.layered_layout(tmp_path / "layout")
    manifest, config = _import_layout(layout, content)
    chains = store.ensure(content, manifest, config)
    assert len(chains) == 3
    bundle = tmp_path / "bundle"
    images.umoci("unpack", "--image", f"{layout}:latest", str(bundle))
    with mounted(store.prepare("cmp", chains), tmp_path / "merged") as root:
        ours = _describe(root)
    theirs = _describe(bundle / "rootfs")
    assert "data/gone.txt" not in ours and "data/dir/c.txt" in ours
    assert ours == theirs
    store.remove_rw("cmp")
