"""Image archives: ``capsa save`` and ``capsa load``.

``docker-archive`` is written as ``docker save`` (Docker 25+) writes it: an OCI
layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) whose layers are
uncompressed tars named by their diff ids, plus the legacy ``manifest.json`` and
``repositories`` that ``docker load`` and skopeo read. ``oci-archive`` is a tar of
an OCI layout holding the stored blobs as they are, names in the
``org.opencontainers.image.ref.name`` and ``io.containerd.image.name`` annotations.

``load`` reads either (and older ``docker save`` archives with ``<id>/layer.tar``
directories, and skopeo's) from a stream that may be a pipe. Members are staged as
they come (small ones in memory, big ones straight into the content store) because
tar member order is not fixed; images are built once the whole archive is read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import secrets
import tarfile
import tempfile

from capsa.errors import FailedPrecondition, InvalidArgument, NotFound
from capsa.oci import reference
from capsa.oci.image_spec import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_LAYOUT_VERSION,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    compression_of,
    dump,
    load_config,
    load_index,
    load_manifest,
    media_type_of,
)
from capsa.record import field, record
from capsa.store.importer import (
    CHUNK,
    decompress_errors,
    detect_compression,
    discard,
    open_decompressed,
    read_chunk,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, BinaryIO

    from capsa.store.content import ContentStore

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
MEMORY_LIMIT = 1 << 20  # members up to this size are staged in memory
_LAYOUT = json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}).encode()
_LAYER_TYPES = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


@record
class SaveItem:
    manifest_digest: str
    config_digest: str
    names: list[str] = field(default_factory=list)


@record
class LoadedImage:
    manifest_digest: str
    manifest_media_type: str
    manifest: Manifest
    config_digest: str
    config: ImageConfig
    names: list[str] = field(default_factory=list)


def blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def tagged_refs(names: list[str]) -> list[reference.Reference]:
    """The tagged references among ``names`` (digests dropped), in order, no duplicates."""
    refs: list[reference.Reference] = []
    for name in names:
        ref = reference.parse(name)
        if ref.tag and (ref := reference.Reference(ref.domain, ref.path, ref.tag)) not in refs:
            refs.append(ref)
    return refs


# ---------------------------------------------------------------------------------- save


class _TarOut:
    """A deterministic tar stream: mtime 0, root-owned, each path written once."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.sizes: dict[str, int] = {}

    def _info(self, name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mtime = kind, size, 0
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        return info

    def directory(self, name: str) -> None:
        self.tar.addfile(self._info(name, 0, tarfile.DIRTYPE))

    def data(self, name: str, data: bytes) -> None:
        self.file(name, io.BytesIO(data), len(data))

    def file(self, name: str, f: BinaryIO, size: int) -> None:
        if name not in self.sizes:
            self.tar.addfile(self._info(name, size), f)
            self.sizes[name] = size

    def blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.data(blob_path(digest), data)
        return digest

    def stored_blob(self, content: ContentStore, digest: str) -> None:
        if blob_path(digest) not in self.sizes:
            with content.open(digest) as f:
                self.file(blob_path(digest), f, os.fstat(f.fileno()).st_size)


def save(
    content: ContentStore, images: list[SaveItem], out: BinaryIO, fmt: str = DOCKER_ARCHIVE
) -> None:
    """Write ``images`` to ``out`` as a ``docker-archive`` or ``oci-archive`` tar stream."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"unsupported archive format {fmt!r} (use {' or '.join(FORMATS)})")
    if not images:
        raise InvalidArgument("save: no images given")
    for item in images:  # fail before the first byte is written
        _check_item(content, item)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as stream:
        tar = _TarOut(stream)
        if fmt == OCI_ARCHIVE:
            _save_oci(content, images, tar)
        else:
            _save_docker(content, images, tar)


def _check_item(content: ContentStore, item: SaveItem) -> None:
    tagged_refs(item.names)
    _, _, manifest, _ = _read_image(content, item)
    if manifest.config.digest != item.config_digest:
        raise InvalidArgument(
            f"save: manifest {item.manifest_digest} is not of image {item.config_digest}"
        )
    for layer in manifest.layers:
        if not content.has(layer.digest):
            raise NotFound(
                f"save: layer {layer.digest} of image {item.config_digest} "
                "is not in the content store"
            )


def _read_image(content: ContentStore, item: SaveItem) -> tuple[bytes, str, Manifest, bytes]:
    raw = content.read(item.manifest_digest)
    media_type = media_type_of(raw)
    if media_type not in MANIFEST_TYPES:
        raise InvalidArgument(f"save: {item.manifest_digest} is not an image manifest")
    manifest = load_manifest(raw)
    return raw, media_type, manifest, content.read(manifest.config.digest)


def _save_oci(content: ContentStore, items: list[SaveItem], tar: _TarOut) -> None:
    tar.data("oci-layout", _LAYOUT)
    tar.directory("blobs/")
    tar.directory("blobs/sha256/")
    descriptors: list[Descriptor] = []
    for item in items:
        raw, media_type, manifest, config_raw = _read_image(content, item)
        for blob in (manifest.config, *manifest.layers):
            tar.stored_blob(content, blob.digest)
        tar.data(blob_path(item.manifest_digest), raw)
        config = load_config(config_raw)
        base = Descriptor(
            media_type=media_type,
            digest=item.manifest_digest,
            size=len(raw),
            platform=_platform(config),
        )
        refs = tagged_refs(item.names)
        for ref in refs:
            descriptors.append(_annotated(base, {REF_NAME: ref.name, IMAGE_NAME: ref.name}))
        if not refs:
            descriptors.append(base)
    tar.data("index.json", dump(Index(media_type=OCI_INDEX, manifests=descriptors)))


def _annotated(base: Descriptor, annotations: dict[str, str]) -> Descriptor:
    return Descriptor(
        media_type=base.media_type,
        digest=base.digest,
        size=base.size,
        platform=base.platform,
        annotations=annotations,
    )


def _platform(config: ImageConfig) -> Platform | None:
    if not config.architecture or not config.os:
        return None
    return config.platform


def _save_docker(content: ContentStore, items: list[SaveItem], tar: _TarOut) -> None:
    tar.directory("blobs/")
    tar.directory("blobs/sha256/")
    entries: list[dict[str, Any]] = []
    descriptors: list[Descriptor] = []
    repositories: dict[str, dict[str, str]] = {}
    for item in items:
        _, _, manifest, config_raw = _read_image(content, item)
        config = load_config(config_raw)
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise FailedPrecondition(
                f"save: image {manifest.config.digest}: "
                f"{len(manifest.layers)} layers but {len(diff_ids)} diff ids"
            )
        config_digest = tar.blob(config_raw)
        layers = [
            _save_plain_layer(content, tar, layer, diff_id)
            for layer, diff_id in zip(manifest.layers, diff_ids, strict=True)
        ]
        docker_manifest = Manifest(
            media_type=OCI_MANIFEST,
            layers=layers,
            config=Descriptor(media_type=OCI_CONFIG, digest=config_digest, size=len(config_raw)),
        )
        raw = dump(docker_manifest)
        base = Descriptor(
            media_type=OCI_MANIFEST, digest=tar.blob(raw), size=len(raw), platform=_platform(config)
        )
        refs = tagged_refs(item.names)
        top_layer = diff_ids[-1].partition(":")[2] if diff_ids else ""
        for ref in refs:
            tag = ref.tag or reference.DEFAULT_TAG
            descriptors.append(_annotated(base, {IMAGE_NAME: ref.name, REF_NAME: tag}))
            if top_layer:
                repositories.setdefault(ref.familiar_repository, {})[tag] = top_layer
        if not refs:
            descriptors.append(base)
        entries.append(
            {
                "Config": blob_path(config_digest),
                "RepoTags": [ref.familiar for ref in refs],
                "Layers": [blob_path(layer.digest) for layer in layers],
            }
        )
    tar.data("index.json", dump(Index(media_type=OCI_INDEX, manifests=descriptors)))
    tar.data("manifest.json", json.dumps(entries, separators=(",", ":")).encode() + b"\n")
    tar.data("oci-layout", _LAYOUT)
    if repositories:
        tar.data("repositories", json.dumps(repositories, separators=(",", ":")).encode() + b"\n")


def _save_plain_layer(
    content: ContentStore, tar: _TarOut, layer: Descriptor, diff_id: str
) -> Descriptor:
    """Write a layer uncompressed under ``blobs/sha256/<diff id>``; return its descriptor."""
    path = blob_path(diff_id)
    if path not in tar.sizes:
        if compression_of(layer.media_type) == "none" and layer.digest == diff_id:
            tar.stored_blob(content, layer.digest)
        else:
            _save_decompressed(content, tar, layer.digest, diff_id)
    return Descriptor(media_type=OCI_LAYER, digest=diff_id, size=tar.sizes[path])


def _save_decompressed(content: ContentStore, tar: _TarOut, digest: str, diff_id: str) -> None:
    os.makedirs(content.ingest_dir, exist_ok=True)
    with tempfile.TemporaryFile(dir=content.ingest_dir) as tmp, content.open(digest) as blob:
        kind, plain = open_decompressed(blob)
        hasher, size = hashlib.sha256(), 0
        while chunk := read_chunk(plain, kind, f"layer {digest}"):
            hasher.update(chunk)
            tmp.write(chunk)
            size += len(chunk)
        if "sha256:" + hasher.hexdigest() != diff_id:
            raise FailedPrecondition(f"save: layer {digest} does not match its diff id {diff_id}")
        tmp.seek(0)
        tar.file(blob_path(diff_id), tmp, size)


# ---------------------------------------------------------------------------------- load


class _Staged:
    """An archive's members by path: small ones in memory, big ones in the content store."""

    def __init__(self, content: ContentStore) -> None:
        self.content = content
        self.data: dict[str, bytes] = {}
        self.spooled: dict[str, str] = {}  # path -> blob digest
        self.links: dict[str, str] = {}  # symlinks and hard links: path -> target path

    def resolve(self, path: str) -> str:
        path = _clean(path)
        for _ in range(32):
            if path not in self.links:
                return path
            path = self.links[path]
        raise InvalidArgument(f"load: too many links at {path}")

    def has(self, path: str) -> bool:
        path = self.resolve(path)
        return path in self.data or path in self.spooled

    def read(self, path: str) -> bytes:
        real = self.resolve(path)
        if real in self.data:
            return self.data[real]
        if real in self.spooled:
            return self.content.read(self.spooled[real])
        raise InvalidArgument(f"load: archive has no {path}")

    def digest(self, path: str) -> str:
        real = self.resolve(path)
        if real in self.spooled:
            return self.spooled[real]
        return "sha256:" + hashlib.sha256(self.read(real)).hexdigest()

    def open(self, path: str) -> BinaryIO:
        real = self.resolve(path)
        if real in self.spooled:
            return self.content.open(self.spooled[real])
        return io.BytesIO(self.read(real))

    def store(self, path: str) -> tuple[str, int]:
        """Publish the member as a blob; return (digest, size)."""
        real = self.resolve(path)
        if real in self.spooled:
            digest = self.spooled[real]
            return digest, self.content.size(digest)
        data = self.read(real)
        return self.content.put(data), len(data)


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def load(content: ContentStore, stream: BinaryIO) -> list[LoadedImage]:
    """Read a docker-archive or oci-archive (maybe compressed, maybe a pipe).

    Every blob is verified and stored; the caller records the returned images.
    """
    staged = _stage(content, stream)
    if staged.has("manifest.json"):
        return _load_docker(content, staged)
    if staged.has("index.json"):
        return _load_oci(content, staged)
    raise InvalidArgument("load: not an image archive (no manifest.json or index.json)")


def _stage(content: ContentStore, stream: BinaryIO) -> _Staged:
    staged = _Staged(content)
    kind, plain = open_decompressed(stream)
    try:
        with tarfile.open(fileobj=plain, mode="r|") as tar:
            for member in tar:
                _stage_member(staged, tar, member)
    except tarfile.TarError as e:
        raise InvalidArgument(f"load: invalid tar archive: {e}") from None
    except decompress_errors(kind) as e:
        raise InvalidArgument(f"load: invalid {kind} data: {e}") from None
    except EOFError as e:
        raise InvalidArgument(f"load: archive is truncated: {e}") from None
    return staged


def _stage_member(staged: _Staged, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    name = _clean(member.name)
    if member.issym():
        base = "" if member.linkname.startswith("/") else posixpath.dirname(name)
        staged.links[name] = _clean(posixpath.join(base, member.linkname))
    elif member.islnk():
        staged.links[name] = _clean(member.linkname)
    elif member.isreg():
        f = tar.extractfile(member)
        assert f is not None  # regular member
        if member.size <= MEMORY_LIMIT:
            staged.data[name] = f.read()
        else:
            staged.spooled[name] = _spool(staged.content, f)


def _spool(content: ContentStore, f: IO[bytes]) -> str:
    with content.writer(key=f"load-{secrets.token_hex(8)}") as writer:
        try:
            while chunk := f.read(CHUNK):
                writer.write(chunk)
            return writer.commit()
        except BaseException:
            discard(writer)
            raise


def _load_docker(content: ContentStore, staged: _Staged) -> list[LoadedImage]:
    try:
        entries = json.loads(staged.read("manifest.json"))
    except ValueError as e:  # bad JSON, or bytes that are not UTF-8
        raise InvalidArgument(f"load: manifest.json: invalid JSON: {e}") from None
    except RecursionError:
        raise InvalidArgument("load: manifest.json: invalid JSON: nested too deeply") from None
    if not isinstance(entries, list):
        raise InvalidArgument("load: manifest.json: expected a list")
    return [_load_docker_entry(content, staged, entry) for entry in entries]


def _docker_entry_fields(entry: Any) -> tuple[str, list[str], list[str]]:
    ok = isinstance(entry, dict) and isinstance(entry.get("Config"), str)
    layers = entry.get("Layers") if ok else None
    tags = (entry.get("RepoTags") if ok else None) or []
    if (
        not ok
        or not isinstance(layers, list)
        or not all(isinstance(x, str) for x in layers)
        or not isinstance(tags, list)
        or not all(isinstance(x, str) for x in tags)
    ):
        raise InvalidArgument("load: manifest.json: malformed entry")
    return entry["Config"], layers, tags


def _load_docker_entry(content: ContentStore, staged: _Staged, entry: Any) -> LoadedImage:
    config_path, layer_paths, tags = _docker_entry_fields(entry)
    names = [reference.parse(tag).name for tag in tags]
    config_raw = staged.read(config_path)
    config = load_config(config_raw)
    diff_ids = config.rootfs.diff_ids
    if len(diff_ids) != len(layer_paths):
        raise InvalidArgument(
            f"load: {config_path}: {len(layer_paths)} layers but "
            f"{len(diff_ids)} diff ids in the image config"
        )
    layers = [
        _docker_layer(content, staged, path, diff_id)
        for path, diff_id in zip(layer_paths, diff_ids, strict=True)
    ]
    config_digest = content.put(config_raw)
    manifest = Manifest(
        media_type=OCI_MANIFEST,
        layers=layers,
        config=Descriptor(media_type=OCI_CONFIG, digest=config_digest, size=len(config_raw)),
    )
    manifest_digest = content.put(dump(manifest))
    return LoadedImage(
        manifest_digest=manifest_digest,
        manifest_media_type=OCI_MANIFEST,
        manifest=manifest,
        config_digest=config_digest,
        config=config,
        names=names,
    )


def _docker_layer(content: ContentStore, staged: _Staged, path: str, diff_id: str) -> Descriptor:
    """Verify a layer file against its diff id and store it as it is."""
    if not staged.has(path):
        raise InvalidArgument(f"load: archive has no {path}")
    with staged.open(path) as f:
        kind = detect_compression(f.read(6))
    if kind not in _LAYER_TYPES:
        raise InvalidArgument(f"load: layer {path}: {kind} compression is not supported")
    actual = staged.digest(path) if kind == "none" else _diff_id(staged, path, kind)
    if actual != diff_id:
        raise InvalidArgument(
            f"load: layer {path} does not match the image config "
            f"(diff id {actual}, expected {diff_id})"
        )
    digest, size = staged.store(path)
    return Descriptor(media_type=_LAYER_TYPES[kind], digest=digest, size=size)


def _diff_id(staged: _Staged, path: str, kind: str) -> str:
    hasher = hashlib.sha256()
    with staged.open(path) as f:
        _, plain = open_decompressed(f)
        while chunk := read_chunk(plain, kind, f"load: layer {path}"):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _load_oci(content: ContentStore, staged: _Staged) -> list[LoadedImage]:
    index = load_index(staged.read("index.json"))
    loaded: dict[str, LoadedImage] = {}
    for top in index.manifests:
        desc = _pick_manifest(staged, top)
        image = loaded.get(desc.digest)
        if image is None:
            image = loaded[desc.digest] = _load_oci_image(content, staged, desc)
        image.names.extend(n for n in _annotated_names(top) if n not in image.names)
    return list(loaded.values())


def _verified(staged: _Staged, digest: str) -> str:
    """The archive path of blob ``digest``, checked to hold exactly that content."""
    path = blob_path(digest)
    if not staged.has(path):
        raise InvalidArgument(f"load: archive has no blob {digest}")
    if staged.digest(path) != digest:
        raise InvalidArgument(f"load: blob {digest} in the archive is corrupt")
    return path


def _pick_manifest(staged: _Staged, desc: Descriptor) -> Descriptor:
    """``desc`` itself, or for an index the first image whose blobs are all in the archive."""
    raw = staged.read(_verified(staged, desc.digest))
    media_type = desc.media_type or media_type_of(raw)
    if media_type in MANIFEST_TYPES:
        return Descriptor(media_type=media_type, digest=desc.digest, size=len(raw))
    if media_type not in INDEX_TYPES:
        raise InvalidArgument(f"load: {desc.digest}: unsupported media type {media_type}")
    for child in load_index(raw).manifests:
        if child.media_type in MANIFEST_TYPES and _complete(staged, child.digest):
            return child
    raise InvalidArgument(f"load: index {desc.digest} has no image complete in the archive")


def _complete(staged: _Staged, digest: str) -> bool:
    if not staged.has(blob_path(digest)):
        return False
    manifest = load_manifest(staged.read(blob_path(digest)))
    return all(staged.has(blob_path(d.digest)) for d in (manifest.config, *manifest.layers))


def _load_oci_image(content: ContentStore, staged: _Staged, desc: Descriptor) -> LoadedImage:
    manifest_path = _verified(staged, desc.digest)
    raw = staged.read(manifest_path)
    manifest = load_manifest(raw)
    config_path = _verified(staged, manifest.config.digest)
    config = load_config(staged.read(config_path))
    layer_paths = [_verified(staged, layer.digest) for layer in manifest.layers]
    for path in (*layer_paths, config_path, manifest_path):
        staged.store(path)
    return LoadedImage(
        manifest_digest=desc.digest,
        manifest_media_type=desc.media_type,
        manifest=manifest,
        config_digest=manifest.config.digest,
        config=config,
        names=[],
    )


def _annotated_names(desc: Descriptor) -> list[str]:
    """The image name an index entry carries (containerd's annotation, or a full ref.name)."""
    annotations = desc.annotations or {}
    for key in (IMAGE_NAME, REF_NAME):
        value = annotations.get(key, "")
        if not value or (key == REF_NAME and "/" not in value and ":" not in value):
            continue  # a bare tag ("latest") names no repository
        try:
            return [reference.parse(value).name]
        except InvalidArgument:
            continue
    return []
