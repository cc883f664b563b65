"""Removing a container: everything it holds goes, in an order that can be retried.

Files go first, records afterwards: on a full disk the container's rw layer and logs
give their space back before any database is written to, and a removal cut short (the
disk still full, a crash) leaves the record, so that ``rm`` can be run again.
"""

from __future__ import annotations

import os

from capsa.engine.containers.types import ContainerRecord
from capsa.errors import CapsaError, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.service_context import ServiceContext


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def remove_container(ctx: ServiceContext, rec: ContainerRecord, volumes: bool = False) -> None:
    """Delete the runtime container, rootfs mount, rw layer, files, record (and, with
    ``volumes``, its anonymous volumes). The container must not be running."""
    from capsa.linux.mount import unmount

    paths = ctx.paths(rec.id)
    ctx.backend(rec.spec.runtime).delete(rec.id, True)
    if os.path.ismount(paths.rootfs):
        unmount(paths.rootfs, detach=True)
    try:
        ctx.snapshots.remove_rw(rec.rootfs_key or rec.id)  # its files, then its record
    except NotFound:
        pass  # gone with a removal cut short before
    _rmtree(paths.data)  # logs, hostname, hosts: on the data root too
    from capsa.engine.containers import netwire

    netwire.detach(ctx, rec.id)
    _release_volumes(ctx, rec, volumes)
    ctx.images.release(rec.id)
    _rmtree(paths.run)
    ctx.store.remove(rec.id)
    ctx.events.emit("container", "destroy", rec.id, {"name": rec.name, "image": rec.image_name})


def _release_volumes(ctx: ServiceContext, rec: ContainerRecord, volumes: bool) -> None:
    for m in rec.spec.mounts:
        if m.type != "volume" or not m.source:
            continue
        try:
            ctx.volumes.release(m.source, rec.id)
            if volumes and ctx.volumes.get(m.source).anonymous and not ctx.volumes.users(m.source):
                ctx.volumes.remove(m.source, leaving=rec.id)
        except CapsaError:
            pass
