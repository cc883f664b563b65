"""VolumeService: create/list/filters/remove/prune, in-use refusal, populate from an image."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import unique_name

from capsa.config import Settings
from capsa.engine.volumes.service import VolumeService, populate
from capsa.engine.volumes.types import ANONYMOUS_LABEL, VolumeCreateOptions
from capsa.errors import Conflict, InvalidArgument, NotFound


@pytest.fixture
def service(tmp_path: Path) -> Iterator[VolumeService]:
    svc = VolumeService(Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run")))
    yield svc
    svc.close()


def _create(svc: VolumeService, name: str | None = None, **kw: object) -> str:
    return svc.create(VolumeCreateOptions(name=name, **kw)).name  # type: ignore[arg-type]


# -- create / get ------------------------------------------------------------------


def test_create_lays_out_docker_style(service: VolumeService, tmp_path: Path) -> None:
    v = service.create(VolumeCreateOptions(name="data", labels={"a": "1"}))
    assert v.mountpoint == str(tmp_path / "root" / "volumes" / "data" / "_data")
    assert os.path.isdir(v.mountpoint)
    assert v.driver == "local" and v.scope == "local" and not v.anonymous
    assert v.created_at.endswith("Z") and "T" in v.created_at
    assert service.get("data") == v


def test_create_without_name_is_random_and_anonymous(service: VolumeService) -> None:
    v = service.create(VolumeCreateOptions())  # dockerd labels a volume it names itself
    assert len(v.name) == 64 and int(v.name, 16) >= 0
    assert v.anonymous and v.labels == {ANONYMOUS_LABEL: ""}
    anon = service.create(VolumeCreateOptions(anonymous=True))
    assert anon.anonymous and anon.labels == {ANONYMOUS_LABEL: ""}
    named = service.create(VolumeCreateOptions(name="named", labels={"k": "v"}))
    assert not named.anonymous and named.labels == {"k": "v"}


def test_create_is_idempotent(service: VolumeService) -> None:
    first = service.create(VolumeCreateOptions(name="same", labels={"k": "v"}))
    assert service.create(VolumeCreateOptions(name="same")) == first
    assert service.create(VolumeCreateOptions(name="same", labels={"k": "v"})) == first
    with pytest.raises(Conflict):
        service.create(VolumeCreateOptions(name="same", labels={"k": "other"}))
    with pytest.raises(Conflict):
        service.create(
            VolumeCreateOptions(name="same", driver_opts={"type": "tmpfs", "device": "tmpfs"})
        )


@pytest.mark.parametrize("name", ["a", "-bad", "has space", "sl/ash", "é"])
def test_create_rejects_bad_names(service: VolumeService, name: str) -> None:
    with pytest.raises(InvalidArgument):
        service.create(VolumeCreateOptions(name=name))


def test_create_rejects_other_drivers_and_options(service: VolumeService) -> None:
    with pytest.raises(InvalidArgument, match='plugin "nfsx" not found'):
        service.create(VolumeCreateOptions(name="x1", driver="nfsx"))
    with pytest.raises(InvalidArgument, match="invalid option"):
        service.create(VolumeCreateOptions(name="x1", driver_opts={"color": "red"}))
    with pytest.raises(InvalidArgument, match="missing required option"):
        service.create(VolumeCreateOptions(name="x1", driver_opts={"type": "tmpfs"}))
    with pytest.raises(InvalidArgument, match="absolute"):
        service.create(
            VolumeCreateOptions(
                name="x1", driver_opts={"type": "none", "o": "bind", "device": "rel"}
            )
        )
    assert service.list({}) == []


def test_get_missing(service: VolumeService) -> None:
    with pytest.raises(NotFound, match="No such volume: "):
        service.get("nope")


# -- list and filters --------------------------------------------------------------


def test_list_filters(service: VolumeService) -> None:
    _create(service, "alpha", labels={"app": "web", "tier": "front"})
    _create(service, "beta", labels={"app": "db"})
    _create(service, "gamma")
    service.mount_source("beta", "c1", None, "/data")
    names = lambda f: [v.name for v in service.list(f)]  # noqa: E731
    assert names({}) == ["alpha", "beta", "gamma"]
    assert names({"name": ["al"]}) == ["alpha"]
    assert names({"name": ["^.a", "gam"]}) == ["gamma"]
    assert names({"label": ["app"]}) == ["alpha", "beta"]
    assert names({"label": ["app=web"]}) == ["alpha"]
    assert names({"label": ["app", "tier=front"]}) == ["alpha"]
    assert names({"dangling": ["true"]}) == ["alpha", "gamma"]
    assert names({"dangling": ["false"]}) == ["beta"]
    assert names({"driver": ["local"]}) == ["alpha", "beta", "gamma"]
    assert names({"driver": ["nfs"]}) == []
    with pytest.raises(InvalidArgument):
        service.list({"colour": ["x"]})
    with pytest.raises(InvalidArgument):
        service.list({"dangling": ["maybe"]})


# -- remove / in use ----------------------------------------------------------------


def test_remove_and_in_use_refusal(service: VolumeService) -> None:
    path = service.mount_source("busy", "c1", None, "/data")
    Path(path, "file").write_text("x")
    service.mount_source("busy", "c2", None, "/data")
    assert service.users("busy") == ["c1", "c2"]
    for force in (False, True):
        with pytest.raises(Conflict, match=r"volume is in use - \[c1 c2\]"):
            service.remove("busy", force=force)
    service.release("busy", "c1")
    assert service.release_all("c2") == ["busy"]
    assert service.users("busy") == []
    service.remove("busy")
    assert not os.path.exists(os.path.dirname(path))
    with pytest.raises(NotFound):
        service.remove("busy")
    service.remove("busy", force=True)  # forced: a missing volume is fine


def test_mount_source_creates_missing_volume(service: VolumeService) -> None:
    path = service.mount_source("auto", "c1", None, "/data")
    assert path == service.get("auto").mountpoint and os.path.isdir(path)
    assert service.mount_source("auto", "c1", None, "/data") == path  # idempotent
    assert service.users("auto") == ["c1"]
    service.release("auto", "c1")
    service.release("auto", "c1")
    service.release("gone", "c1")


def test_size_counts_hard_links_once(service: VolumeService) -> None:
    path = Path(service.create(VolumeCreateOptions(name="sized")).mountpoint)
    (path / "a").write_bytes(b"x" * 1000)
    (path / "d").mkdir()
    (path / "d" / "b").write_bytes(b"y" * 24)
    os.link(path / "a", path / "d" / "a2")
    os.symlink("/etc/passwd", path / "link")
    assert service.size("sized") == 1024 + len("/etc/passwd")


# -- prune -------------------------------------------------------------------------


def test_prune_anonymous_by_default_all_with_flag(service: VolumeService) -> None:
    anon = service.create(VolumeCreateOptions(anonymous=True)).name
    anon_used = service.create(VolumeCreateOptions(anonymous=True)).name
    service.mount_source(anon_used, "c1", None, "/x")
    _create(service, "named", labels={"keep": "no"})
    _create(service, "kept", labels={"keep": "yes"})
    Path(service.get(anon).mountpoint, "f").write_bytes(b"z" * 100)

    report = service.prune({})
    assert report.deleted == [anon] and report.space_reclaimed == 100
    report = service.prune({"label!": ["keep=yes"]}, all_volumes=True)
    assert report.deleted == ["named"]
    report = service.prune({"label": ["keep"], "all": ["true"]})
    assert report.deleted == ["kept"]
    assert [v.name for v in service.list({})] == [anon_used]
    with pytest.raises(InvalidArgument):
        service.prune({"name": ["x"]})


def test_prune_keeps_volumes_of_stopped_containers(tmp_path: Path) -> None:
    """A container that exists holds its volumes even stopped (released by its monitor):
    prune and df count it, as Docker's reference counts do."""
    refs: dict[str, list[str]] = {}
    settings = Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))
    svc = VolumeService(settings, lambda: refs)
    try:
        held = svc.create(VolumeCreateOptions()).name  # no name: anonymous, as Docker's
        free = svc.create(VolumeCreateOptions()).name
        _create(svc, "named")
        refs[held] = ["c1"]
        refs["named"] = ["c1", "c2"]
        assert {u.volume.name: u.links for u in svc.disk_usage()} == {
            held: 1,
            free: 0,
            "named": 2,
        }
        assert svc.prune({}).deleted == [free]
        assert svc.prune({}, all_volumes=True).deleted == []
        refs.clear()
        assert sorted(svc.prune({"all": ["1"]}).deleted) == sorted([held, "named"])
    finally:
        svc.close()


def test_prune_leaves_volumes_with_mount_options(service: VolumeService) -> None:
    """dockerd prunes local volumes without options only: a tmpfs or bind volume's data
    is not on the data root."""
    opts = {"type": "tmpfs", "device": "tmpfs"}
    anon = service.create(VolumeCreateOptions(anonymous=True, driver_opts=opts)).name
    assert service.prune({}, all_volumes=True).deleted == []
    assert [u.volume.name for u in service.disk_usage()] == []
    assert [v.name for v in service.list({})] == [anon]
    with pytest.raises(InvalidArgument, match="invalid filter 'until'"):
        service.prune({"until": ["1h"]})


# -- populate from the image ---------------------------------------------------------


def _image(root: Path) -> Path:
    data = root / "srv" / "data"
    (data / "nested" / "deeper").mkdir(parents=True)
    (data / "file.txt").write_text("hello")
    os.chmod(data / "file.txt", 0o640)
    (data / "nested" / "deeper" / "leaf").write_text("leaf")
    (data / "script").write_text("#!/bin/sh\n")
    os.chmod(data / "script", 0o4755)
    os.symlink("/etc", data / "etc-link")  # absolute: must stay a symlink
    os.symlink("../file.txt", data / "nested" / "rel-link")
    os.link(data / "file.txt", data / "nested" / "hard")
    os.mkfifo(data / "fifo")
    os.chmod(data / "nested", 0o750)
    return root


def test_populate_copies_tree_without_following_symlinks(tmp_path: Path) -> None:
    rootfs = _image(tmp_path / "rootfs")
    target = tmp_path / "vol"
    target.mkdir()
    assert populate(str(rootfs), "/srv/data", str(target))
    assert (target / "file.txt").read_text() == "hello"
    assert stat.S_IMODE((target / "file.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((target / "script").stat().st_mode) == 0o4755
    assert os.readlink(target / "etc-link") == "/etc"
    assert os.readlink(target / "nested" / "rel-link") == "../file.txt"
    assert (target / "nested" / "deeper" / "leaf").read_text() == "leaf"
    assert stat.S_IMODE((target / "nested").stat().st_mode) == 0o750
    assert (target / "nested" / "hard").stat().st_ino == (target / "file.txt").stat().st_ino
    assert stat.S_ISFIFO(os.lstat(target / "fifo").st_mode)
    assert not (target / "etc-link" / "passwd").is_symlink()  # sanity of the host


def test_populate_resolves_dest_inside_rootfs(tmp_path: Path) -> None:
    rootfs = _image(tmp_path / "rootfs")
    host = tmp_path / "host-secret"
    host.mkdir()
    (host / "secret").write_text("s")
    os.symlink(str(host), rootfs / "escape")  # absolute symlink out of the rootfs
    target = tmp_path / "vol"
    target.mkdir()
    assert not populate(str(rootfs), "/escape", str(target))  # re-rooted: missing
    assert os.listdir(target) == []
    os.symlink("/srv/data", rootfs / "alias")  # a symlink inside the rootfs is followed
    assert populate(str(rootfs), "/alias/../../../../srv/data", str(target))
    assert (target / "file.txt").read_text() == "hello"


def test_populate_skips_non_empty_or_missing(tmp_path: Path) -> None:
    rootfs = _image(tmp_path / "rootfs")
    target = tmp_path / "vol"
    target.mkdir()
    (target / "mine").write_text("keep")
    assert not populate(str(rootfs), "/srv/data", str(target))
    assert os.listdir(target) == ["mine"]
    assert not populate(str(rootfs), "/srv/data/file.txt", str(target))  # not a directory
    assert not populate(str(rootfs), "/does/not/exist", str(target))


def test_mount_source_populates_only_on_first_use(service: VolumeService, tmp_path: Path) -> None:
    rootfs = _image(tmp_path / "rootfs")
    path = Path(service.mount_source("web", "c1", str(rootfs), "/srv/data"))
    assert (path / "file.txt").read_text() == "hello"
    for entry in list(path.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    service.release("web", "c1")
    service.mount_source("web", "c2", str(rootfs), "/srv/data")
    assert list(path.iterdir()) == []  # emptied by the user: not copied again


def test_mount_source_nocopy_then_copy(service: VolumeService, tmp_path: Path) -> None:
    rootfs = _image(tmp_path / "rootfs")
    path = Path(service.mount_source("late", "c1", None, "/srv/data"))
    assert list(path.iterdir()) == []
    service.mount_source("late", "c2", str(rootfs), "/srv/data")
    assert (path / "file.txt").read_text() == "hello"


@pytest.mark.root
def test_populate_keeps_owners_and_xattrs(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    rootfs = _image(tmp_path / "rootfs")
    data = rootfs / "srv" / "data"
    os.chown(data, 1000, 1000)
    os.chown(data / "file.txt", 123, 456)
    os.chown(data / "etc-link", 7, 8, follow_symlinks=False)
    os.chown(data / "nested", 33, 33)
    try:
        os.setxattr(data / "file.txt", "user.capsa", b"v")
        os.setxattr(data / "file.txt", "trusted.capsa", b"t")
    except OSError:
        pytest.skip("no xattrs on the temporary file system")
    os.chmod(data / "script", 0o4755)  # chown cleared nothing here, but be explicit
    target = tmp_path / "vol"
    target.mkdir()
    assert populate(str(rootfs), "/srv/data", str(target))
    st = (target / "file.txt").stat()
    assert (st.st_uid, st.st_gid) == (123, 456)
    assert os.lstat(target / "etc-link")[4:6] == (7, 8)
    assert (target / "nested").stat().st_uid == 33
    assert (target.stat().st_uid, target.stat().st_gid) == (1000, 1000)  # root of the volume
    assert os.getxattr(target / "file.txt", "user.capsa") == b"v"
    assert os.getxattr(target / "file.txt", "trusted.capsa") == b"t"


# -- tmpfs / bind options (real mounts) ----------------------------------------------


def _mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


@pytest.fixture
def mount_guard(service: VolumeService):  # type: ignore[no-untyped-def]
    """Unmounts whatever a failing test left mounted under the service's root."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    yield
    from capsa.linux import syscalls

    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    base = os.path.realpath(service.base)
    for point in reversed(points):
        if point.startswith(base + "/"):
            syscalls.umount2(point, syscalls.MNT_DETACH)


@pytest.mark.root
@pytest.mark.usefixtures("mount_guard")
def test_tmpfs_volume_mounted_while_used(service: VolumeService, tmp_path: Path) -> None:
    name = unique_name()
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000,mode=0700"}
    v = service.create(VolumeCreateOptions(name=name, driver_opts=opts))
    assert v.options == opts and service.size(name) == -1
    rootfs = _image(tmp_path / "rootfs")
    path = service.mount_source(name, "c1", str(rootfs), "/srv/data")
    assert _mounted(path)
    assert (Path(path) / "file.txt").read_text() == "hello"  # populated inside the tmpfs
    service.mount_source(name, "c2", None, "/srv/data")
    service.release(name, "c1")
    assert _mounted(path)
    service.release(name, "c2")
    assert not _mounted(path)
    service.remove(name)
    assert not os.path.exists(path)


@pytest.mark.root
@pytest.mark.usefixtures("mount_guard")
def test_bind_volume_keeps_host_data_on_remove(service: VolumeService, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "precious").write_text("p")
    name = unique_name()
    opts = {"type": "none", "o": "bind", "device": str(host)}
    service.create(VolumeCreateOptions(name=name, driver_opts=opts))
    path = service.mount_source(name, "c1", None, "/data")
    assert (Path(path) / "precious").read_text() == "p"
    Path(path, "new").write_text("n")
    assert (host / "new").read_text() == "n"
    with pytest.raises(Conflict):
        service.remove(name, force=True)
    service.release(name, "c1")
    assert not _mounted(path)
    service.remove(name)
    assert (host / "precious").read_text() == "p" and (host / "new").exists()


@pytest.mark.root
@pytest.mark.usefixtures("mount_guard")
def test_failed_mount_leaves_no_user(service: VolumeService, tmp_path: Path) -> None:
    name = unique_name()
    opts = {"type": "none", "o": "bind", "device": str(tmp_path / "missing")}
    service.create(VolumeCreateOptions(name=name, driver_opts=opts))
    with pytest.raises(NotFound):
        service.mount_source(name, "c1", None, "/data")
    assert service.users(name) == []
    service.remove(name)


def test_concurrent_first_use_populates_once(tmp_path: Path) -> None:
    import threading

    rootfs = _image(tmp_path / "rootfs")
    settings = Settings(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))
    services = [VolumeService(settings) for _ in range(4)]
    errors: list[BaseException] = []

    def use(i: int) -> None:
        try:
            services[i].mount_source("shared", f"c{i}", str(rootfs), "/srv/data")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=use, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert services[0].users("shared") == ["c0", "c1", "c2", "c3"]
    path = Path(services[0].get("shared").mountpoint)
    assert (path / "file.txt").read_text() == "hello"
    for svc in services:
        svc.close()
