"""``cp`` through a remote service, this host's half: Docker's naming rules, and an
archive from the service never writes outside the destination."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from capsa import errors
from capsa.client import hostcopy


def _tar(*entries: tuple[str, str, str]) -> bytes:
    """(name, kind, data-or-link) entries: kind file | dir | symlink | hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = data
                tar.addfile(info)
            else:
                raw = data.encode()
                info.size, info.mode = len(raw), 0o644
                tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


class FakeFs:
    """The service's side: archives what it was given, keeps what it gets."""

    def __init__(self, archive: bytes = b"", stats: dict[str, int] | None = None) -> None:
        self.archive_bytes = archive
        self.stats = stats or {}
        self.extracted: list[tuple[str, list[str]]] = []

    def archive(self, container: str, path: str, out: BinaryIO, opts: Any) -> None:
        out.write(self.archive_bytes)

    def stat_path(self, container: str, path: str) -> Any:
        if path not in self.stats:
            raise errors.NotFound(f"no {path}")
        return type("S", (), {"mode": self.stats[path]})()

    def extract(self, container: str, path: str, stream: BinaryIO, opts: Any) -> None:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            self.extracted.append((path, tar.getnames()))


def test_copy_from_into_a_directory_or_as_a_new_name(tmp_path: Path) -> None:
    fs = FakeFs(
        _tar(("d", "dir", ""), ("d/a", "file", "A"), ("d/s", "dir", ""), ("d/s/b", "file", "B"))
    )
    hostcopy.copy_from(fs, "c", "/d", str(tmp_path), None)
    assert (tmp_path / "d" / "s" / "b").read_text() == "B"
    hostcopy.copy_from(fs, "c", "/d", str(tmp_path / "new"), None)
    assert (tmp_path / "new" / "a").read_text() == "A"
    one = FakeFs(_tar(("hostname", "file", "h1")))
    hostcopy.copy_from(one, "c", "/etc/hostname", str(tmp_path / "h"), None)
    assert (tmp_path / "h").read_text() == "h1"
    with pytest.raises(errors.NotFound):
        hostcopy.copy_from(one, "c", "/etc/hostname", str(tmp_path / "no" / "h"), None)


@pytest.mark.parametrize(
    "entries",
    [
        [("../escape", "file", "x")],
        [("/abs", "file", "x")],
        [
            ("d", "dir", ""),
            ("d/l", "symlink", "/"),
            ("d/l/tmp/escape-through-link", "file", "x"),
        ],
        [("d", "dir", ""), ("d/h", "hardlink", "../../etc/passwd")],
    ],
)
def test_copy_from_refuses_entries_outside(tmp_path: Path, entries: list[Any]) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(errors.InvalidArgument):
        hostcopy.copy_from(FakeFs(_tar(*entries)), "c", "/d", str(dest), None)
    assert not (tmp_path / "escape").exists()
    assert not Path("/tmp/escape-through-link").exists()


def test_a_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    dest = tmp_path / "dest"
    dest.mkdir()
    fs = FakeFs(_tar(("d", "dir", ""), ("d/x", "symlink", str(victim)), ("d/x", "file", "new")))
    hostcopy.copy_from(fs, "c", "/d", str(dest), None)
    assert victim.read_text() == "keep"
    assert (dest / "d" / "x").read_text() == "new" and not (dest / "d" / "x").is_symlink()


def test_copy_to_names_as_docker_does(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("F")
    src_dir = tmp_path / "d"
    (src_dir / "s").mkdir(parents=True)
    (src_dir / "s" / "b").write_text("B")
    fs = FakeFs(stats={"/tmp": stat.S_IFDIR | 0o755, "/etc/file": stat.S_IFREG | 0o644})
    hostcopy.copy_to(fs, "c", str(tmp_path / "f.txt"), "/tmp", None)
    hostcopy.copy_to(fs, "c", str(tmp_path / "f.txt"), "/tmp/renamed", None)
    hostcopy.copy_to(fs, "c", str(src_dir), "/tmp", None)
    hostcopy.copy_to(fs, "c", str(src_dir) + "/.", "/tmp", None)
    assert fs.extracted[0] == ("/tmp", ["f.txt"])
    assert fs.extracted[1] == ("/tmp", ["renamed"])
    assert fs.extracted[2] == ("/tmp", ["d", "d/s", "d/s/b"])
    assert fs.extracted[3] == ("/tmp", [".", "s", "s/b"]) or fs.extracted[3][1] == ["s", "s/b"]
    with pytest.raises(errors.InvalidArgument):
        hostcopy.copy_to(fs, "c", str(src_dir), "/etc/file", None)
    with pytest.raises(errors.NotFound):
        hostcopy.copy_to(fs, "c", str(tmp_path / "missing"), "/tmp", None)
