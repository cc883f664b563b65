"""A stack of undo steps for all-or-nothing operations.

Push an undo callback after each step succeeds; on failure ``unwind`` runs them in
reverse and returns the errors they raised so they can be attached to the original
error rather than lost.
"""

from __future__ import annotations

from capsa.errors import CapsaError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any


class CleanupStack:
    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def push(self, fn: Callable[..., Any], *args: Any) -> None:
        self._steps.append((fn, args))

    def unwind(self) -> list[BaseException]:
        failures: list[BaseException] = []
        while self._steps:
            fn, args = self._steps.pop()
            try:
                fn(*args)
            except Exception as e:
                failures.append(e)
        return failures

    def release(self) -> None:
        """The operation succeeded: forget the undo steps."""
        self._steps.clear()

    def __enter__(self) -> CleanupStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.release()
            return
        failures = self.unwind()
        if failures and isinstance(exc, CapsaError):
            exc.causes.extend(failures)
