"""The engine's event log (``capsa events``): JSON lines in ``<root>/events.log``.

Monitors, the CLI and the API server all append (O_APPEND writes of one line are
atomic); readers filter by time, type, action and attributes, and can follow.
The file is trimmed to its last half when it passes 4 MiB.
"""

from __future__ import annotations

import json
import os
import time

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
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > MAX_SIZE:
            self._trim()

    def _trim(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(-MAX_SIZE // 2, os.SEEK_END)
                f.readline()
                rest = f.read()
        except OSError:
            return
        from capsa.linux.atomicfile import write_atomic

        write_atomic(self.path, rest)

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
                        event = json.loads(raw)
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
