"""Progress reporting for long operations (pulls, pushes, builds).

Libraries report through a ``ProgressSink``; frontends decide how to show it (bars
on a terminal, plain lines otherwise, JSON messages over the API). ``NullProgress``
discards everything.
"""

from __future__ import annotations

from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object


@record
class ProgressEvent:
    id: str  # what the event is about: a short layer digest, an image name
    action: (
        str  # "Waiting", "Downloading", "Verifying", "Extracting", "Pushing", "Pull complete"...
    )
    current: int = 0
    total: int | None = None
    done: bool = False


class ProgressSink(Protocol):
    def emit(self, event: ProgressEvent) -> None: ...


class NullProgress:
    def emit(self, event: ProgressEvent) -> None:
        return None

    def close(self) -> None:
        return None


class RecordingProgress:
    """Keeps every event (tests)."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def emit(self, event: ProgressEvent) -> None:
        self.events.append(event)
