"""What frontends show of a container: its logs, counters, processes, files, image config
and sizes, and ``explain``. A part of ``ContainerService`` (a mixin), kept apart so that
the service's own module stays about the container's lifecycle."""

from __future__ import annotations

import os

from capsa import fastjson
from capsa.engine.containers.types import (
    ContainerFiles,
    ContainerRecord,
    LogOptions,
    is_live,
)
from capsa.errors import CapsaError, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from capsa.engine.containers.log_reader import LogEntry
    from capsa.engine.containers.stats import Sample, TopResult
    from capsa.engine.containers.update import ResourceUpdate
    from capsa.engine.explain.types import Explanation
    from capsa.engine.network.types import Endpoint
    from capsa.engine.service_context import ServiceContext
    from capsa.oci.image_spec import ImageConfig


class ContainerViews:
    """Needs ``ctx`` and ``get`` from the service it is part of."""

    if TYPE_CHECKING:
        ctx: ServiceContext

        def get(self, text: str) -> ContainerRecord: ...

    def rw_size(self, rec: ContainerRecord) -> int:
        """Bytes of the files the container changed (Docker's ``SizeRw``)."""
        from capsa.store.snapshots import content_size

        upper = os.path.join(self.ctx.snapshots.rw_dir_of(rec.rootfs_key or rec.id), "upper")
        return content_size(upper)

    def root_fs_size(self, rec: ContainerRecord, rw_size: int | None = None) -> int:
        """The rw layer plus the image's layers (Docker's ``SizeRootFs``, ps's virtual)."""
        rw = self.rw_size(rec) if rw_size is None else rw_size
        try:
            return rw + self.ctx.images.get(rec.image_id).size
        except NotFound:  # removed with rmi -f
            return rw

    # -- what frontends show: logs, stats, top, files, image config, explain ----------

    def logs(
        self, text: str, opts: LogOptions, gone: Callable[[], bool] | None = None
    ) -> Iterator[LogEntry]:
        """The container's json-file log entries (a stream: ``follow`` ends with it, or
        when ``gone()`` says the reader has left)."""
        from capsa.engine.containers.log_reader import read_logs

        rec = self.get(text)

        def stopped() -> bool:
            if gone is not None and gone():
                return True
            try:
                return not is_live(self.get(rec.id).state)
            except CapsaError:
                return True

        return read_logs(
            self.ctx.paths(rec.id).log,
            tail=opts.tail,
            since=opts.since,
            until=opts.until,
            follow=opts.follow,
            stop=stopped,
        )

    def stats(
        self, text: str, interval: float = 1.0, gone: Callable[[], bool] | None = None
    ) -> Iterator[Sample]:
        """The container's counters as a stream: a sample now, then one every
        ``interval`` seconds, until one finds it stopped or ``gone()`` says the reader
        has left."""
        rec = self.get(text)
        return _sampling(self, rec.id, interval, gone)

    def sample(self, rec: ContainerRecord) -> Sample:
        """One reading of the container's counters (``stats`` computes rates from two)."""
        from capsa.engine.containers.stats import sample

        return sample(self.ctx, rec)

    def top(self, text: str, ps_args: list[str] | None = None) -> TopResult:
        from capsa.engine.containers.stats import top

        return top(self.ctx, self.get(text), ps_args)

    def update(self, text: str, changes: ResourceUpdate) -> list[str]:
        """Store the new limits and apply them to a live container; the warnings."""
        from capsa.engine.containers.update import update_container

        return update_container(self.ctx, self.get(text), changes)

    def explain(self, text: str) -> Explanation:
        from capsa.engine.explain.service import explain

        return explain(self.ctx, self.get(text))

    def image_config(self, rec: ContainerRecord) -> ImageConfig:
        """The config of the container's image (NotFound once the image is gone)."""
        from capsa.oci import image_spec

        return image_spec.load_config(self.ctx.content.read(rec.image_id))

    def files(self, rec: ContainerRecord) -> ContainerFiles:
        paths = self.ctx.paths(rec.id)
        rw = self.ctx.snapshots.rw_dir_of(rec.rootfs_key or rec.id)
        volumes = {
            m.source: self.ctx.volumes.mountpoint(m.source)
            for m in rec.spec.mounts
            if m.type == "volume" and m.source
        }
        return ContainerFiles(
            resolv_conf=paths.resolv_conf,
            hostname=paths.hostname,
            hosts=paths.hosts,
            log=paths.log,
            merged=paths.rootfs,
            upper=os.path.join(rw, "upper"),
            work=os.path.join(rw, "work"),
            lowers=self.ctx.snapshots.layer_dirs(rec.chain_ids)[::-1],
            volumes=volumes,
        )

    def endpoints(self, rec: ContainerRecord) -> list[Endpoint]:
        """The container's network endpoints while it runs (none when stopped)."""
        if not rec.pid:
            return []
        try:
            return self.ctx.networks.endpoints(rec.id)
        except (CapsaError, OSError):  # a network store that cannot be read: none shown
            return []

    def health(self, rec: ContainerRecord) -> dict[str, Any] | None:
        path = os.path.join(self.ctx.paths(rec.id).run, "health.json")
        try:
            with open(path) as f:
                data: dict[str, Any] = fastjson.loads(f.read())
                return data
        except (OSError, ValueError):
            return None


def _sampling(
    views: ContainerViews, container_id: str, interval: float, gone: Callable[[], bool] | None
) -> Iterator[Sample]:
    import time

    while True:
        began = time.monotonic()
        try:
            current = views.sample(views.get(container_id))
        except NotFound:  # removed meanwhile (an --rm container): the stream ends
            return
        yield current
        if not current.running:
            return
        while time.monotonic() - began < interval:
            if gone is not None and gone():
                return
            time.sleep(min(0.1, max(0.0, interval - (time.monotonic() - began))))
