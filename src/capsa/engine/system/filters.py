"""Docker's filters: ``ps --filter`` (container filters) and ``prune --filter``.

``--filter`` text is read into the filter map by ``capsa.syntax.filters``.

Prune filters are parsed once here (``parse_prune``) from Docker's filter map, the
shape both ``--filter k=v`` and the API's ``filters`` parameter come in; each prune
verb of the engine says which names it accepts and matches its objects with the
typed ``PruneFilters`` it gets back.
"""

from __future__ import annotations

from capsa.engine.containers.types import ContainerRecord, State
from capsa.errors import InvalidArgument
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from capsa.engine.service_context import ServiceContext


def _labels(rec: ContainerRecord, wanted: list[str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in rec.spec.labels or (eq and rec.spec.labels[key] != value):
            return False
    return True


def container_matches(
    rec: ContainerRecord, filters: dict[str, list[str]], ctx: ServiceContext
) -> bool:
    checks = {
        "id": lambda v: rec.id.startswith(v),
        "name": lambda v: v in rec.name or _glob(rec.name, v) or _regex(f"/{rec.name}", v),
        "status": lambda v: rec.state.value == v,
        "exited": lambda v: rec.state is State.EXITED and str(rec.exit_code) == v,
        "ancestor": lambda v: _ancestor(rec, v, ctx),
        "volume": lambda v: any(m.source == v or m.target == v for m in rec.spec.mounts),
        "health": lambda v: _health(rec, ctx) == v,
        "network": lambda v: _on_network(rec, v, ctx),
        "publish": lambda v: _port_match(v, {(p.host_port, p.protocol) for p in rec.spec.ports}),
        "expose": lambda v: _port_match(v, _exposed(rec, ctx)),
        "is-task": lambda v: v in ("false", "0"),  # no swarm: no container is a task
    }
    for key, values in filters.items():
        if key == "label":
            if not _labels(rec, values):
                return False
            continue
        if key in ("before", "since"):
            other = ctx.store.find(values[0])
            if key == "before" and not rec.created < other.created:
                return False
            if key == "since" and not rec.created > other.created:
                return False
            continue
        check = checks.get(key)
        if check is not None and not any(check(v) for v in values):
            return False
    return True


def _on_network(rec: ContainerRecord, value: str, ctx: ServiceContext) -> bool:
    """On the network ``value`` names (a name, an id or its prefix): the one of its
    network mode or one it was connected to."""
    names = {rec.spec.network_mode, *(a.name for a in rec.spec.networks)}
    if value in names:
        return True
    try:
        return ctx.networks.get(value).name in names
    except Exception:  # no such network: no container is on it
        return False


def _port_match(value: str, ports: set[tuple[int, str]]) -> bool:
    """Docker's ``publish``/``expose`` filter value: ``80``, ``80/udp``, ``8000-8080/tcp``."""
    spec, _, proto = value.partition("/")
    start, _, end = spec.partition("-")
    if not start.isdigit() or (end and not end.isdigit()):
        raise InvalidArgument(f"invalid filter value: {value}")
    low, high = int(start), int(end or start)
    return any(low <= port <= high and p == (proto or "tcp") for port, p in ports)


def _exposed(rec: ContainerRecord, ctx: ServiceContext) -> set[tuple[int, str]]:
    """The container ports it publishes and those its image exposes."""
    ports = {(p.container_port, p.protocol) for p in rec.spec.ports}
    try:
        from capsa.oci import image_spec

        config = image_spec.load_config(ctx.content.read(rec.image_id)).config
    except Exception:  # the image is gone: only what the container publishes
        return ports
    for key in (config.exposed_ports if config else None) or {}:
        port, _, proto = key.partition("/")
        if port.isdigit():
            ports.add((int(port), proto or "tcp"))
    return ports


def _regex(name: str, pattern: str) -> bool:
    """dockerd's name filter: a regular expression searched in ``/NAME``."""
    import re

    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _glob(name: str, pattern: str) -> bool:
    import fnmatch  # here: it imports ``re``, which a plain ``ps`` does not need

    return fnmatch.fnmatch(name, pattern)


def _ancestor(rec: ContainerRecord, value: str, ctx: ServiceContext) -> bool:
    found = ctx.images.find(value)
    return found is not None and found.id == rec.image_id


def _health(rec: ContainerRecord, ctx: ServiceContext) -> str:
    import json
    import os

    try:
        with open(os.path.join(ctx.paths(rec.id).run, "health.json")) as f:
            return str(json.load(f).get("Status", "none"))
    except (OSError, ValueError):
        return "none"


# -- prune --filter ----------------------------------------------------------------------

# Docker's filter map: {"label": ["a=b"], "until": ["10m"]}; keys AND, values of a key AND
FilterArgs = dict[str, list[str]]

# what each of dockerd's prune endpoints accepts (daemon/prune.go, image_prune.go, volumes)
CONTAINER_PRUNE = frozenset({"until", "label", "label!"})
NETWORK_PRUNE = frozenset({"until", "label", "label!"})
IMAGE_PRUNE = frozenset({"until", "label", "label!", "dangling"})
VOLUME_PRUNE = frozenset({"label", "label!", "all"})


@record
class PruneFilters:
    """``prune --filter``, parsed: an object is pruned only if it ``matches``."""

    until: float | None = None  # epoch seconds: only objects created at or before it
    labels: list[str] = field(default_factory=list)  # label=k, label=k=v: all must match
    not_labels: list[str] = field(default_factory=list)  # label!=...: kept if all match
    dangling: bool | None = None  # images: only untagged ones (the default) or all
    all: bool | None = None  # volumes: named ones too

    def matches(self, labels: Mapping[str, str], created: str | None = None) -> bool:
        """Docker's ``matchLabels`` and ``until`` test; ``created`` is RFC 3339."""
        if self.labels and not _kv_all(self.labels, labels):
            return False
        if self.not_labels and _kv_all(self.not_labels, labels):
            return False
        return self.until is None or _created_by(created, self.until)


def parse_prune(
    args: Mapping[str, Sequence[str]] | None, accepted: frozenset[str], now: float | None = None
) -> PruneFilters:
    """Check ``args`` against what a prune verb ``accepted``, as dockerd does; durations
    in ``until`` count back from ``now``."""
    sets = {k: sorted(set(v)) for k, v in (args or {}).items() if v}  # Docker's are sets
    for key in sorted(sets):
        if key not in accepted:
            raise InvalidArgument(f"invalid filter '{key}'")
    return PruneFilters(
        until=_until(sets.get("until", []), now),
        labels=sets.get("label", []),
        not_labels=sets.get("label!", []),
        dangling=_flag("dangling", sets.get("dangling", [])),
        all=_flag("all", sets.get("all", [])),
    )


def _kv_all(wanted: Sequence[str], labels: Mapping[str, str]) -> bool:
    """Docker's ``MatchKVList``: every ``key`` or ``key=value`` of ``wanted`` is set."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _until(values: list[str], now: float | None) -> float | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidArgument("more than one until filter specified")
    from capsa.syntax.durations import parse_time_arg

    try:
        return parse_time_arg(values[0], now)
    except InvalidArgument:
        raise InvalidArgument(f'failed to parse value as time or duration: "{values[0]}"') from None


def _created_by(created: str | None, until: float) -> bool:
    """Created at or before ``until``; an object without a known time never is."""
    if not created:
        return False
    from capsa.syntax.durations import parse_time_arg

    try:
        return parse_time_arg(created) <= until
    except InvalidArgument:
        return False


def _flag(key: str, values: list[str]) -> bool | None:
    """A boolean filter as strconv.ParseBool reads it; one value at most."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidArgument(f"invalid filter '{key}={','.join(values)}'")
    value = values[0]
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise InvalidArgument(f"invalid filter '{key}={value}'")
