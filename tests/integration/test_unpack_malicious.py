"""Malicious layers: nothing outside the layer directory may change.

Each crafted layer aims at a canary directory next to the destination (and at host
paths such as /etc/passwd). Every case must either be contained (written inside the
destination) or rejected with a clear error; the canary must be byte-for-byte,
mode-for-mode unchanged either way.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from capsa.errors import InvalidArgument
from capsa.store.unpack import apply_layer

pytestmark = pytest.mark.root

Entry = tuple[tarfile.TarInfo, bytes]


def entry(name: str, data: bytes = b"", **attrs: object) -> Entry:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    info.size = len(data) if info.type == tarfile.REGTYPE else 0
    return info, data


def sym(name: str, target: str) -> Entry:
    return entry(name, type=tarfile.SYMTYPE, linkname=target, mode=0o777)


def hard(name: str, target: str) -> Entry:
    return entry(name, type=tarfile.LNKTYPE, linkname=target)


def make_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()


def tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry under ``root``: mode, owner, link count and content hash or target."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = ""
            result[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_nlink, what)
    return result


def host_files() -> dict[str, tuple[int, int, str]]:
    result = {}
    for path in ("/etc/passwd", "/etc/shadow", "/etc/hostname"):
        if os.path.exists(path):
            st = os.lstat(path)
            result[path] = (
                st.st_mode,
                st.st_nlink,
                hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            )
    return result


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """``tmp_path/outside``: a directory no layer may touch."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "canary.txt").write_text("canary\n")
    (outside / "secret.txt").write_text("secret\n")
    os.chmod(outside / "secret.txt", 0o600)
    return outside


def cases(outside: Path) -> dict[str, tuple[list[Entry], Callable[[Path], None] | None]]:
    """name -> (entries, check of the contained result; None: must be rejected)."""
    o = str(outside)

    def contains(*paths: str) -> Callable[[Path], None]:
        def check(dest: Path) -> None:
            for p in paths:
                assert os.path.lexists(dest / p), f"{p} not contained in the layer"

        return check

    return {
        "dotdot": (
            [entry("../../escape", b"x"), entry("a/../../../outside/canary.txt", b"x")],
            contains("escape", "outside/canary.txt"),
        ),
        "absolute": (
            [entry(f"{o}/canary.txt", b"pwned"), entry(f"{o}/new", b"x")],
            contains(f"{o[1:]}/canary.txt", f"{o[1:]}/new"),
        ),
        "abs_symlink_dir": (
            [sym("evil", o), entry("evil/canary.txt", b"pwned"), entry("evil/sub/new", b"x")],
            contains(f"{o[1:]}/canary.txt", f"{o[1:]}/sub/new"),
        ),
        "rel_symlink_dir": (
            [sym("up", "../../.."), entry("up/x", b"x"), entry("up/outside/canary.txt", b"pwned")],
            contains("x", "outside/canary.txt"),
        ),
        "symlink_chain": (
            [sym("a", "b"), sym("b", "c/../d"), sym("d", o), entry("a/canary.txt", b"pwned")],
            contains(f"{o[1:]}/canary.txt"),
        ),
        "symlink_final": ([sym("f", f"{o}/canary.txt"), entry("f", b"pwned")], contains("f")),
        "hardlink_etc_passwd": ([hard("pw", "/etc/passwd")], None),
        "hardlink_dotdot": ([hard("c", "../../outside/canary.txt")], None),
        "hardlink_via_symlink": ([sym("l", o), hard("stolen", "l/secret.txt")], None),
        "device_outside": (
            [
                entry("../../outside/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
                sym("e", o),
                entry("e/fifo", type=tarfile.FIFOTYPE),
            ],
            contains("outside/null", f"{o[1:]}/fifo"),
        ),
        "whiteout_via_symlink": (
            [sym("e", o), entry("e/.wh.canary.txt"), entry("e/sub/.wh..wh..opq")],
            contains(f"{o[1:]}/canary.txt"),
        ),
        "dir_mode_via_symlink": (
            [
                sym("e", o),
                entry("e", type=tarfile.DIRTYPE, mode=0o777),
                entry("e/sub/", type=tarfile.DIRTYPE, mode=0o777),
            ],
            contains("e/sub"),
        ),
    }


@pytest.mark.parametrize("case", list(cases(Path("/x")).keys()))
def test_malicious_layer_is_contained(tmp_path: Path, canary: Path, case: str) -> None:
    entries, check = cases(canary)[case]
    dest = tmp_path / "layer" / "dest"
    dest.mkdir(parents=True)
    before, host_before = tree(tmp_path / "outside"), host_files()
    siblings = sorted(os.listdir(tmp_path))
    if check is None:
        with pytest.raises(InvalidArgument, match="not in the layer"):
            apply_layer(io.BytesIO(make_tar(entries)), str(dest))
    else:
        apply_layer(io.BytesIO(make_tar(entries)), str(dest))
        check(dest)
    assert tree(tmp_path / "outside") == before
    assert host_files() == host_before
    assert sorted(os.listdir(tmp_path)) == siblings
    assert os.listdir(tmp_path / "layer") == ["dest"]
    assert stat.S_IMODE((tmp_path / "outside").stat().st_mode) != 0o777


def test_hard_link_inside_the_layer_still_works(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    data = make_tar(
        [
            entry("etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
            hard("pw", "/etc/passwd"),
            hard("pw2", "../../etc/passwd"),
        ]
    )
    apply_layer(io.BytesIO(data), str(dest))
    ino = (dest / "etc/passwd").stat().st_ino
    assert (dest / "pw").stat().st_ino == ino == (dest / "pw2").stat().st_ino
    assert (dest / "etc/passwd").stat().st_nlink == 3
