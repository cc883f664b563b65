"""Per-item results of the verbs that take several names (``stop a b c``, ``inspect a b``).

Each name gets its own report, in the order given: what the verb returned for it, or
the error it met. One failure never hides the other names' results; the frontend
renders them (Docker's CLI prints what worked, then each error, and exits 1).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from capsa.errors import CapsaError, not_utf8
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

T = TypeVar("T")


@record
class ItemReport(Generic[T]):
    name: str  # as the caller wrote it
    value: T | None = None  # what the verb returned for it
    error: CapsaError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def each(names: Iterable[str], verb: Callable[[str], T]) -> list[ItemReport[T]]:
    """``verb`` applied to every name, each result or error kept."""
    out: list[ItemReport[T]] = []
    for name in names:
        try:
            out.append(ItemReport(name, verb(name)))
        except CapsaError as e:
            out.append(ItemReport(name, error=e))
        except UnicodeEncodeError as e:  # bytes that are not UTF-8: no object has that name
            out.append(ItemReport(name, error=not_utf8(e)))
    return out
