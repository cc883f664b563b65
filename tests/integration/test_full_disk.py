"""A full disk never wedges capsa: the data root on a small tmpfs, filled for real.

Each test gets its own tmpfs (``SIZE``) as CAPSA_ROOT, with the busybox image imported;
the run root stays on the normal disk. The disk is filled either by a container
(``dd`` in its rw layer) or by a file of our own next to capsa's (anything else on the
same file system): reads must keep working, removals and prunes must free the space,
a failed run or image operation must leave nothing behind, and every failure is one
line (``no space left on device``) with Docker's exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import capsa_cli, requires
from tests.helpers.capsa_cli import IMAGE, CapsaCli
from tests.helpers.images import ImageLayouts
from tests.helpers.registry import LocalRegistry, push_layout

pytestmark = pytest.mark.root
busybox_tarball = capsa_cli.busybox_tarball  # fixture

SIZE = 24 << 20
MiB = 1 << 20


class SmallRootCli(CapsaCli):
    """``capsa`` whose data root is a mount of its own (not a leftover of a container)."""

    def mounts(self) -> list[str]:
        return [m for m in super().mounts() if m != str(self.root)]


class FullDisk:
    """The small data root and a filler file on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def free(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bfree * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Fill the disk up to ``leave`` free bytes (0: not one byte left)."""
        with open(self.filler, "ab", buffering=0) as f:
            block = b"\xa5" * 65536
            while self.free() - leave >= len(block):
                f.write(block)
            with contextlib.suppress(OSError):
                while self.free() > leave:
                    f.write(b"\xa5" * min(4096, self.free() - leave))
        assert self.free() <= leave + 4096

    def unfill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def blobs(self) -> set[str]:
        return set(os.listdir(self.root / "content" / "blobs" / "sha256"))

    def leftovers(self) -> list[str]:
        """Half-made objects: rw layers, container dirs, partial blobs and unpacks."""
        out = []
        for sub in ("overlay-rw", "containers", "content/ingest", "snapshots/tmp", "volumes"):
            with contextlib.suppress(FileNotFoundError):
                out += [f"{sub}/{name}" for name in os.listdir(self.root / sub)]
        return out


@pytest.fixture
def disk(tmp_path: Path, busybox_tarball: Path) -> Iterator[tuple[CapsaCli, FullDisk]]:
    """``capsa`` on a private tmpfs data root holding the busybox image."""
    requires()
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(root)], check=True)
    runroot = Path(tempfile.mkdtemp(prefix="cfd", dir="/tmp"))  # attach sockets: short paths
    cli = SmallRootCli(root, runroot)
    full = FullDisk(root)
    try:
        cli.run("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tarball), IMAGE, timeout=120)
        yield cli, full
    finally:
        full.unfill()
        problems = cli.cleanup()
        cli.run("network", "prune", "-f", check=False)
        _unmount(root)
        if not cli.mounts():
            subprocess.run(["rm", "-rf", str(runroot)], check=False)
    assert not problems, "cleanup left:\n  " + "\n  ".join(problems)


def _unmount(root: Path) -> None:
    """A monitor host on its way out may hold the databases a moment longer."""
    deadline = time.monotonic() + 10
    while subprocess.run(["umount", str(root)], capture_output=True).returncode:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", str(root)], check=False)
            pytest.fail(f"{root} stayed busy")
        time.sleep(0.1)


def _one_line_no_space(proc: subprocess.CompletedProcess[str]) -> None:
    """One ``Error:`` line, the last (progress lines may come before it)."""
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert errors == lines[-1:], proc.stderr
    assert errors[0].startswith("Error: no space left on device"), proc.stderr


def _events(cli: CapsaCli, cid: str) -> list[str]:
    now = f"{time.time() + 0.5:.3f}"
    out = cli.run("events", "--since", "0", "--until", now, "--format", "{{json .}}").stdout
    return [e["Action"] for e in map(json.loads, out.splitlines()) if e.get("id") == cid]


def _reads_work(cli: CapsaCli, name: str) -> None:
    assert name in cli.run("ps", "-a").stdout
    assert cli.status(name) == "exited"
    cli.run("logs", name)
    assert "capsa-test/busybox" in cli.run("images").stdout
    cli.run("volume", "ls")
    cli.run("system", "df")


def test_a_run_rm_that_fills_the_disk_is_removed_with_its_rw_layer(
    disk: tuple[CapsaCli, FullDisk],
) -> None:
    cli, full = disk
    free = full.free()
    name = cli.name()
    proc = cli.run(
        "run", "--rm", "--name", name, "--cidfile", str(full.root.parent / "cid"),
        IMAGE, "dd", "if=/dev/zero", "of=/fill", "bs=64k", check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # dd's own status: the disk was full
    cid = (full.root.parent / "cid").read_text().strip()
    cli.ids.add(cid)  # the fixture's cleanup checks its cgroups and monitor are gone
    assert cli.run("ps", "-aq").stdout.strip() == ""
    assert full.leftovers() == []
    assert full.free() > free - MiB  # the 20 MB the container wrote came back
    actions = _events(cli, cid)
    assert "die" in actions and "destroy" in actions, actions
    cli.run("run", "--rm", IMAGE, "true")


def test_reads_work_and_rm_frees_a_disk_a_container_filled(
    disk: tuple[CapsaCli, FullDisk],
) -> None:
    cli, full = disk
    name = cli.name()
    proc = cli.run("run", "--name", name, IMAGE, "dd", "if=/dev/zero", "of=/fill", check=False)
    assert proc.returncode == 1, proc.stderr
    full.fill()  # and whatever capsa kept back for itself goes too
    _reads_work(cli, name)
    cli.run("rm", name)
    assert full.leftovers() == []
    assert full.free() > 10 * MiB
    full.unfill()
    assert cli.run("run", "--rm", IMAGE, "echo", "ok").stdout == "ok\n"


def test_a_run_on_a_full_disk_fails_in_one_line_and_leaves_nothing(
    disk: tuple[CapsaCli, FullDisk],
) -> None:
    cli, full = disk
    full.fill()
    for verb in (("run", "--rm"), ("run",), ("create",)):
        proc = cli.run(*verb, IMAGE, "true", check=False)
        assert proc.returncode == 125, proc.stderr
        _one_line_no_space(proc)
    assert cli.run("ps", "-aq").stdout.strip() == ""
    assert full.leftovers() == []
    full.unfill()
    assert cli.run("run", "--rm", IMAGE, "echo", "ok").stdout == "ok\n"


def test_rm_and_prunes_work_on_a_disk_filled_by_something_else(
    disk: tuple[CapsaCli, FullDisk],
) -> None:
    cli, full = disk
    exited, created, pruned = cli.name(), cli.name(), cli.name()
    cli.run("run", "--name", exited, IMAGE, "true")
    cli.run("create", "--name", created, IMAGE, "true")
    cli.run("run", "--name", pruned, IMAGE, "true")
    cli.run("volume", "create", "data")
    full.fill()
    cli.run("rm", exited)
    cli.run("container", "prune", "-f")
    assert cli.run("ps", "-aq").stdout.strip() == ""
    cli.run("system", "prune", "-a", "-f", "--volumes")
    cli.run("volume", "prune", "-a", "-f")
    assert cli.run("images", "-q").stdout.strip() == ""
    assert cli.run("volume", "ls", "-q").stdout.strip() == ""
    assert full.leftovers() == []
    assert os.listdir(full.root / "content" / "blobs" / "sha256") == []


def test_a_monitor_records_the_exit_when_the_disk_fills_up(
    disk: tuple[CapsaCli, FullDisk],
) -> None:
    """The container is not the one filling the disk: its exit is recorded all the same."""
    cli, full = disk
    name = cli.name()
    cid = cli.detached("--name", name, "--init", cmd=("sh", "-c", "sleep 1; exit 3"))
    full.fill()
    cli.wait_for(lambda: cli.status(name) == "exited", what=f"{name} exited")
    assert cli.fmt(name, "{{.State.ExitCode}}") == "3"
    assert "die" in _events(cli, cid)
    cli.run("rm", name)


def test_ps_works_on_a_full_disk_when_a_killed_monitor_left_its_container_unrecorded(
    disk: tuple[CapsaCli, FullDisk],
) -> None:
    cli, full = disk
    name = cli.name()
    cid = cli.detached("--name", name)
    pids = [cli.pid(name)]
    cli.wait_for(lambda: cli.monitor_pids(), what="a monitor")
    pids += cli.monitor_pids()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    cli.wait_for(lambda: not any(_alive(p) for p in pids), what="the container and its monitor")
    os.unlink(full.root / "reserved-space")  # spent already: not one byte to write
    full.fill()
    assert name in cli.run("ps", "-a").stdout
    assert cli.status(name) == "exited"
    proc = cli.run("rm", cid, check=False)  # its few files freed too little to record it
    assert proc.returncode == 1 and "no space left on device" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    full.unfill()
    cli.run("rm", cid)
    assert cli.run("ps", "-aq").stdout.strip() == ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2][0] != "Z"
    except OSError:
        return False


def test_image_commands_on_a_full_disk_leave_no_half_made_image(
    disk: tuple[CapsaCli, FullDisk], tmp_path: Path
) -> None:
    cli, full = disk
    noise, saved = tmp_path / "noise.tar", tmp_path / "saved.tar"
    _random_tar(noise, tmp_path / "noise", 4 * MiB)  # incompressible: it cannot fit
    cli.run("import", str(noise), "capsa-test/saved:latest")
    cli.run("save", "-o", str(saved), "capsa-test/saved:latest")
    cli.run("rmi", "capsa-test/saved:latest")
    name = cli.name()
    cli.run("run", "--name", name, IMAGE, "sh", "-c", "head -c 3000000 /dev/urandom > /big")
    images, blobs = cli.run("images", "-q", "--no-trunc").stdout, full.blobs()
    full.fill(leave=512 << 10)
    for args in (
        ("import", str(noise), "capsa-test/noise:latest"),
        ("load", "-i", str(saved)),
        ("commit", name, "capsa-test/committed:latest"),
    ):
        proc = cli.run(*args, check=False)
        assert full.blobs() == blobs, args  # no partial blob holding the space it took
        assert [
            p for p in full.leftovers() if not p.startswith(("overlay-rw/", "containers/"))
        ] == []
        assert proc.returncode == 1, (args, proc.stderr)
        _one_line_no_space(proc)
    full.fill()
    proc = cli.run("volume", "create", "vol", check=False)
    assert proc.returncode == 1, proc.stderr
    _one_line_no_space(proc)
    assert cli.run("images", "-q", "--no-trunc").stdout == images
    assert cli.run("volume", "ls", "-q").stdout.strip() == ""
    assert [p for p in full.leftovers() if not p.startswith(("overlay-rw/", "containers/"))] == []
    full.unfill()
    cli.run("commit", name, "capsa-test/committed:latest")
    cli.run("rm", name)
    cli.run("load", "-i", str(saved))
    cli.run("volume", "create", "vol")
    cli.run("volume", "rm", "vol")


def test_a_pull_on_a_full_disk_leaves_no_half_made_image(
    disk: tuple[CapsaCli, FullDisk], registry: LocalRegistry, image_layouts: ImageLayouts
) -> None:
    requires("skopeo", "umoci")
    cli, full = disk
    push_layout(registry, image_layouts.busybox(), "test/busybox:latest")
    ref = f"{registry.host}/test/busybox:latest"
    cli.run("rmi", IMAGE)
    cli.run("image", "prune", "-a", "-f")
    full.fill(leave=512 << 10)
    proc = cli.run("pull", ref, check=False)
    assert full.leftovers() == []  # no partial blob holding the space it took
    assert cli.run("images", "-q").stdout.strip() == ""
    assert proc.returncode == 1, proc.stderr
    _one_line_no_space(proc)
    full.unfill()
    cli.run("pull", ref)


def _random_tar(out: Path, tree: Path, size: int) -> None:
    import tarfile

    tree.mkdir()
    (tree / "noise").write_bytes(os.urandom(size))
    with tarfile.open(out, "w") as tar:
        tar.add(tree / "noise", arcname="noise")
