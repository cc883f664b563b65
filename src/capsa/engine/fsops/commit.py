"""``capsa commit``: a container's upper dir as a new layer on its image.

The upper dir is written as a Docker-form layer (whiteouts back to ``.wh.`` entries,
opaque directories to ``.wh..wh..opq``; the runtime's empty mount points left out),
gzip-compressed into the content store while its diff id is hashed. The new config
is the image's with the container's settings (command, entrypoint, env, workdir,
user, labels, stop signal, healthcheck, volumes) as Docker's commit takes them,
then ``--change`` instructions, plus a history entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import zlib

from capsa.engine.containers.types import State
from capsa.engine.fsops.diff import Lowers, mountpoint_skip
from capsa.engine.fsops.tar import TreeReader, write_tar
from capsa.engine.fsops.view import View
from capsa.errors import InvalidArgument
from capsa.oci import image_spec as ispec
from capsa.oci.codec import from_dict, to_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.fsops.service import FsService
    from capsa.engine.fsops.types import CommitOptions
    from capsa.store.content import BlobWriter

GZIP_LEVEL = 6


def commit(fs: FsService, container: str, opts: CommitOptions) -> str:
    from capsa.progress import NullProgress
    from capsa.store.changes import apply_changes
    from capsa.store.importer import now_rfc3339

    rec = fs.containers.get(container)
    fs.check_commit(rec)
    names = _names(opts.reference)
    base_config = ispec.load_config(fs.ctx.content.read(rec.image_id))
    base_manifest = ispec.load_manifest(
        fs.ctx.content.read(fs.ctx.images.get(rec.image_id).manifest_digest)
    )
    settings = container_config(rec, base_config)
    created_by = " ".join(settings.cmd or [])
    settings = apply_changes(opts.changes, settings)  # bad changes fail before the pause
    with _paused(fs, rec, opts.pause):
        diff_id, digest, size = write_layer(fs, rec)
    created = now_rfc3339()
    docker = base_manifest.media_type == ispec.DOCKER_MANIFEST
    config = ispec.ImageConfig(
        architecture=base_config.architecture,
        os=base_config.os,
        variant=base_config.variant,
        os_version=base_config.os_version,
        created=created,
        author=opts.author or None,
        config=settings,
        rootfs=ispec.RootFS(diff_ids=[*base_config.rootfs.diff_ids, diff_id]),
        history=[
            *(base_config.history or []),
            ispec.History(
                created=created,
                created_by=created_by or None,
                author=opts.author or None,
                comment=opts.message or None,
            ),
        ],
        extra={"comment": opts.message} if opts.message else {},
    )
    raw_config = ispec.dump(config)
    layer = ispec.Descriptor(
        media_type=ispec.DOCKER_LAYER_GZIP if docker else ispec.OCI_LAYER_GZIP,
        digest=digest,
        size=size,
    )
    manifest = ispec.Manifest(
        media_type=ispec.DOCKER_MANIFEST if docker else ispec.OCI_MANIFEST,
        config=ispec.Descriptor(
            media_type=ispec.DOCKER_CONFIG if docker else ispec.OCI_CONFIG,
            digest=fs.ctx.content.put(raw_config),
            size=len(raw_config),
        ),
        layers=[*base_manifest.layers, layer],
    )
    manifest_digest = fs.ctx.content.put(ispec.dump(manifest))
    record = fs.images.register(manifest_digest, manifest, config, names, None, NullProgress())
    fs.ctx.events.emit("container", "commit", rec.id, {"name": rec.name})
    return record.id


def _names(text: str) -> list[str]:
    from capsa.oci import reference

    if not text:
        return []
    ref = reference.parse(text)
    if ref.digest:
        raise InvalidArgument(f"invalid reference {text}: a commit cannot name a digest")
    return [ref.name]


@contextlib.contextmanager
def _paused(fs: FsService, rec: ContainerRecord, pause: bool) -> Iterator[None]:
    """Freeze a running container while its files are read (Docker's --pause)."""
    if not pause or rec.state is not State.RUNNING:
        yield
        return
    fs.containers.pause(rec.id)
    try:
        yield
    finally:
        fs.containers.unpause(rec.id)


def container_config(rec: ContainerRecord, image: ispec.ImageConfig) -> ispec.ContainerConfig:
    """The image's config with what ``run`` changed, as Docker's commit records it."""
    spec = rec.spec
    cfg = from_dict(ispec.ContainerConfig, to_dict(image.config or ispec.ContainerConfig()))
    if spec.entrypoint is not None:
        cfg.entrypoint = [a for a in spec.entrypoint if a] or None
        cfg.cmd = list(spec.command) if spec.command else None
    elif spec.command is not None:
        cfg.cmd = list(spec.command)
    env: dict[str, str] = {}
    for item in [*(cfg.env or []), *spec.env]:
        key, _, value = item.partition("=")
        env[key] = value
    cfg.env = [f"{k}={v}" for k, v in env.items()] or None
    cfg.working_dir = spec.workdir or cfg.working_dir
    cfg.user = spec.user or cfg.user
    cfg.labels = {**(cfg.labels or {}), **spec.labels} or None
    cfg.stop_signal = spec.stop_signal or cfg.stop_signal
    volumes = dict(cfg.volumes or {})
    for m in spec.mounts:
        if m.type == "volume" and "anonymous" in m.options:
            volumes.setdefault(m.target, {})
    cfg.volumes = volumes or None
    if spec.healthcheck is not None and spec.healthcheck.test:
        cfg.healthcheck = _healthcheck(rec)
    return cfg


def _healthcheck(rec: ContainerRecord) -> ispec.HealthConfig:
    hc = rec.spec.healthcheck
    assert hc is not None
    if hc.test == ["NONE"]:
        return ispec.HealthConfig(test=["NONE"])

    def ns(seconds: float) -> int | None:
        return int(seconds * 1e9) or None

    return ispec.HealthConfig(
        test=list(hc.test),
        interval=ns(hc.interval),
        timeout=ns(hc.timeout),
        start_period=ns(hc.start_period),
        start_interval=ns(hc.start_interval),
        retries=hc.retries or None,
    )


def write_layer(fs: FsService, rec: ContainerRecord) -> tuple[str, str, int]:
    """Store the upper dir as a gzip layer; (diff id, blob digest, blob size)."""
    from capsa.store.importer import discard

    upper = fs.upper_dir(rec)
    lowers = Lowers(fs.ctx.snapshots.layer_dirs(rec.chain_ids)[::-1])
    skip = mountpoint_skip(upper, fs.mountpoints(rec), lowers)
    key = f"commit-{secrets.token_hex(8)}"
    with View(upper) as view, fs.ctx.content.writer(key=key) as writer:
        entries = TreeReader(view, whiteouts=True, skip=skip).entries(view.locate("/"), "")
        sink = _GzipSink(writer)
        try:
            write_tar(entries, sink)  # type: ignore[arg-type]
            return sink.finish()
        except BaseException:
            discard(writer)
            raise
        finally:
            entries.close()


class _GzipSink:
    """A write-only file: hashes the plain tar, stores it gzip-compressed."""

    def __init__(self, writer: BlobWriter) -> None:
        self.writer = writer
        self.diff = hashlib.sha256()
        self.compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        self.diff.update(data)
        self.writer.write(self.compressor.compress(data))
        return len(data)

    def finish(self) -> tuple[str, str, int]:
        self.writer.write(self.compressor.flush())
        digest = self.writer.commit()
        return "sha256:" + self.diff.hexdigest(), digest, self.writer.offset
