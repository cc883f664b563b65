"""capsa.engine.fsops_*: cp path rules, in-root resolution, tar round trips and diff,
on plain temporary directories (no mounts, no containers)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from capsa.engine.fsops.copy import (
    Destination,
    asserts_dir,
    check_parent,
    plan,
    resolve_destination,
    resolve_source,
)
from capsa.engine.fsops.diff import Change, Lowers, changes, mountpoint_skip
from capsa.engine.fsops.extract import Extractor, Ownership, member_name
from capsa.engine.fsops.tar import TreeReader, write_tar
from capsa.engine.fsops.view import View
from capsa.errors import Conflict, InvalidArgument, NotFound, PermissionDenied

NOBODY = Ownership()  # leave owners to the creator: no chown, no root needed


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A small container tree with hostile symlinks."""
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "tmp" / "dir" / "sub").mkdir(parents=True)
    (root / "tmp" / "dir" / "a").write_text("a")
    (root / "tmp" / "dir" / "sub" / "b").write_text("b")
    (root / "abs").symlink_to("/etc")
    (root / "rel").symlink_to("../../../../../../../../..")
    (root / "tmp" / "up").symlink_to("../..")
    (root / "tmp" / "link").symlink_to("dir/a")
    return root


def _tar(*members: tuple[str, bytes | str | None]) -> io.BytesIO:
    """A tar: (name, bytes) files, (name, None) directories, (name, "->target") symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data.removeprefix("->")
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


# -- argument and rule helpers -----------------------------------------------------


def test_asserts_dir() -> None:
    assert asserts_dir("/a/") and asserts_dir("/a/.") and asserts_dir(".")
    assert not asserts_dir("/a") and not asserts_dir("/a/..x")


def test_member_name_rejects_escapes() -> None:
    assert member_name("./a/b") == "a/b"
    assert member_name("/abs/x") == "abs/x"
    assert member_name(".") == "" and member_name("./") == ""
    assert member_name("a/../b") == "b"
    for bad in ("..", "../x", "a/../../x"):
        with pytest.raises(InvalidArgument):
            member_name(bad)


# -- resolution inside the root ----------------------------------------------------------


def test_resolve_stays_in_root(rootfs: Path) -> None:
    with View(str(rootfs)) as view:
        assert view.resolve("/abs/passwd").path == "/etc/passwd"
        assert view.resolve("/rel/etc/passwd").path == "/etc/passwd"
        assert view.resolve("/tmp/up/tmp/up/etc").path == "/etc"
        assert view.resolve("/../../etc/../tmp/link").path == "/tmp/dir/a"
        assert view.resolve("/tmp/link", follow_last=False).path == "/tmp/link"
        loc = view.resolve("/abs/shadow")
        assert (loc.base, loc.rel) == (str(rootfs), "etc/shadow")


def test_resolve_symlink_loop(rootfs: Path) -> None:
    (rootfs / "loop").symlink_to("loop")
    with View(str(rootfs)) as view, pytest.raises(InvalidArgument, match="symbolic links"):
        view.resolve("/loop/x")


def test_mounts_take_paths_below_their_target(rootfs: Path, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "up").symlink_to("../../..")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    with View(str(rootfs)) as view:
        view.add_mount("/data", str(vol), readonly=True)
        view.add_mount("/abs/hosts", str(hosts))  # the target itself through a symlink
        loc = view.resolve("/data/x")
        assert (loc.base, loc.rel, loc.readonly, loc.mount) == (str(vol), "x", True, "/data")
        # a symlink in the volume leads back into the container, not to the host
        assert view.resolve("/data/up/etc/passwd").base == str(rootfs)
        file_loc = view.resolve("/etc/hosts")
        assert file_loc.mount_root and file_loc.base == str(tmp_path)
        with pytest.raises(PermissionDenied, match="mounted volume is marked read-only"):
            view.check_writable(loc)
    ro = View(str(rootfs), readonly_root=True)
    with ro, pytest.raises(PermissionDenied, match="rootfs is marked read-only"):
        ro.check_writable(ro.resolve("/tmp/x"))


# -- cp rules --------------------------------------------------------------------------


def test_plan_follows_docker_rules(rootfs: Path) -> None:
    with View(str(rootfs)) as view:
        file_src = resolve_source(view, "/etc/passwd", False, "missing")
        dir_src = resolve_source(view, "/tmp/dir", False, "missing")
        contents = resolve_source(view, "/tmp/dir/.", False, "missing")
        assert (contents.contents, contents.top, dir_src.top) == (True, ".", "dir")

        def dst(path: str) -> Destination:
            return resolve_destination(view, path)

        assert plan(file_src, dst("/tmp")) == ("/tmp", "passwd")
        assert plan(file_src, dst("/tmp/new")) == ("/tmp", "new")
        assert plan(file_src, dst("/tmp/dir/a")) == ("/tmp/dir", "a")
        assert plan(dir_src, dst("/etc")) == ("/etc", "dir")
        assert plan(contents, dst("/etc")) == ("/etc", "")
        assert plan(dir_src, dst("/tmp/newdir")) == ("/tmp", "newdir")
        assert plan(contents, dst("/tmp/newdir")) == ("/tmp", "newdir")
        assert plan(file_src, dst("/abs")) == ("/etc", "passwd")  # DEST symlink followed
        with pytest.raises(InvalidArgument, match="cannot copy a directory to a file"):
            plan(dir_src, dst("/etc/passwd"))
        with pytest.raises(NotFound, match="does not exist"):
            plan(file_src, dst("/tmp/newdir/"))
        with pytest.raises(NotFound, match="gone"):
            check_parent(view, dst("/nodir/x"), "gone")
        with pytest.raises(InvalidArgument, match="not a directory"):
            check_parent(view, dst("/etc/passwd/x"), "gone")


def test_source_symlinks(rootfs: Path) -> None:
    with View(str(rootfs)) as view:
        link = resolve_source(view, "/tmp/link", False, "missing")
        assert stat.S_ISLNK(link.st.st_mode) and link.name == "link"
        followed = resolve_source(view, "/tmp/link", True, "missing")
        assert followed.loc.path == "/tmp/dir/a" and followed.name == "link"
        with pytest.raises(NotFound, match=r"^gone$"):
            resolve_source(view, "/rel/nothing", False, "gone")
        with pytest.raises(InvalidArgument, match="not a directory"):
            resolve_source(view, "/etc/passwd/", False, "missing")


# -- tar round trips ---------------------------------------------------------------------


def test_reader_then_extractor_copies_a_tree(rootfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.link(rootfs / "tmp" / "dir" / "a", rootfs / "tmp" / "dir" / "hard")
    with View(str(rootfs)) as src, View(str(out)) as dst:
        source = resolve_source(src, "/tmp/dir", False, "missing")
        Extractor(dst, "/", NOBODY).extract(TreeReader(src).entries(source.loc, "copy"))
    assert (out / "copy" / "a").read_text() == "a"
    assert (out / "copy" / "sub" / "b").read_text() == "b"
    assert os.stat(out / "copy" / "hard").st_ino == os.stat(out / "copy" / "a").st_ino


def test_reader_tar_names_and_symlinks_verbatim(rootfs: Path) -> None:
    buf = io.BytesIO()
    with View(str(rootfs)) as view:
        write_tar(TreeReader(view).entries(view.resolve("/tmp"), "tmp"), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {"tmp", "tmp/dir", "tmp/dir/a", "tmp/dir/sub/b", "tmp/up", "tmp/link"} <= set(members)
    assert members["tmp/up"].issym() and members["tmp/up"].linkname == "../.."


def test_extract_stream_stays_in_root(rootfs: Path) -> None:
    """Entries through the archive's own or the tree's symlinks stay in the root."""
    stream = _tar(
        ("evil", "->/etc"),
        ("evil/planted", b"x"),
        ("up/etc/planted2", b"y"),
        ("newdir/", None),
        ("newdir/f", b"z"),
    )
    with View(str(rootfs)) as view:
        Extractor(view, "/tmp", NOBODY).extract_stream(stream)
    assert (rootfs / "etc" / "planted").read_bytes() == b"x"
    assert (rootfs / "etc" / "planted2").read_bytes() == b"y"
    assert (rootfs / "tmp" / "newdir" / "f").read_bytes() == b"z"
    assert os.readlink(rootfs / "tmp" / "evil") == "/etc"
    assert not Path("/etc/planted").exists()


def test_extract_rejects_escaping_member_and_dir_conflicts(rootfs: Path) -> None:
    with View(str(rootfs)) as view:
        with pytest.raises(InvalidArgument, match="leaves the destination"):
            Extractor(view, "/tmp", NOBODY).extract_stream(_tar(("../../x", b"x")))
        with pytest.raises(Conflict, match="non-directory"):
            Extractor(view, "/tmp", NOBODY).extract_stream(_tar(("dir", b"x")))
        with pytest.raises(Conflict, match="with directory"):
            Extractor(view, "/etc", NOBODY).extract_stream(_tar(("passwd/", None)))
        # an existing symlink is replaced, never written through
        Extractor(view, "/", NOBODY).extract_stream(_tar(("abs", b"now a file")))
    assert (rootfs / "abs").read_bytes() == b"now a file"


def test_extract_rewrites_a_bind_mounted_file_in_place(rootfs: Path, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("old\n")
    inode = hosts.stat().st_ino
    with View(str(rootfs)) as view:
        view.add_mount("/etc/hosts", str(hosts))
        Extractor(view, "/etc", NOBODY).extract_stream(_tar(("hosts", b"new\n")))
    assert hosts.read_text() == "new\n" and hosts.stat().st_ino == inode


def test_extract_refuses_read_only_mounts(rootfs: Path, tmp_path: Path) -> None:
    vol = tmp_path / "ro"
    vol.mkdir()
    with View(str(rootfs)) as view:
        view.add_mount("/data", str(vol), readonly=True)
        with pytest.raises(PermissionDenied):
            Extractor(view, "/data", NOBODY).extract_stream(_tar(("f", b"x")))
    assert not (vol / "f").exists()


# -- diff ----------------------------------------------------------------------------------


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


needs_mknod = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need CAP_MKNOD")


def test_diff_without_whiteouts(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("x")
    (lower / "usr").mkdir()
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "passwd").write_text("y")
    (upper / "etc" / "new").write_text("n")
    (upper / "usr").mkdir()  # copied up only
    (upper / "proc").mkdir()  # a runtime mount point
    (upper / "a.txt").write_text("a")
    (upper / "a").mkdir()
    (upper / "a" / "b").write_text("b")
    lowers = Lowers([str(lower)])
    found = changes(str(upper), lowers, mountpoint_skip(str(upper), ["/proc"], lowers))
    assert [str(c) for c in found] == [
        "A /a",
        "A /a/b",
        "A /a.txt",
        "C /etc",
        "A /etc/new",
        "C /etc/passwd",
    ]


@needs_mknod
def test_diff_whiteouts_across_layers(tmp_path: Path) -> None:
    base, mid, upper = tmp_path / "base", tmp_path / "mid", tmp_path / "upper"
    for d in ("etc", "opt/keep"):
        (base / d).mkdir(parents=True)
    (base / "etc" / "group").write_text("g")
    (base / "etc" / "gone").write_text("g")
    (base / "opt" / "keep" / "x").write_text("x")
    (mid / "etc").mkdir(parents=True)
    _whiteout(mid / "etc" / "gone")  # deleted by a layer of the image already
    (upper / "etc").mkdir(parents=True)
    _whiteout(upper / "etc" / "group")
    _whiteout(upper / "etc" / "gone")
    lowers = Lowers([str(mid), str(base)])
    assert lowers.stat(["etc", "gone"]) is None
    assert lowers.children(["etc"]) == {"group"}
    assert changes(str(upper), lowers) == [Change("C", "/etc"), Change("D", "/etc/group")]


# -- CLI details ---------------------------------------------------------------------------


def test_commit_takes_dockers_pause_spelling() -> None:
    from capsa.cli.fscommands import _pause_flag

    assert _pause_flag("--pause=false") == "--no-pause"
    assert _pause_flag("-p=true") == "--pause"
    assert _pause_flag("--pause") == "--pause" and _pause_flag("name=false") == "name=false"


def test_export_refuses_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import click
    from click.testing import CliRunner

    from capsa.cli import fscommands, main

    group = click.Group("capsa", commands=dict(main.cli.commands))
    fscommands.register(group)
    monkeypatch.setitem(main.cli.commands, "export", group.commands["export"])

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    class FakeSys:
        stdout = Tty()

    monkeypatch.setattr(fscommands, "sys", FakeSys)
    result = CliRunner().invoke(main.cli, ["--root", str(tmp_path), "export", "web"])
    assert result.exit_code == 1
    assert "cowardly refusing to save to a terminal" in result.stderr
    assert not os.listdir(tmp_path)  # refused before touching any store
