"""capsa.store.unpack: layer streams and their extraction in overlayfs form.

Layers are crafted with ``tarfile`` here. Ownership is checked only when running as
root; whiteout devices and the opaque xattr need root and are marked so.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from capsa.errors import InvalidArgument
from capsa.oci.image_spec import (
    DOCKER_LAYER_GZIP,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
)
from capsa.store.content import ContentStore
from capsa.store.unpack import _zstd, apply_layer, open_layer

ROOT = os.geteuid() == 0
MTIME = 1_600_000_000


def entry(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    info.size = len(data) if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()


def d(name: str, mode: int = 0o755, **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, b"", type=tarfile.DIRTYPE, mode=mode, **attrs)


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, type=tarfile.SYMTYPE, linkname=target, mode=0o777)


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, type=tarfile.LNKTYPE, linkname=target)


def unpack(tmp_path: Path, data: bytes, name: str = "dest") -> Path:
    dest = tmp_path / name
    dest.mkdir(parents=True)
    apply_layer(io.BytesIO(data), str(dest))
    return dest


def test_files_dirs_links_and_modes(tmp_path: Path) -> None:
    data = make_tar(
        d("etc/", 0o755),
        entry("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", mode=0o644, uid=0, gid=0),
        d("bin/", 0o755),
        entry("bin/su", b"\x7fELF", mode=0o4755, uid=0, gid=0),
        entry("bin/wall", b"\x7fELF", mode=0o2755, uid=0, gid=5),
        d("tmp/", 0o1777),
        d("private/", 0o700, uid=1000, gid=1000, mtime=1234),
        entry("private/secret", b"s", mode=0o600, uid=1000, gid=1000, mtime=4321),
        sym("bin/sh", "/bin/busybox"),
        sym("etc/rel", "../bin/su"),
        hard("bin/sulink", "bin/su"),
        entry("fifo", type=tarfile.FIFOTYPE, mode=0o640),
    )
    dest = unpack(tmp_path, data)
    assert (dest / "etc/passwd").read_bytes().startswith(b"root:")
    assert stat.S_IMODE((dest / "bin/su").stat().st_mode) == 0o4755
    assert stat.S_IMODE((dest / "bin/wall").stat().st_mode) == 0o2755
    assert stat.S_IMODE((dest / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((dest / "private").stat().st_mode) == 0o700
    assert (dest / "private").stat().st_mtime == 1234  # set after its child was written
    assert (dest / "private/secret").stat().st_mtime == 4321
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"  # absolute target kept verbatim
    assert os.readlink(dest / "etc/rel") == "../bin/su"
    assert (dest / "bin/sulink").stat().st_ino == (dest / "bin/su").stat().st_ino
    assert stat.S_ISFIFO((dest / "fifo").lstat().st_mode)
    assert stat.S_IMODE((dest / "fifo").lstat().st_mode) == 0o640
    if ROOT:
        assert (dest / "private/secret").stat().st_uid == 1000
        assert (dest / "bin/wall").stat().st_gid == 5


def test_diff_id_and_size_are_those_of_the_tar(tmp_path: Path) -> None:
    data = make_tar(d("a/"), entry("a/b", b"x" * 5000))
    dest = tmp_path / "dest"
    dest.mkdir()
    stats = apply_layer(io.BytesIO(data), str(dest))
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert stats.size == len(data)
    assert stats.entries == 2


def test_trailing_padding_is_hashed(tmp_path: Path) -> None:
    data = make_tar(entry("f", b"1")) + b"\0" * 4096  # extra zero records after the end
    dest = tmp_path / "dest"
    dest.mkdir()
    stats = apply_layer(io.BytesIO(data), str(dest))
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


def test_later_entry_replaces_other_type(tmp_path: Path) -> None:
    data = make_tar(
        entry("x", b"file"),
        d("x/"),
        entry("x/inner", b"i"),
        d("y/"),
        entry("y/inner", b"i"),
        sym("y", "x"),
        sym("z", "/nowhere"),
        entry("z", b"now a file"),
        entry("w", b"first"),
        entry("w", b"second"),
    )
    dest = unpack(tmp_path, data)
    assert (dest / "x").is_dir() and (dest / "x/inner").read_bytes() == b"i"
    assert os.readlink(dest / "y") == "x"
    assert (dest / "z").read_bytes() == b"now a file" and not (dest / "z").is_symlink()
    assert (dest / "w").read_bytes() == b"second"


def test_implied_parents_copy_the_lower_layer(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "tmp").mkdir(parents=True)
    os.chmod(lower / "tmp", 0o1777)
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(
        io.BytesIO(make_tar(entry("tmp/x", b"x"), entry("new/y", b"y"))),
        str(dest),
        parents=[str(lower)],
    )
    assert stat.S_IMODE((dest / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((dest / "new").stat().st_mode) == 0o755


def test_paths_stay_inside_dest(tmp_path: Path) -> None:
    data = make_tar(
        entry("../../escape", b"e"),
        entry("/abs/file", b"a"),
        sym("up", "../.."),
        entry("up/under", b"u"),
    )
    dest = unpack(tmp_path, data, "a/b/dest")
    assert (dest / "escape").read_bytes() == b"e"
    assert (dest / "abs/file").read_bytes() == b"a"
    assert (dest / "under").read_bytes() == b"u"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


def test_hard_link_outside_is_rejected(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidArgument, match="not in the layer"):
        apply_layer(io.BytesIO(make_tar(hard("pw", "/etc/passwd"))), str(dest))


def test_user_xattrs_and_overlay_xattrs_dropped(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        pytest.skip("no user xattrs on this filesystem")
    data = make_tar(
        entry("f", b"x", pax_headers={"SCHILY.xattr.user.k": "v\udcff"}),
        d("dir/", pax_headers={"SCHILY.xattr.trusted.overlay.opaque": "y"}),
    )
    dest = unpack(tmp_path, data)
    assert os.getxattr(dest / "f", "user.k") == b"v\xff"
    if ROOT:
        with pytest.raises(OSError):
            os.getxattr(dest / "dir", "trusted.overlay.opaque")


def _store(tmp_path: Path, blob: bytes, media_type: str) -> tuple[ContentStore, Descriptor]:
    content = ContentStore(str(tmp_path / "root"))
    digest = content.put(blob)
    return content, Descriptor(media_type=media_type, digest=digest, size=len(blob))


@pytest.mark.parametrize(
    ("compress", "media_type"),
    [
        ("gzip", OCI_LAYER_GZIP),
        ("gzip", DOCKER_LAYER_GZIP),
        ("zstd", OCI_LAYER_ZSTD),
        ("none", OCI_LAYER),
        ("gzip", OCI_LAYER),  # mislabelled: told by magic bytes
        ("zstd", "application/octet-stream"),
    ],
)
def test_open_layer(tmp_path: Path, compress: str, media_type: str) -> None:
    data = make_tar(d("a/"), entry("a/b", os.urandom(3000)))
    if compress == "gzip":
        blob = gzip.compress(data)
    elif compress == "zstd":
        blob = _zstd().compress(data)
    else:
        blob = data
    content, desc = _store(tmp_path, blob, media_type)
    seen: list[int] = []
    with open_layer(content, desc, on_read=seen.append) as stream:
        dest = tmp_path / "dest"
        dest.mkdir()
        stats = apply_layer(stream, str(dest))
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert sum(seen) == len(blob)
    assert (dest / "a/b").stat().st_size == 3000


def test_corrupt_gzip_names_the_layer(tmp_path: Path) -> None:
    blob = gzip.compress(make_tar(entry("f", os.urandom(20000))))
    blob = blob[:-8] + bytes(b ^ 0xFF for b in blob[-8:-4]) + blob[-4:]  # bad CRC
    content, desc = _store(tmp_path, blob, OCI_LAYER_GZIP)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidArgument, match=desc.digest), open_layer(content, desc) as s:
        apply_layer(s, str(dest))


def test_truncated_tar_is_invalid(tmp_path: Path) -> None:
    data = make_tar(entry("f", b"x" * 5000))[:1500]
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(data), str(dest))


@pytest.mark.root
def test_whiteouts_in_overlay_form(tmp_path: Path) -> None:
    data = make_tar(
        d("etc/"),
        entry("etc/.wh.gone"),
        d("opq/"),
        entry("opq/.wh..wh..opq"),
        entry("opq/new", b"n"),
        entry("implied/.wh.x"),
        entry(".wh..wh.plnk"),
    )
    dest = unpack(tmp_path, data)
    st = (dest / "etc/gone").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "opq", "trusted.overlay.opaque") == b"y"
    assert (dest / "opq/new").read_bytes() == b"n"
    assert stat.S_ISCHR((dest / "implied/x").lstat().st_mode)
    assert sorted(os.listdir(dest)) == ["etc", "implied", "opq"]


@pytest.mark.root
def test_devices_and_ownership(tmp_path: Path) -> None:
    data = make_tar(
        entry("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        entry("dev/loop9", type=tarfile.BLKTYPE, devmajor=7, devminor=9, mode=0o660, gid=6),
        sym("link", "/target"),
        entry(
            "capbin",
            b"x",
            uid=0,
            gid=0,
            mode=0o755,
            pax_headers={
                "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12
            },
        ),
    )
    dest = unpack(tmp_path, data)
    null = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = (dest / "dev/loop9").lstat()
    assert stat.S_ISBLK(loop.st_mode) and loop.st_gid == 6
    assert os.getxattr(dest / "capbin", "security.capability")[:4] == b"\x01\x00\x00\x02"


def test_device_nodes_skipped_when_not_permitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mknod = os.mknod

    def mknod(path: str, mode: int = 0o600, device: int = 0, *, dir_fd: int | None = None) -> None:
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise PermissionError(1, "Operation not permitted")
        real_mknod(path, mode, device, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mknod", mknod)
    data = make_tar(
        entry("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3), entry("dev/ok", b"ok")
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    stats = apply_layer(io.BytesIO(data), str(dest))
    assert os.listdir(dest / "dev") == ["ok"]
    assert any("dev/null" in w for w in stats.warnings)


def test_closing_a_layer_early_stops_the_reader(tmp_path: Path) -> None:
    blob = gzip.compress(os.urandom(8 << 20), compresslevel=1)
    content, desc = _store(tmp_path, blob, OCI_LAYER_GZIP)
    stream = open_layer(content, desc)
    assert len(stream.read(1000)) == 1000
    stream.close()
    assert stream.closed
