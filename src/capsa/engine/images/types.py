"""Options and reports of the image half of the engine protocol.

Frontends (CLI, HTTP API, compose) build the options and render the reports; the
engine never prints and never speaks Docker's JSON (``capsa.api.wire`` does).
"""

from __future__ import annotations

from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.oci.image_spec import ImageConfig, Manifest


@record
class ImageSummary:
    id: str
    repo_tags: list[str] = field(default_factory=list)  # familiar names: "busybox:latest"
    repo_digests: list[str] = field(default_factory=list)  # "busybox@sha256:..."
    tag_digests: dict[str, str] = field(default_factory=dict)  # "busybox:1" -> digest
    created: str | None = None
    size: int = 0  # unpacked size of all layers
    labels: dict[str, str] = field(default_factory=dict)
    containers: int = 0  # how many containers use it
    parent_id: str = ""

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def dangling(self) -> bool:
        return not self.repo_tags


@record
class ImageDetail:
    summary: ImageSummary
    manifest_digest: str
    manifest_media_type: str
    manifest: Manifest
    config: ImageConfig
    layer_sizes: list[int] = field(default_factory=list)  # unpacked, per layer
    added: str = ""


@record
class HistoryEntry:
    id: str  # the image id for the top entry, "<missing>" below, as docker prints
    created: str | None
    created_by: str
    size: int
    comment: str = ""
    empty_layer: bool = False
    tags: list[str] = field(default_factory=list)


@record
class RegistryAuth:
    """Credentials handed over for one pull or push (the API's ``X-Registry-Auth``),
    used instead of the stored ones for ``server`` (any registry when empty)."""

    username: str
    password: str
    server: str = ""  # "127.0.0.1:5000", "https://index.docker.io/v1/"


@record
class PullOptions:
    platform: str | None = None  # "linux/arm64"; default: the host's
    all_tags: bool = False
    quiet: bool = False
    auth: RegistryAuth | None = None


@record
class PushOptions:
    all_tags: bool = False
    auth: RegistryAuth | None = None


@record
class RemoveImagesOptions:
    force: bool = False
    no_prune: bool = False


@record
class RemoveReport:
    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@record
class ImageFilters:
    """`images --filter`: dangling=true|false, label=k[=v], reference=pattern,
    before=IMAGE, since=IMAGE."""

    dangling: bool | None = None
    labels: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    before: str | None = None
    since: str | None = None


@record
class ImportOptions:
    reference: str | None = None
    changes: list[str] = field(default_factory=list)
    message: str = ""
    platform: str | None = None


@record
class PruneReport:
    deleted: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)
    space_reclaimed: int = 0
