"""``--filter name=value`` (repeated) -> Docker's filter map, checked per command.

The map (``{"label": ["a=b"], "until": ["10m"]}``) is the shape the API's ``filters``
parameter comes in too; the engine matches objects with it (``capsa.engine.system.filters``).
"""

from __future__ import annotations

from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from capsa.engine.images.types import ImageFilters

# what ``ps --filter`` and ``events --filter`` accept, as dockerd
PS_FILTERS = (
    "id",
    "name",
    "label",
    "status",
    "exited",
    "ancestor",
    "before",
    "since",
    "health",
    "volume",
    "is-task",
    "network",
    "publish",
    "expose",
)
EVENT_FILTERS = (
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
)


def _pair(item: str) -> tuple[str, str]:
    key, eq, value = item.partition("=")
    if not eq:
        raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
    return key, value


def _filter_map(
    items: Sequence[str],
    known: tuple[str, ...] | None = None,
    check: Callable[[str, str], None] | None = None,
) -> dict[str, list[str]]:
    """{name: [values]} of ``items``, each refused in turn for a name not ``known`` (None:
    any) or what ``check(name, value)`` refuses."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, value = _pair(item)
        if known is not None and key not in known:
            raise InvalidArgument(f"invalid filter '{key}'")
        if check is not None:
            check(key, value)
        out.setdefault(key, []).append(value)
    return out


def parse_filters(items: Sequence[str]) -> dict[str, list[str]]:
    """``--filter name=value`` repeated -> {name: [values]} (the names are the engine's
    to check: ``volume ls``, ``network ls``, the prunes)."""
    return _filter_map(items)


def parse_ps_filters(items: Sequence[str]) -> dict[str, list[str]]:
    """``ps --filter``: names and ``status`` values as dockerd accepts them."""
    from capsa.engine.containers.types import State

    statuses = {s.value for s in State}

    def check(key: str, value: str) -> None:
        if key == "status" and value not in statuses:
            raise InvalidArgument(f"invalid filter 'status={value}'")

    return _filter_map(items, PS_FILTERS, check)


def parse_event_filters(items: Sequence[str]) -> dict[str, list[str]]:
    """``events --filter`` (matched by ``capsa.engine.system.info.event_matcher``)."""
    return _filter_map(items, EVENT_FILTERS)


def parse_image_filters(items: Sequence[str]) -> ImageFilters:
    """``images --filter``: dangling, label, reference, before, since."""
    from capsa.engine.images.types import ImageFilters

    f = ImageFilters()
    for item in items:
        key, value = _pair(item)
        if key == "dangling":
            if value not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={value}'")
            f.dangling = value in ("true", "1")
        elif key == "label":
            f.labels.append(value)
        elif key == "reference":
            f.references.append(value)
        elif key == "before":
            f.before = value
        elif key == "since":
            f.since = value
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return f
