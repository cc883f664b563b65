"""``inspect NAME...`` of any kind: which object each name is.

A name is looked up as a container, then an image, a network and a volume (Docker's
order), or only as the kind asked for. Each name gets its own report
(``capsa.engine.system.reports``): one missing name never hides the others.
"""

from __future__ import annotations

from capsa.errors import NotFound, no_such_object
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.protocol import Engine
    from capsa.engine.system.reports import ItemReport

KINDS = ("container", "image", "network", "volume")


@record
class Found:
    kind: str  # one of KINDS
    value: Any  # ContainerRecord, ImageDetail, Network or Volume


def find_each(engine: Engine, names: list[str], kind: str | None = None) -> list[ItemReport[Found]]:
    from capsa.engine.system.reports import each

    return each(names, lambda name: find(engine, name, kind))


def find(engine: Engine, name: str, kind: str | None = None) -> Found:
    """The object called ``name``; NotFound names the kind asked for, or ``object``."""
    for k in KINDS if kind is None else (kind,):
        try:
            return Found(k, _lookup(engine, k, name))
        except NotFound:
            if kind is not None:
                raise
    raise no_such_object(name)


def _lookup(engine: Engine, kind: str, name: str) -> Any:
    if kind == "container":
        return engine.containers.get(name)
    if kind == "image":
        return engine.images.inspect(name)
    if kind == "network":
        return engine.networks.inspect(name)
    return engine.volumes.get(name)
