"""Removing a container: everything it holds goes, in an order that can be retried."""

from __future__ import annotations

import os

from capsa.engine.container_types import ContainerRecord
from capsa.errors import CapsaError

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
    from capsa.engine import netwire

    netwire.detach(ctx, rec.id)
    if os.path.ismount(paths.rootfs):
        unmount(paths.rootfs, detach=True)
    ctx.snapshots.remove_rw(rec.rootfs_key or rec.id)
    for m in rec.spec.mounts:
        if m.type != "volume" or not m.source:
            continue
        try:
            ctx.volumes.release(m.source, rec.id)
            if volumes and ctx.volumes.get(m.source).anonymous and not ctx.volumes.users(m.source):
                ctx.volumes.remove(m.source)
        except CapsaError:
            pass
    ctx.images.release(rec.id)
    _rmtree(paths.run)
    _rmtree(paths.data)
    ctx.store.remove(rec.id)
    ctx.events.emit("container", "destroy", rec.id, {"name": rec.name, "image": rec.image_name})
