"""`capsa cp / diff / commit / export` against real containers (overlay, volumes).

Every command runs as a subprocess of the real CLI with private roots; containers and
images carry the test's ``capsa-test-`` token and are removed at the end.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import wait_for

pytestmark = pytest.mark.root

# registers the commands until cli/main.py does it itself
LAUNCHER = (
    "import sys\n"
    "from capsa.cli import main, fscommands\n"
    "if 'cp' not in main.cli.commands:\n"
    "    fscommands.register(main.cli)\n"
    "sys.argv[0] = 'capsa'\n"
    "main.main()\n"
)
IMAGE = "busybox:fsops"


class Capsa:
    def __init__(self, tmp_path: Path, token: str) -> None:
        self.root, self.runroot = tmp_path / "root", tmp_path / "run"
        self.token = token
        self.containers: list[str] = []
        env = dict(os.environ, CAPSA_ROOT=str(self.root), CAPSA_RUNROOT=str(self.runroot))
        env.pop("CAPSA_CONFIG", None)
        self.env = env

    def __call__(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *args],
            input=input,
            capture_output=True,
            env=self.env,
            timeout=60,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"capsa {' '.join(args)} -> {proc.returncode}: {proc.stderr.decode()}")
        return proc

    def fails(self, *args: str, input: bytes | None = None) -> str:
        proc = self(*args, input=input, check=False)
        assert proc.returncode != 0, f"capsa {' '.join(args)} succeeded"
        return proc.stderr.decode()

    def name(self, suffix: str) -> str:
        name = f"{self.token}-{suffix}"
        self.containers.append(name)
        return name

    def start(
        self, suffix: str, *command: str, opts: tuple[str, ...] = (), wait: bool = True
    ) -> str:
        """A detached container running ``command``; waits until it touched /done."""
        name = self.name(suffix)
        self("run", "-d", "--name", name, *opts, IMAGE, *command)
        if wait:
            wait_for(lambda: self("cp", f"{name}:/done", "-", check=False).returncode == 0, 20)
        return name

    def cleanup(self) -> None:
        for name in self.containers:
            self("rm", "-f", "-v", name, check=False)


def _script(body: str) -> tuple[str, ...]:
    return ("sh", "-c", f"{body}; touch /done; exec sleep 300")


def _tar_bytes(*members: tuple[str, bytes | str | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def capsa(tmp_path: Path, test_token: str, busybox_rootfs: Path) -> Iterator[Capsa]:
    cli = Capsa(tmp_path, test_token)
    layer = subprocess.run(
        ["tar", "-C", str(busybox_rootfs), "-c", "."], check=True, capture_output=True
    ).stdout
    cli("import", "-c", 'CMD ["/bin/sh"]', "-", IMAGE, input=layer)
    try:
        yield cli
    finally:
        cli.cleanup()
        fsops = cli.runroot / "fsops"
        assert not fsops.exists() or not os.listdir(fsops), "temporary mount points left"


def test_cp_both_directions_running_then_stopped(capsa: Capsa, tmp_path: Path) -> None:
    c = capsa.start("cp", *_script("mkdir -p /srv/d/sub && echo a > /srv/d/a"))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_text("f")
    (src / "sub" / "g").write_text("g")
    os.chown(src / "f", 1234, 1234)
    capsa("cp", str(src), f"{c}:/tmp/")
    capsa("cp", "-a", str(src), f"{c}:/tmp/arch")
    capsa("cp", f"{src}/.", f"{c}:/tmp/contents")
    tree = _members(capsa("cp", f"{c}:/tmp", "-").stdout)
    assert tree["tmp/src/f"].uid == 0 and tree["tmp/arch/f"].uid == 1234
    assert {"tmp/src/sub/g", "tmp/contents/f", "tmp/contents/sub/g"} <= tree.keys()

    out = tmp_path / "out"
    out.mkdir()
    capsa("cp", f"{c}:/srv/d", str(out))
    capsa("cp", f"{c}:/srv/d/.", str(out / "copy"))
    capsa("cp", f"{c}:/srv/d/a", str(out / "renamed"))
    assert (out / "d" / "a").read_text() == "a\n" and (out / "copy" / "a").read_text() == "a\n"
    assert (out / "renamed").read_text() == "a\n" and (out / "d" / "sub").is_dir()

    assert f"Could not find the file /nope in container {c}" in capsa.fails(
        "cp", f"{c}:/nope", str(out)
    )
    assert f"Could not find the file /nodir in container {c}" in capsa.fails(
        "cp", str(src / "f"), f"{c}:/nodir/x"
    )
    assert "does not exist" in capsa.fails("cp", str(src / "f"), f"{c}:/tmp/newdir/")
    assert "cannot copy a directory" in capsa.fails("cp", str(src), f"{c}:/etc/passwd")
    assert "at least one container" in capsa.fails("cp", str(src), str(out))

    capsa("stop", "-t", "0", c)
    capsa("cp", f"{c}:/tmp/src/f", str(out / "after-stop"))
    assert (out / "after-stop").read_text() == "f"
    capsa("cp", str(src / "f"), f"{c}:/srv/stopped")
    assert _members(capsa("cp", f"{c}:/srv/stopped", "-").stdout)["stopped"].size == 1


def test_cp_tar_streams(capsa: Capsa) -> None:
    c = capsa.start("stream", *_script("true"))
    capsa("cp", "-", f"{c}:/tmp", input=_tar_bytes(("x/", None), ("x/f", b"data")))
    assert set(_members(capsa("cp", f"{c}:/tmp/x", "-").stdout)) == {"x", "x/f"}
    contents = _members(capsa("cp", f"{c}:/tmp/x/.", "-").stdout)
    assert {n.removeprefix("./") for n in contents} == {".", "f"}
    assert "must be a directory" in capsa.fails(
        "cp", "-", f"{c}:/etc/passwd", input=_tar_bytes(("f", b""))
    )


def test_cp_symlinks_never_reach_the_host(capsa: Capsa, tmp_path: Path) -> None:
    c = capsa.start(
        "escape",
        *_script(
            "ln -s /etc /abs; ln -s ../../../../../../.. /rel; ln -s /etc/hostname /hn;"
            " mkdir /tmp/d; ln -s / /tmp/d/root"
        ),
    )
    mark = capsa.token
    payload = tmp_path / "payload"
    payload.write_text("payload")
    capsa("cp", str(payload), f"{c}:/abs/{mark}-1")
    capsa("cp", str(payload), f"{c}:/rel/etc/{mark}-2")
    capsa("cp", str(payload), f"{c}:/rel/tmp/{mark}-3")  # DEST's parent is a symlink
    evil = _tar_bytes(("l", "/etc"), (f"l/{mark}-4", b"x"), ("r", "../../../../.."))
    capsa("cp", "-", f"{c}:/tmp", input=evil)
    capsa("cp", "-", f"{c}:/tmp", input=_tar_bytes((f"r/etc/{mark}-5", b"y")))
    for host in (f"/etc/{mark}-1", f"/etc/{mark}-2", f"/tmp/{mark}-3", f"/etc/{mark}-4"):
        assert not os.path.lexists(host), f"{host} written on the host"
    assert not os.path.lexists(f"/etc/{mark}-5")
    inside = _members(capsa("cp", f"{c}:/etc", "-").stdout)
    assert {f"etc/{mark}-{i}" for i in (1, 2, 4, 5)} <= inside.keys()
    assert "leaves the destination" in capsa.fails(
        "cp", "-", f"{c}:/tmp", input=_tar_bytes((f"../../../{mark}-6", b"z"))
    )

    out = tmp_path / "out"
    out.mkdir()
    capsa("cp", f"{c}:/rel/etc/hostname", str(out / "hn"))
    capsa("cp", "-L", f"{c}:/hn", str(out / "followed"))
    capsa("cp", f"{c}:/hn", str(out / "link"))
    capsa("cp", f"{c}:/tmp/d", str(out))
    hostname = (out / "hn").read_text()
    cid = capsa("inspect", "--format", "{{.Id}}", c).stdout.decode().strip()
    assert hostname == (out / "followed").read_text() == f"{cid[:12]}\n"  # the container's
    assert os.readlink(out / "link") == "/etc/hostname"
    assert_stat_resolves_inside(capsa, c)
    assert os.readlink(out / "d" / "root") == "/"


def test_cp_reaches_volumes_and_binds(capsa: Capsa, tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "f").write_text("in bind")
    volume = f"{capsa.token}-vol"
    c = capsa.start(
        "vols", *_script("true"), opts=("-v", f"{volume}:/data", "-v", f"{bind}:/bind:ro")
    )
    payload = tmp_path / "payload"
    payload.write_text("p")
    capsa("cp", str(payload), f"{c}:/data/x")
    assert (capsa.root / "volumes" / volume / "_data" / "x").read_text() == "p"
    capsa("cp", f"{c}:/bind/f", str(tmp_path / "from-bind"))
    assert (tmp_path / "from-bind").read_text() == "in bind"
    assert "mounted volume is marked read-only" in capsa.fails("cp", str(payload), f"{c}:/bind/x")
    assert not (bind / "x").exists()
    ro = capsa.start("ro", "sleep", "300", opts=("--read-only",), wait=False)
    assert "rootfs is marked read-only" in capsa.fails("cp", str(payload), f"{ro}:/x")


def test_diff_reports_changes_like_docker(capsa: Capsa) -> None:
    fresh = capsa.name("fresh")
    capsa("create", "--name", fresh, IMAGE)
    assert capsa("diff", fresh).stdout == b""
    c = capsa.start(
        "diff",
        *_script(
            "echo n > /tmp/new; rm /etc/group; echo x >> /etc/passwd;"
            " rm -rf /home; mkdir /home; touch /home/fresh; chown 7:7 /mnt"
        ),
    )
    # /home is an opaque dir now: what the image had in it is reported deleted
    assert capsa("diff", c).stdout.decode().splitlines() == [
        "A /done",
        "C /etc",
        "D /etc/group",
        "C /etc/passwd",
        "C /home",
        "A /home/fresh",
        "D /home/user",
        "C /mnt",
        "C /tmp",
        "A /tmp/new",
    ]


def test_commit_then_run_the_new_image(capsa: Capsa) -> None:
    c = capsa.start("commit", *_script("echo committed > /srv-file; rm /etc/group"))
    image = f"{capsa.token}-img:v1"
    out = capsa("commit", "-m", "my message", "-a", "me", "-c", "ENV FOO=bar", c, image)
    assert out.stdout.decode().strip().startswith("sha256:")
    status = capsa("inspect", "--format", "{{.State.Status}}", c).stdout.decode().strip()
    assert status == "running"  # paused during the commit only
    run = capsa.name("from-image")
    result = capsa(
        "run",
        "--name",
        run,
        image,
        "sh",
        "-c",
        'cat /srv-file; test -e /etc/group && echo group || echo nogroup; echo "FOO=$FOO"',
    )
    assert result.stdout.decode().split() == ["committed", "nogroup", "FOO=bar"]
    history = capsa("history", "--no-trunc", image).stdout.decode()
    assert "my message" in history
    assert "unsupported instruction" in capsa.fails("commit", "-c", "BOGUS x", c)


def test_export_writes_the_merged_filesystem(capsa: Capsa, tmp_path: Path) -> None:
    created = capsa.name("created")
    capsa("create", "--name", created, IMAGE)
    target = tmp_path / "created.tar"
    capsa("export", "-o", str(target), created)
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
    assert {"bin/busybox", "etc/passwd"} <= names
    volume = f"{capsa.token}-exp"
    c = capsa.start(
        "export", *_script("echo n > /tmp/new; echo v > /data/v"), opts=("-v", f"{volume}:/data")
    )
    members = _members(capsa("export", c).stdout)
    assert "tmp/new" in members and "data/v" not in members


def assert_stat_resolves_inside(capsa: Capsa, container: str) -> None:
    """The engine API behind HEAD /archive: a symlink's target is a container path."""
    from capsa.config import Settings
    from capsa.engine.local import LocalEngine

    engine = LocalEngine(Settings(root=str(capsa.root), runroot=str(capsa.runroot)))
    try:
        from capsa.engine.fsops.service import FsService

        fs = FsService(engine.ctx, engine.containers, engine.images)
        st = fs.stat_path(container, "/rel/etc/../hn")
        assert (st.name, st.link_target) == ("hn", "/etc/hostname")
    finally:
        engine.close()
