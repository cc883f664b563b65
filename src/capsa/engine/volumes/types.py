"""Records of the volume half of the engine, and the local driver's input rules.

Frontends build ``VolumeCreateOptions`` and render ``Volume``/``VolumePruneReport``;
``capsa.api.wire`` turns them into Docker's JSON. The checks here are pure (names,
``-o`` options, filters) so that the CLI, the API and compose reject bad input the
same way, before anything touches the disk.
"""

from __future__ import annotations

from capsa.errors import InvalidArgument
from capsa.record import field, record

# Docker 23+ marks anonymous volumes (`-v /data`) with this label; prune looks for it.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
LOCAL_DRIVER = "local"

# filter name -> values, as Docker's API sends them: {"label": ["a=b"], "dangling": ["true"]}
VolumeFilters = dict[str, list[str]]

_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"  # compiled on use: listing needs no ``re``
# option -> options it needs, as moby's local driver (volume/local/local_unix.go)
_REQUIRED_OPTS = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
_FILTERS = frozenset({"name", "label", "dangling", "driver"})


@record
class Volume:
    name: str
    mountpoint: str
    created_at: str  # RFC 3339, UTC ("2024-05-01T10:00:00Z")
    driver: str = LOCAL_DRIVER
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # the driver's -o options
    scope: str = "local"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    @property
    def needs_mount(self) -> bool:
        """tmpfs, bind or device volumes: mounted on ``mountpoint`` while in use."""
        return bool(self.options.get("type") or self.options.get("device"))


@record
class VolumeCreateOptions:
    name: str | None = None  # None: a random 64-hex name
    driver: str = LOCAL_DRIVER
    labels: dict[str, str] = field(default_factory=dict)
    driver_opts: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False  # adds ANONYMOUS_LABEL (`-v /data`); so does a missing name


@record
class VolumePruneReport:
    deleted: list[str] = field(default_factory=list)
    space_reclaimed: int = 0


def validate_name(name: str) -> None:
    if len(name) < 2:
        raise InvalidArgument(
            f"create {name}: volume name is too short, "
            "names should be at least two alphanumeric characters"
        )
    import re

    if not re.match(_NAME, name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. '
            "If you intended to pass a host directory, use absolute path"
        )


def validate_driver(driver: str) -> None:
    if driver != LOCAL_DRIVER:
        raise InvalidArgument(f'plugin "{driver}" not found')


def validate_options(opts: dict[str, str]) -> None:
    """The local driver's ``-o``: ``type``, ``device`` and ``o`` (mount(8)'s -t, device, -o)."""
    for key in sorted(opts):
        if key == "size":
            raise InvalidArgument("quota size requested but no quota support")
        if key not in _REQUIRED_OPTS:
            raise InvalidArgument(f'invalid option: "{key}"')
    for key, needs in _REQUIRED_OPTS.items():
        if key in opts:
            for need in needs:
                if need not in opts:
                    raise InvalidArgument(f'missing required option: "{need}"')
    binds = {"bind", "rbind"} & set(split_mount_options(opts.get("o", "")))
    if binds and not opts.get("device", "").startswith("/"):
        raise InvalidArgument(f"bind device must be an absolute path: {opts.get('device')}")


def split_mount_options(text: str) -> list[str]:
    return [o for o in text.split(",") if o]


def check_filters(filters: VolumeFilters) -> None:
    """``volume ls --filter`` (prune's are ``capsa.engine.system.filters.parse_prune``'s)."""
    for key, values in filters.items():
        if key not in _FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "dangling":
            for value in values:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise InvalidArgument(f"invalid filter '{key}={value}'")


def truthy(value: str) -> bool:
    return value.lower() in ("true", "1")


def match_labels(labels: dict[str, str], wanted: list[str]) -> bool:
    """Every ``key`` or ``key=value`` of ``wanted`` is among ``labels``."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True
