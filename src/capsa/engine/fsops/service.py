"""A container's files from the outside: ``cp``, ``diff``, ``commit`` and ``export``.

A running container is reached through the rootfs its monitor mounted; any other is
mounted on a private temporary directory for the operation and unmounted after.
``cp`` also reaches the container's volumes, binds and /etc/hosts, /etc/hostname and
/etc/resolv.conf files (resolved to their host sources), like Docker; tmpfs mounts
live only inside the container and are not reached (the layer below is). Every
container path is resolved inside the container (see ``fsops.view``).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from capsa.engine.containers.types import Action, State, check, is_live
from capsa.engine.fsops.copy import (
    check_parent,
    plan,
    resolve_destination,
    resolve_source,
)
from capsa.engine.fsops.diff import Change, Lowers, changes, mountpoint_skip
from capsa.engine.fsops.extract import Extractor, Ownership
from capsa.engine.fsops.tar import TreeReader, write_tar
from capsa.engine.fsops.types import CommitOptions, CopyOptions, PathStat
from capsa.engine.fsops.view import View
from capsa.errors import CapsaError, FailedPrecondition, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO

    from capsa.engine.containers.service import ContainerService
    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.fsops.copy import Destination, Source
    from capsa.engine.images.service import ImageService
    from capsa.engine.service_context import ServiceContext

ETC_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")
# what a runtime creates in the rootfs to mount on (Docker keeps these in an init layer)
RUNTIME_MOUNTPOINTS = (
    *ETC_FILES,
    "/proc",
    "/sys",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/dev/console",
    "/sbin/docker-init",
)


class FsService:
    def __init__(
        self, ctx: ServiceContext, containers: ContainerService, images: ImageService
    ) -> None:
        self.ctx = ctx
        self.containers = containers
        self.images = images

    # -- cp ------------------------------------------------------------------------

    def stat_path(self, container: str, path: str) -> PathStat:
        rec = self.containers.get(container)
        with self._view(rec) as view:
            src = resolve_source(view, path, False, _missing(path, container))
            target = view.resolve(path).path if stat.S_ISLNK(src.st.st_mode) else ""
            st = src.st
            return PathStat(src.name or "/", st.st_size, st.st_mode, st.st_mtime, target)

    def archive(
        self, container: str, path: str, out: BinaryIO, opts: CopyOptions | None = None
    ) -> Source:
        """Write SRC as a tar stream (``cp CONTAINER:SRC -``, the API's GET archive)."""
        opts = opts or CopyOptions()
        rec = self.containers.get(container)
        with self._view(rec) as view:
            src = resolve_source(view, path, opts.follow_link, _missing(path, container))
            _write(TreeReader(view), src, src.top, out)
            return src

    def extract(
        self, container: str, path: str, stream: BinaryIO, opts: CopyOptions | None = None
    ) -> None:
        """Extract a tar stream into directory ``path`` (``cp - CONTAINER:DEST``)."""
        opts = opts or CopyOptions()
        rec = self.containers.get(container)
        with self._view(rec) as view:
            dst = resolve_destination(view, path)
            if dst.st is None:
                raise NotFound(_missing(path, container))
            if not _isdir(dst):
                raise InvalidArgument(f'destination "{container}:{path}" must be a directory')
            Extractor(view, dst.loc.path, _inward(opts)).extract_stream(stream)

    def copy_from(
        self, container: str, src_path: str, dst_path: str, opts: CopyOptions | None = None
    ) -> None:
        """``cp CONTAINER:SRC DEST`` with DEST on the host."""
        opts = opts or CopyOptions()
        rec = self.containers.get(container)
        host_dst = _absolute(dst_path)
        with self._view(rec) as view, View("/") as host:
            src = resolve_source(view, src_path, opts.follow_link, _missing(src_path, container))
            dst = resolve_destination(host, host_dst)
            check_parent(host, dst, f"destination directory of {dst_path} does not exist")
            into, top = plan(src, dst)
            with View(into) as target:
                owner = Ownership(keep=opts.archive)
                _copy(TreeReader(view), src, top, Extractor(target, "/", owner))

    def copy_to(
        self, container: str, src_path: str, dst_path: str, opts: CopyOptions | None = None
    ) -> None:
        """``cp SRC CONTAINER:DEST`` with SRC on the host."""
        opts = opts or CopyOptions()
        rec = self.containers.get(container)
        with self._view(rec) as view, View("/") as host:
            missing = f"lstat {src_path}: no such file or directory"
            src = resolve_source(host, _absolute(src_path), opts.follow_link, missing)
            dst = resolve_destination(view, dst_path)
            check_parent(view, dst, _missing(os.path.dirname(dst.loc.path), container))
            into, top = plan(src, dst)
            _copy(TreeReader(host), src, top, Extractor(view, into, _inward(opts)))

    # -- diff / export ----------------------------------------------------------------

    def changes(self, container: str) -> list[Change]:
        rec = self.containers.get(container)
        upper = self.upper_dir(rec)
        lowers = Lowers(self.ctx.snapshots.layer_dirs(rec.chain_ids)[::-1])
        return changes(upper, lowers, mountpoint_skip(upper, self.mountpoints(rec), lowers))

    def export(self, container: str, out: BinaryIO) -> None:
        """The container's merged filesystem as a tar stream (volumes not included)."""
        from capsa.store.importer import export_rootfs

        rec = self.containers.get(container)
        with self._rootfs(rec) as root:
            export_rootfs(root, out)

    def commit(self, container: str, opts: CommitOptions | None = None) -> str:
        """A new image of the container's changes; its id."""
        from capsa.engine.fsops.commit import commit

        return commit(self, container, opts or CommitOptions())

    # -- helpers -------------------------------------------------------------------

    def upper_dir(self, rec: ContainerRecord) -> str:
        return os.path.join(self.ctx.snapshots.rw_dir_of(rec.rootfs_key or rec.id), "upper")

    def mountpoints(self, rec: ContainerRecord) -> list[str]:
        return [*RUNTIME_MOUNTPOINTS, *(os.path.normpath(m.target) for m in rec.spec.mounts)]

    @contextlib.contextmanager
    def _view(self, rec: ContainerRecord) -> Iterator[View]:
        with self._rootfs(rec) as root, View(root, rec.spec.read_only) as view:
            self._add_mounts(rec, view)
            yield view

    def _add_mounts(self, rec: ContainerRecord, view: View) -> None:
        """Volumes and binds at their targets, in order, as the runtime mounts them."""
        for m in rec.spec.mounts:
            if m.type == "volume":
                source = self.ctx.volumes.mountpoint(m.source)
            elif m.type == "bind":
                source = m.source
            else:
                continue  # tmpfs: only inside the container
            if os.path.exists(source):
                view.add_mount(m.target, source, m.readonly)
        paths = self.ctx.paths(rec.id)
        overridden = {os.path.normpath(m.target) for m in rec.spec.mounts}
        for target, source in zip(
            ETC_FILES, (paths.hostname, paths.hosts, paths.resolv_conf), strict=True
        ):
            if target not in overridden and os.path.isfile(source):
                view.add_mount(target, source, rec.spec.read_only)

    @contextlib.contextmanager
    def _rootfs(self, rec: ContainerRecord) -> Iterator[str]:
        live = self.ctx.paths(rec.id).rootfs
        if is_live(rec.state) and os.path.ismount(live):
            yield live
            return
        from capsa.engine.containers.bundle import rootfs_mounts
        from capsa.linux.mount import mount_all, unmount

        base = os.path.join(self.ctx.settings.runroot, "fsops")
        os.makedirs(base, mode=0o700, exist_ok=True)
        target = tempfile.mkdtemp(prefix=f"{rec.id[:12]}-", dir=base)
        try:
            mounts = rootfs_mounts(self.ctx.snapshots, rec.rootfs_key or rec.id, rec.chain_ids)
            mount_all(mounts, target)
        except (CapsaError, OSError) as e:
            os.rmdir(target)
            raise FailedPrecondition(f"cannot mount the filesystem of {rec.name}: {e}") from e
        try:
            yield target
        finally:
            _unmount(unmount, target)

    def check_commit(self, rec: ContainerRecord) -> None:
        check(Action.COMMIT, rec.state, rec.name, rec.id)
        if rec.state is State.REMOVING:
            raise FailedPrecondition(f"container {rec.name} is being removed")


def _unmount(unmount: object, target: str) -> None:
    try:
        unmount(target)  # type: ignore[operator]
    except CapsaError:
        unmount(target, True)  # type: ignore[operator]
    os.rmdir(target)


def _missing(path: str, container: str) -> str:
    return f"Could not find the file {path} in container {container}"


def _absolute(path: str) -> str:
    return path if path.startswith("/") else os.path.join(os.getcwd(), path)


def _inward(opts: CopyOptions) -> Ownership:
    """Files copied into a container belong to its root unless ``-a`` keeps the ids."""
    return Ownership(keep=True) if opts.archive else Ownership(uid=0, gid=0)


def _isdir(dst: Destination) -> bool:
    return dst.st is not None and stat.S_ISDIR(dst.st.st_mode)


def _write(reader: TreeReader, src: Source, top: str, out: BinaryIO) -> None:
    entries = reader.entries(src.loc, top)
    try:
        write_tar(entries, out)
    finally:
        entries.close()


def _copy(reader: TreeReader, src: Source, top: str, extractor: Extractor) -> None:
    entries = reader.entries(src.loc, top)
    try:
        extractor.extract(entries)
    finally:
        entries.close()
