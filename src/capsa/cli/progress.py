"""Showing progress: bars per layer on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys

from capsa.progress import ProgressEvent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class LineProgress:
    """One line each time an item changes what it is doing (logs, pipes, CI)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self._last: dict[str, str] = {}

    def emit(self, event: ProgressEvent) -> None:
        if self._last.get(event.id) == event.action and not event.done:
            return
        self._last[event.id] = event.action
        self.stream.write(f"{event.id}: {event.action}\n")
        self.stream.flush()

    def close(self) -> None:
        return None


class BarProgress:
    """rich progress bars, one per item, on a terminal.

    The display starts with the first event, so nothing (not even the cursor hiding
    and line clearing rich begins with) reaches a terminal when nothing is pulled, and
    ``close`` stops it for good: a container that owns the terminal next (``run -it``)
    sees only its own bytes there."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._closed = False

    def _start(self) -> Any:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
        )

        progress = Progress(
            TextColumn("{task.fields[item]}"),
            TextColumn("{task.description:<18}"),
            BarColumn(),
            DownloadColumn(),
            transient=False,
        )
        progress.start()
        return progress

    def emit(self, event: ProgressEvent) -> None:
        if self._closed:
            return
        if self._progress is None:
            self._progress = self._start()
        task = self._tasks.get(event.id)
        if task is None:
            task = self._progress.add_task(event.action, item=event.id, total=event.total)
            self._tasks[event.id] = task
        kwargs: dict[str, Any] = {"description": event.action}
        if event.total is not None:
            kwargs["total"] = event.total
        if event.current:
            kwargs["completed"] = event.current
        if event.done and event.total:
            kwargs["completed"] = event.total
        self._progress.update(task, **kwargs)

    def close(self) -> None:
        self._closed = True
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def make_progress(quiet: bool = False) -> Any:
    from capsa.progress import NullProgress

    if quiet:
        return NullProgress()
    if sys.stderr.isatty():
        return BarProgress()
    return LineProgress()
