"""The engine's event log (``capsa events``): JSON lines in ``<root>/events.log``.

Monitors, the CLI and the API server all append (O_APPEND writes of one line are
atomic); readers filter by time, type, action and attributes, and can follow.
The file is trimmed to its last half when it passes 4 MiB. On a full disk an event
uses the data root's reserve (``capsa.store.space``); if even that is gone the event
is dropped, never the operation it reports, and never as half a line.
"""

from __future__ import annotations

import errno
import json
import os
import time

from capsa.store.space import Reserve, is_full_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

MAX_SIZE = 4 << 20


class EventLog:
    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, "events.log")

    def emit(
        self, kind: str, action: str, actor_id: str, attributes: dict[str, str] | None = None
    ) -> None:
        ns = time.time_ns()
        event = {
            "Type": kind,
            "Action": action,
            "status": action,
            "id": actor_id,
            "Actor": {"ID": actor_id, "Attributes": attributes or {}},
            "scope": "local",
            "time": ns // 10**9,
            "timeNano": ns,
        }
        if kind == "container" and attributes and "image" in attributes:
            event["from"] = attributes["image"]
        line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        try:
            size = self._append(line)
        except OSError as e:
            if not is_full_error(e) or not Reserve(os.path.dirname(self.path)).release():
                return  # the event is lost; what it reports happened all the same
            try:
                size = self._append(line)
            except OSError:
                return
        if size > MAX_SIZE:
            self._trim()

    def _append(self, line: bytes) -> int:
        """Append one line (whole or not at all); the file's new size."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            written = os.write(fd, line)
            end = os.lseek(fd, 0, os.SEEK_CUR)
            if written < len(line):  # the disk filled up mid-line
                if os.fstat(fd).st_size == end:  # nobody appended after it: take it back
                    os.ftruncate(fd, end - written)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
            return end
        finally:
            os.close(fd)

    def _trim(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(-MAX_SIZE // 2, os.SEEK_END)
                f.readline()
                rest = f.read()
        except OSError:
            return
        from capsa.linux.atomicfile import write_atomic

        try:
            write_atomic(self.path, rest)
        except OSError:
            pass  # no room for the trimmed copy: the log stays as it is

    def read(
        self,
        since: float | None = None,
        until: float | None = None,
        match: Callable[[dict[str, Any]], bool] | None = None,
        follow: bool = False,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            try:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    for raw in f:
                        if not raw.endswith(b"\n"):
                            break
                        offset += len(raw)
                        try:
                            event = json.loads(raw)
                        except ValueError:  # a line torn by a full disk
                            continue
                        t = event["timeNano"] / 1e9
                        if since is not None and t < since:
                            continue
                        if until is not None and t > until:
                            return
                        if match is None or match(event):
                            yield event
            except FileNotFoundError:
                pass
            if not follow or (until is not None and time.time() > until):
                return
            if stop is not None and stop():
                return
            time.sleep(0.1)


class EventService:
    """``events`` for frontends: the log's events from ``since`` to ``until`` that
    match ``filters`` (dockerd's keys, already parsed), then new ones as they come."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def stream(
        self,
        since: float | None,
        until: float | None,
        filters: dict[str, list[str]],
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Ends at ``until``, or when ``stop()`` says the reader has gone."""
        from capsa.engine.system.info import event_matcher

        match = event_matcher(filters)
        return self.log.read(since=since, until=until, match=match, follow=True, stop=stop)
