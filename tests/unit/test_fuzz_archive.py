"""Fuzz: image archives for ``load`` and rootfs tarballs for ``import`` (capsa.store).

Valid docker- and OCI-archives are saved once, then mutated (members replaced by other
bytes or JSON, renamed, dropped, linked elsewhere, truncated, corrupted, compressed) or
made from scratch; every one is loaded into a fresh content store. Layers go through
``apply_layer`` into a directory. Only InvalidArgument-like errors (CapsaError) may come
out, and nothing may be written outside the target directory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tests.helpers.fuzz import fuzz

from capsa.errors import CapsaError
from capsa.oci.image_spec import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    Platform,
    dump,
)
from capsa.store import archive
from capsa.store.archive import SaveItem
from capsa.store.content import ContentStore
from capsa.store.importer import import_rootfs
from capsa.store.unpack import apply_layer


def _tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


LAYER = _tar([_file("bin/sh", b"#!shell\n"), _file("etc/hostname", b"box\n")])


def _saved(fmt: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        content = ContentStore(tmp)
        blob = gzip.compress(LAYER, mtime=0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + _hex(LAYER)]},
            }
        ).encode()
        manifest = Manifest(
            media_type=OCI_MANIFEST,
            config=Descriptor(media_type=OCI_CONFIG, digest=content.put(config), size=len(config)),
            layers=[
                Descriptor(media_type=OCI_LAYER_GZIP, digest=content.put(blob), size=len(blob))
            ],
        )
        item = SaveItem(content.put(dump(manifest)), "sha256:" + _hex(config), ["fuzz/img:1"])
        out = io.BytesIO()
        archive.save(content, [item], out, fmt)
        return out.getvalue()


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BASES = {fmt: _saved(fmt) for fmt in archive.FORMATS}


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isreg() else None
            out.append((m, f.read() if f else b""))
    return out


JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=8),
        st.sampled_from(["sha256:" + "a" * 64, "sha256:../../manifest.json", "layer.tar",
                         "blobs/sha256/x", "../../etc/passwd", "/abs", OCI_MANIFEST,
                         "application/vnd.oci.image.index.v1+json", "fuzz/img:1", "BAD:REF"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["Config", "Layers", "RepoTags", "manifests", "digest", "size",
                             "mediaType", "config", "layers", "rootfs", "diff_ids",
                             "annotations", "schemaVersion", "x"]),
            inner, max_size=4),
    ),
    max_leaves=10,
)  # fmt: skip
BYTES = st.one_of(
    st.binary(max_size=64),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"[" * 50_000, b"{", b"\xff\xfe", b"null", b"[]", b"{}", b"\x1f\x8b"]),
)
NAMES = st.sampled_from(
    ["manifest.json", "index.json", "oci-layout", "repositories", "blobs/sha256/x",
     "../escape", "/abs/path", "a/../../b", "x" * 300, "dir/", "\udcff"]
)  # fmt: skip


@st.composite
def mutated(draw: Any) -> bytes:
    fmt = draw(st.sampled_from(sorted(BASES)))
    entries = _members(BASES[fmt])
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(entries) - 1))
        info, data = entries[i]
        action = draw(st.sampled_from(["data", "rename", "drop", "link", "add", "type"]))
        info = tarfile.TarInfo(info.name) if action != "type" else info
        if action == "data":
            entries[i] = _file(entries[i][0].name, draw(BYTES))
        elif action == "rename":
            entries[i] = _file(draw(NAMES), data)
        elif action == "drop" and len(entries) > 1:
            entries.pop(i)
        elif action in ("link", "type"):
            link = tarfile.TarInfo(entries[i][0].name)
            link.type = draw(st.sampled_from([tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE]))
            link.linkname = draw(st.one_of(NAMES, st.just(entries[i][0].name)))
            entries[i] = (link, b"")
        else:
            entries.append(_file(draw(NAMES), draw(BYTES)))
    data = _tar(entries)
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    data = data if cut is None else data[:cut]
    if draw(st.booleans()):
        flip = draw(st.integers(0, len(data)))
        data = data[:flip] + bytes([draw(st.integers(0, 255))]) + data[flip + 1 :]
    return gzip.compress(data, mtime=0) if draw(st.booleans()) else data


@pytest.fixture
def store() -> Iterator[ContentStore]:
    with tempfile.TemporaryDirectory() as tmp:
        yield ContentStore(tmp)


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive.load(ContentStore(tmp), io.BytesIO(data))
        except CapsaError:
            pass


def test_the_unmutated_archives_load() -> None:
    for data in BASES.values():
        with tempfile.TemporaryDirectory() as tmp:
            (image,) = archive.load(ContentStore(tmp), io.BytesIO(data))
            assert image.names


@fuzz(500)
@given(mutated())
def test_mutated_archives(data: bytes) -> None:
    _load(data)


@fuzz(250)
@given(
    st.one_of(
        BYTES,
        st.lists(st.tuples(NAMES, BYTES), max_size=4).map(
            lambda items: _tar([_file(n, d) for n, d in items])
        ),
    )
)
@example(_tar([_file("manifest.json", b"{bad json")]))
@example(_tar([_file("manifest.json", b"[" * 50_000)]))
@example(_tar([_file("manifest.json", b"\xff")]))
@example(_tar([_file("manifest.json", b"")]))
@example(
    _tar(
        [
            _file("manifest.json", b'[{"Config": "c", "Layers": [], "RepoTags": []}]'),
            _file("c", b"{bad"),
        ]
    )
)
def test_archives_from_scratch(data: bytes) -> None:
    _load(data)


@fuzz(250)
@given(st.one_of(BYTES, mutated()))
def test_import_rootfs(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            import_rootfs(ContentStore(tmp), io.BytesIO(data), [], Platform("amd64", "linux"))
        except CapsaError:
            pass


LAYER_NAMES = st.sampled_from(
    ["a", "a/b", "a/../b", "../x", "/abs", "./c", ".wh.a", "a/.wh..wh..opq", ".wh..wh..opq",
     ".wh.", "a/.wh.b", "link", "link/inside", "hard", "dev", "\udcff", "x" * 260, "dir/"]
)  # fmt: skip


@st.composite
def layers(draw: Any) -> bytes:
    entries = []
    for _ in range(draw(st.integers(1, 6))):
        info = tarfile.TarInfo(draw(LAYER_NAMES))
        info.type = draw(
            st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                             tarfile.FIFOTYPE, tarfile.CHRTYPE])
        )  # fmt: skip
        info.linkname = draw(st.sampled_from(["/", "..", "../../..", "/etc", "a", "hard", "x"]))
        info.mode = draw(st.sampled_from([0o644, 0o7777, 0o000, 0o4755]))
        info.uid = info.gid = draw(st.sampled_from([0, 1000, 2**21 - 1]))
        info.devmajor, info.devminor = 1, 3  # /dev/null: harmless if made
        info.mtime = draw(st.sampled_from([0, 1_700_000_000, 2**33 - 1]))
        data = draw(st.binary(max_size=16)) if info.type == tarfile.REGTYPE else b""
        info.size = len(data)
        entries.append((info, data))
    return _tar(entries)


@fuzz(300)
@given(layers())
def test_apply_layer_stays_inside(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dest, outside = os.path.join(tmp, "layer"), os.path.join(tmp, "outside")
        os.mkdir(dest)
        os.mkdir(outside)
        try:
            apply_layer(io.BytesIO(data), dest, [outside])
        except CapsaError:
            pass
        assert os.listdir(outside) == []
        assert sorted(os.listdir(tmp)) == ["layer", "outside"]


CHANGE_WORDS = st.sampled_from(
    ["CMD", "ENTRYPOINT", "ENV", "LABEL", "EXPOSE", "WORKDIR", "USER", "VOLUME",
     "STOPSIGNAL", "ONBUILD", "RUN", "FROM", "cmd", " ", "\n", "\\\n", "[", "]", '"', "'",
     "=", "$", "${X}", "${X:-d}", "${X:+a}", "${", "}", "a", "1-65535", "80/tcp", "99999",
     "SIGKILL", "SIGBOGUS", "64", "/w", "..", '["sh"]', "[" * 3000, "\udcff", "\x00"]
)  # fmt: skip


@fuzz(800)
@given(st.lists(st.lists(CHANGE_WORDS, max_size=8).map("".join), max_size=3))
@example(["CMD " + "[" * 50_000])
def test_import_changes(changes: list[str]) -> None:
    from capsa.store.changes import apply_changes

    try:
        apply_changes(changes)
    except CapsaError:
        pass
