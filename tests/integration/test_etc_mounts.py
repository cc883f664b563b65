"""A container whose /etc is a bind mount or a volume still sees its own hostname, hosts
and resolv.conf: they live in its run directory and are bind-mounted over /etc/hostname,
/etc/hosts and /etc/resolv.conf. The host directory is never written to: files it has
keep their bytes; a file it lacks gets only the empty mount point the kernel needs to
mount over (runc and Docker make the same), never the container's content."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

FILES = ("hostname", "hosts", "resolv.conf")
SHOW = "cat /etc/hostname; grep -c myhost /etc/hosts; grep -c 203.0.113.7 /etc/resolv.conf"


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def _sees_its_own_files(capsa: CapsaCli, mount: str) -> None:
    proc = capsa.run(
        "run", "--rm", "-v", mount, "--hostname", "myhost", "--dns", "203.0.113.7",
        IMAGE, "sh", "-c", SHOW,
    )  # fmt: skip
    assert proc.stdout.split() == ["myhost", "1", "1"], proc.stdout


def test_a_bound_etc_keeps_its_files_and_the_container_sees_its_own(
    capsa: CapsaCli, tmp_path: Path
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    for name in FILES:
        (etc / name).write_text(f"the host's own {name}\n")
    before = _snapshot(etc)
    _sees_its_own_files(capsa, f"{etc}:/etc")
    assert _snapshot(etc) == before


def test_a_bound_etc_without_the_files_gets_no_content(capsa: CapsaCli, tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    _sees_its_own_files(capsa, f"{etc}:/etc")
    assert (etc / "passwd").read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    for name in FILES:  # at most the empty mount point the kernel needed
        assert not (etc / name).exists() or (etc / name).stat().st_size == 0, name


def test_an_etc_volume_keeps_the_image_files(capsa: CapsaCli) -> None:
    volume = capsa.name()
    capsa.run("volume", "create", volume)
    try:
        _sees_its_own_files(capsa, f"{volume}:/etc")
        where = Path(capsa.run("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip())
        assert (where / "hostname").read_text() == "busybox\n"  # the image's, copied up
        assert os.stat(where / "passwd").st_size > 0
    finally:
        capsa.run("volume", "rm", volume)
