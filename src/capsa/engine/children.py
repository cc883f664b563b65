"""Processes the engine spawned and nobody waits for: a server's monitors and exec
watchers. A command-line process exits soon and init reaps them; a long-lived server
calls ``reap`` now and then, so that they do not stay zombies."""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

_LOCK = threading.Lock()
_SPAWNED: list[subprocess.Popen[bytes]] = []


def track(child: subprocess.Popen[bytes]) -> None:
    with _LOCK:
        _SPAWNED.append(child)


def reap() -> int:
    """Reap those that ended (each by its own pid: others' children are left alone);
    how many still run."""
    with _LOCK:
        _SPAWNED[:] = [child for child in _SPAWNED if child.poll() is None]
        return len(_SPAWNED)
