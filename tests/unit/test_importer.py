"""import_rootfs, --change parsing and export_rootfs."""

from __future__ import annotations

import bz2
import datetime
import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest
from backports import zstd
from hypothesis import given
from hypothesis import strategies as st

from capsa.errors import InvalidArgument
from capsa.oci.image_spec import OCI_LAYER_GZIP, OCI_MANIFEST, ContainerConfig, Platform
from capsa.store.changes import apply_changes, process_word, split_words
from capsa.store.content import ContentStore
from capsa.store.importer import export_rootfs, import_rootfs

AMD64 = Platform(architecture="amd64", os="linux")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("bin/sh", b"#!sh\n" * 1000), ("etc/hostname", b"box\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def content(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "root"))


COMPRESSORS = {
    "plain": lambda b: b,
    "gzip": lambda b: gzip.compress(b),
    "zstd": zstd.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_import_tarball(content: ContentStore, kind: str) -> None:
    plain = rootfs_tar()
    image = import_rootfs(
        content,
        io.BytesIO(COMPRESSORS[kind](plain)),
        ['CMD ["/bin/sh"]', "ENV A=1"],
        AMD64,
        message="from test",
    )
    assert image.manifest_media_type == OCI_MANIFEST
    assert image.names == []
    [layer] = image.manifest.layers
    assert layer.media_type == OCI_LAYER_GZIP
    blob = content.read(layer.digest)
    assert sha(blob) == layer.digest and len(blob) == layer.size
    assert gzip.decompress(blob) == plain
    raw = json.loads(content.read(image.config_digest))
    assert sha(content.read(image.config_digest)) == image.config_digest
    assert raw["rootfs"] == {"type": "layers", "diff_ids": [sha(plain)]}
    assert raw["architecture"] == "amd64" and raw["os"] == "linux"
    assert raw["config"] == {"Cmd": ["/bin/sh"], "Env": ["A=1"]}
    assert raw["history"] == [
        {"created": raw["created"], "created_by": "capsa import", "comment": "from test"}
    ]
    assert raw["comment"] == "from test"
    created = datetime.datetime.fromisoformat(raw["created"].replace("Z", "+00:00"))
    assert created.tzinfo is not None
    manifest = json.loads(content.read(image.manifest_digest))
    assert manifest["config"]["digest"] == image.config_digest
    assert os.listdir(content.ingest_dir) == []


def test_import_from_pipe(content: ContentStore) -> None:
    plain = rootfs_tar()
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            f.write(gzip.compress(plain))

    thread = threading.Thread(target=feed)
    thread.start()
    with os.fdopen(r, "rb") as stream:
        image = import_rootfs(content, stream, [], AMD64)
    thread.join()
    assert json.loads(content.read(image.config_digest))["rootfs"]["diff_ids"] == [sha(plain)]
    assert image.config.rootfs.diff_ids == [sha(plain)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty input"),
        (b"hello world, this is not a tar file" * 30, "not a tar archive"),
        (gzip.compress(b"not a tar either" * 64, mtime=0), "not a tar archive"),
        (gzip.compress(rootfs_tar(), mtime=0)[:-40], "invalid gzip data"),
        (b"\x1f\x8b" + b"garbage" * 100, "invalid gzip data"),
        (zstd.compress(rootfs_tar())[:-30], "invalid zstd data"),
        (lzma.compress(rootfs_tar())[:-30], "invalid xz data"),
    ],
    ids=["empty", "plain", "gzip-plain", "gzip-cut", "gzip-garbage", "zstd-cut", "xz-cut"],
)
def test_import_bad_input(content: ContentStore, data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        import_rootfs(content, io.BytesIO(data), [], AMD64)
    assert not os.path.isdir(content.ingest_dir) or os.listdir(content.ingest_dir) == []


def test_bad_change_fails_before_reading(content: ContentStore) -> None:
    with pytest.raises(InvalidArgument, match="unsupported instruction RUN"):
        import_rootfs(content, io.BytesIO(b""), ["RUN true"], AMD64)


# ----------------------------------------------------------------------------- --change


def apply(*changes: str) -> ContainerConfig:
    return apply_changes(list(changes))


def test_cmd_and_entrypoint() -> None:
    assert apply('CMD ["/bin/sh", "-c", "echo hi"]').cmd == ["/bin/sh", "-c", "echo hi"]
    assert apply("cmd echo $HOME 'x'").cmd == ["/bin/sh", "-c", "echo $HOME 'x'"]
    assert apply("CMD [not json").cmd == ["/bin/sh", "-c", "[not json"]
    assert apply('CMD ["a", 1]').cmd == ["/bin/sh", "-c", '["a", 1]']
    config = apply('ENTRYPOINT ["/init"]', "CMD run")
    assert (config.entrypoint, config.cmd) == (["/init"], ["/bin/sh", "-c", "run"])
    config = apply("CMD run", "ENTRYPOINT /init")  # CMD set here survives ENTRYPOINT
    assert (config.entrypoint, config.cmd) == (["/bin/sh", "-c", "/init"], ["/bin/sh", "-c", "run"])
    inherited = apply_changes(["ENTRYPOINT []"], ContainerConfig(cmd=["old"]))
    assert (inherited.entrypoint, inherited.cmd) == ([], None)
    shell = apply_changes(["CMD echo"], ContainerConfig(shell=["/bin/bash", "-lc"]))
    assert shell.cmd == ["/bin/bash", "-lc", "echo"]


def test_env() -> None:
    config = apply(
        "ENV A=1 B=\"two words\" C='$A' D=$A",
        "ENV E=${A}x F=${NOPE:-dflt}",
        "ENV legacy some value here",
        "ENV A=3",
    )
    assert config.env == [
        "B=two words",
        "C=$A",
        "D=",
        "E=1x",
        "F=dflt",
        "legacy=some value here",
        "A=3",
    ]
    base = ContainerConfig(env=["PATH=/bin"])
    assert apply_changes(["ENV PATH=/sbin:$PATH"], base).env == ["PATH=/sbin:/bin"]
    assert base.env == ["PATH=/bin"]  # the input config is not modified
    assert apply(r"ENV X=a\ b Y=\$HOME").env == ["X=a b", "Y=$HOME"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ENV", "requires at least one argument"),
        ("ENV lonely", "missing value"),
        ("ENV A=1 B", "expected name=value"),
        ("ENV =x", "names can not be blank"),
        ('ENV A="open', "unmatched quote"),
    ],
)
def test_env_errors(change: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        apply(change)


def test_label() -> None:
    config = apply('LABEL a=b "with space"="x y" c=', "LABEL legacy value with spaces")
    assert config.labels == {"a": "b", "with space": "x y", "c": "", "legacy": "value with spaces"}


def test_expose() -> None:
    config = apply("EXPOSE 80 80/tcp 53/UDP 9000-9002/sctp")
    assert config.exposed_ports == {
        "80/tcp": {},
        "53/udp": {},
        "9000/sctp": {},
        "9001/sctp": {},
        "9002/sctp": {},
    }


@pytest.mark.parametrize("port", ["http", "80/icmp", "70000", "90-80", "1.2.3.4:80:80"])
def test_expose_errors(port: str) -> None:
    with pytest.raises(InvalidArgument, match="EXPOSE"):
        apply(f"EXPOSE {port}")


def test_workdir_user_volume_stopsignal_onbuild() -> None:
    config = apply(
        "WORKDIR /app",
        "WORKDIR sub/../src",
        "USER 1000:1000",
        'VOLUME ["/data", "/logs"]',
        "VOLUME /cache /tmp/x",
        "STOPSIGNAL SIGRTMIN+3",
        "ONBUILD RUN make",
        "ONBUILD copy . /src",
    )
    assert config.working_dir == "/app/src"
    assert config.user == "1000:1000"
    assert config.volumes == {"/data": {}, "/logs": {}, "/cache": {}, "/tmp/x": {}}
    assert config.stop_signal == "SIGRTMIN+3"
    assert config.on_build == ["RUN make", "copy . /src"]
    for signal in ("9", "KILL", "sigterm", "SIGRTMAX-1"):
        assert apply(f"STOPSIGNAL {signal}").stop_signal == signal


def test_multi_line_change_and_comments() -> None:
    config = apply("# a comment\nENV A=1 \\\n  B=2\n\nUSER app")
    assert (config.env, config.user) == (["A=1", "B=2"], "app")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("RUN apt-get update", "--change: unsupported instruction RUN"),
        ("from busybox", "--change: unsupported instruction FROM"),
        ("HEALTHCHECK NONE", "--change: unsupported instruction HEALTHCHECK"),
        ("CMD", "CMD requires at least one argument"),
        ("USER a b", "USER requires exactly one argument"),
        ('VOLUME [""]', "VOLUME: empty path"),
        ("STOPSIGNAL SIGNOPE", "invalid signal"),
        ("STOPSIGNAL 999", "invalid signal"),
        ("ONBUILD ONBUILD RUN x", "isn't allowed as a trigger"),
        ("ONBUILD FROM x", "isn't allowed as a trigger"),
        ("ONBUILD FLY away", "unknown instruction FLY"),
    ],
)
def test_change_errors(change: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        apply(change)


_WORD = st.text(st.characters(codec="ascii", exclude_characters="\x00\r\n"), max_size=20)
_KEY = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


def _quote(value: str) -> str:
    escaped = "".join("\\" + c if c in '"\\$' else c for c in value)
    return f'"{escaped}"'


@given(st.dictionaries(_KEY, _WORD, min_size=1, max_size=5))
def test_env_pairs_round_trip(pairs: dict[str, str]) -> None:
    text = " ".join(f"{k}={_quote(v)}" for k, v in pairs.items())
    assert apply(f"ENV {text}").env == [f"{k}={v}" for k, v in pairs.items()]


@given(_WORD)
def test_single_quotes_are_literal(value: str) -> None:
    if "'" in value:
        return
    assert process_word(f"'{value}'", {"A": "x"}) == value


@given(st.text(st.characters(codec="ascii", exclude_characters="\x00\r\n"), min_size=1))
def test_shell_form(text: str) -> None:
    body = text.strip()
    if not body or body.startswith(("[", "#")):
        return
    assert apply(f"CMD {text}").cmd == ["/bin/sh", "-c", body]


@given(st.lists(st.from_regex(r"[A-Za-z0-9/._-]{1,8}", fullmatch=True), min_size=1, max_size=6))
def test_split_words(words: list[str]) -> None:
    assert split_words("  ".join(words)) == words


# ------------------------------------------------------------------------------ export


def export_members(root: Path, whiteouts: bool = False) -> dict[str, tarfile.TarInfo]:
    out = io.BytesIO()
    export_rootfs(str(root), out, whiteouts=whiteouts)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        found = {m.name: m for m in tar.getmembers()}
        for member in found.values():
            if member.isreg():  # keep the content next to the header, for the asserts
                f = tar.extractfile(member)
                assert f is not None
                member.pax_headers = {**member.pax_headers, "data": f.read().decode()}
        return found


def test_export_tree(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("tool\n")
    (root / "bin" / "tool").chmod(0o4755)
    (root / "bin" / "link").symlink_to("/bin/tool")
    os.link(root / "bin" / "tool", root / "bin" / "hard")
    os.mkfifo(root / "fifo")
    (root / "empty").mkdir()
    found = export_members(root)
    assert sorted(found) == ["bin", "bin/hard", "bin/link", "bin/tool", "empty", "fifo"]
    assert found["bin"].isdir()
    assert found["bin/hard"].isreg() and found["bin/hard"].pax_headers["data"] == "tool\n"
    assert found["bin/tool"].islnk() and found["bin/tool"].linkname == "bin/hard"
    assert found["bin/link"].issym() and found["bin/link"].linkname == "/bin/tool"
    assert stat.S_IMODE(found["bin/hard"].mode) == 0o4755
    assert found["fifo"].isfifo()
    assert all(m.uname == "" and m.gname == "" for m in found.values())


def test_export_xattrs(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    root.mkdir()
    path = root / "file"
    path.write_text("x")
    try:
        os.setxattr(path, "user.capsa", b"\xffbinary\x00value")
    except OSError:
        pytest.skip("no user xattrs on this filesystem")
    found = export_members(root)
    value = found["file"].pax_headers["SCHILY.xattr.user.capsa"]
    assert value.encode("utf-8", "surrogateescape") == b"\xffbinary\x00value"


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod and chown need root")
def test_export_devices_owners_and_whiteouts(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    (root / "dir").mkdir(parents=True)
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "dir" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (root / "owned").write_text("x")
    os.chown(root / "owned", 1234, 5678)
    try:
        os.setxattr(root / "dir", "trusted.overlay.opaque", b"y")
    except OSError:
        pytest.skip("no trusted xattrs on this filesystem")
    plain = export_members(root)
    assert sorted(plain) == ["dir", "null", "owned"]
    assert (plain["null"].ischr(), plain["null"].devmajor, plain["null"].devminor) == (True, 1, 3)
    assert (plain["owned"].uid, plain["owned"].gid) == (1234, 5678)
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in plain["dir"].pax_headers)
    layer = export_members(root, whiteouts=True)
    assert sorted(layer) == ["dir", "dir/.wh..wh..opq", "dir/.wh.gone", "null", "owned"]
    assert layer["dir/.wh.gone"].isreg() and layer["dir/.wh.gone"].size == 0
