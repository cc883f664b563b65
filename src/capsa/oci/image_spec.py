"""OCI image-spec documents (and Docker schema 2 equivalents) as typed records.

Descriptors, manifests, indexes (manifest lists) and the image config. Docker's
media types are accepted everywhere the OCI ones are; ``MANIFEST_TYPES`` and
``INDEX_TYPES`` say which document a media type names.
"""

from __future__ import annotations

from capsa import fastjson
from capsa.errors import InvalidArgument
from capsa.oci.codec import from_dict, to_dict
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYOUT_VERSION = "1.0.0"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
LAYER_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_FOREIGN,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    }
)

# ``sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}``, matched whole (without ``re``: listing
# containers reads image configs, and ``re`` costs a cold ``ps`` milliseconds)
_DIGEST_HEX = {"sha256:": 64, "sha512:": 128}
_HEX = frozenset("0123456789abcdef")


def validate_digest(digest: str) -> str:
    size = _DIGEST_HEX.get(digest[:7])
    if size is None or len(digest) != 7 + size or not _HEX.issuperset(digest[7:]):
        raise InvalidArgument(f"invalid digest {digest!r}")
    return digest


def sha256_digest(data: bytes) -> str:
    import hashlib  # here: loading OpenSSL costs a listing ~2 ms

    return "sha256:" + hashlib.sha256(data).hexdigest()


def compression_of(media_type: str) -> str:
    """``gzip``, ``zstd`` or ``none`` for a layer media type."""
    if media_type.endswith("gzip"):
        return "gzip"
    if media_type.endswith("zstd"):
        return "zstd"
    return "none"


@record(frozen=True)
class Platform:
    architecture: str = ""
    os: str = ""
    os_version: str | None = field(default=None, json="os.version")
    os_features: list[str] | None = field(default=None, json="os.features")
    variant: str | None = None

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@record
class Descriptor:
    media_type: str = ""
    digest: str = ""
    size: int = 0
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None


@record
class Manifest:
    schema_version: int = 2
    media_type: str | None = None
    config: Descriptor = field(default_factory=Descriptor)
    layers: list[Descriptor] = field(default_factory=list)
    annotations: dict[str, str] | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None


@record
class Index:
    schema_version: int = 2
    media_type: str | None = None
    manifests: list[Descriptor] = field(default_factory=list)
    annotations: dict[str, str] | None = None


@record
class HealthConfig:
    test: list[str] | None = field(default=None, json="Test")
    interval: int | None = field(default=None, json="Interval")
    timeout: int | None = field(default=None, json="Timeout")
    start_period: int | None = field(default=None, json="StartPeriod")
    start_interval: int | None = field(default=None, json="StartInterval")
    retries: int | None = field(default=None, json="Retries")


@record
class ContainerConfig:
    """The ``config`` section of an image config (Docker's PascalCase keys)."""

    user: str | None = field(default=None, json="User")
    exposed_ports: dict[str, Any] | None = field(default=None, json="ExposedPorts")
    env: list[str] | None = field(default=None, json="Env")
    entrypoint: list[str] | None = field(default=None, json="Entrypoint")
    cmd: list[str] | None = field(default=None, json="Cmd")
    volumes: dict[str, Any] | None = field(default=None, json="Volumes")
    working_dir: str | None = field(default=None, json="WorkingDir")
    labels: dict[str, str] | None = field(default=None, json="Labels")
    stop_signal: str | None = field(default=None, json="StopSignal")
    healthcheck: HealthConfig | None = field(default=None, json="Healthcheck")
    shell: list[str] | None = field(default=None, json="Shell")
    args_escaped: bool | None = field(default=None, json="ArgsEscaped")
    on_build: list[str] | None = field(default=None, json="OnBuild")
    extra: dict[str, Any] = field(default_factory=dict)


@record
class RootFS:
    type: str = "layers"
    diff_ids: list[str] = field(default_factory=list, json="diff_ids")


@record
class History:
    created: str | None = None
    created_by: str | None = field(default=None, json="created_by")
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = field(default=None, json="empty_layer")


@record
class ImageConfig:
    architecture: str = ""
    os: str = ""
    variant: str | None = None
    os_version: str | None = field(default=None, json="os.version")
    created: str | None = None
    author: str | None = None
    config: ContainerConfig | None = None
    rootfs: RootFS = field(default_factory=RootFS)
    history: list[History] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> Platform:
        return Platform(architecture=self.architecture, os=self.os, variant=self.variant)


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = decode_json(raw)
    except ValueError as e:  # bad JSON, or bytes that are not UTF-8
        raise InvalidArgument(f"{what}: invalid JSON: {e}") from None
    except RecursionError:  # [[[[... a few thousand deep
        raise InvalidArgument(f"{what}: invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{what}: expected a JSON object")
    return data


_NOT_UTF8_FIRST = (b"\x00", b"\xef", b"\xfe", b"\xff")  # BOMs, UTF-16/32: json's choice


def decode_json(raw: bytes | str) -> Any:
    """``json.loads(raw)``; the usual UTF-8 document without importing ``json`` (and
    ``re``): decoded as ``json`` decodes what it finds to be UTF-8, then parsed by the
    same C scanner (``capsa.fastjson``). Anything else goes to ``json`` itself."""
    if isinstance(raw, str):
        if not raw.startswith("\ufeff"):
            return fastjson.loads(raw)
    elif raw[:1] not in _NOT_UTF8_FIRST and raw[1:2] != b"\x00":
        return fastjson.loads(raw.decode("utf-8", "surrogatepass"))
    import json

    return json.loads(raw)


def load_manifest(raw: bytes) -> Manifest:
    return from_dict(Manifest, parse_json(raw, "manifest"), "manifest")


def load_index(raw: bytes) -> Index:
    return from_dict(Index, parse_json(raw, "index"), "index")


def load_config(raw: bytes) -> ImageConfig:
    return from_dict(ImageConfig, parse_json(raw, "image config"), "config")


def dump(obj: Any) -> bytes:
    """Canonical-enough JSON bytes for a document we write (and hash)."""
    return fastjson.dumps(to_dict(obj), separators=(",", ":")).encode()


def media_type_of(raw: bytes) -> str:
    """The media type a manifest or index document declares (or implies)."""
    data = parse_json(raw, "manifest")
    mt = data.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    return OCI_INDEX if "manifests" in data else OCI_MANIFEST
