"""Phase timings for benchmarks: ``mark(name)`` records the time since the last mark.

Off unless the CLI calls ``enable(path)``; then ``dump()`` writes the phases (ms) as
JSON. Only the process that enabled it records (forked children do not).
"""

from __future__ import annotations

import time

_state: dict[str, object] = {"path": None, "last": 0.0, "pid": 0}
_phases: dict[str, float] = {}


def enable(path: str, started: float) -> None:
    import os

    _state.update(path=path, last=started, pid=os.getpid())


def mark(name: str) -> None:
    if _state["path"] is None:
        return
    now = time.perf_counter()
    _phases[name] = _phases.get(name, 0.0) + (now - float(_state["last"])) * 1000  # type: ignore[arg-type]
    _state["last"] = now


def dump() -> None:
    path = _state["path"]
    if path is None:
        return
    import json
    import os

    if os.getpid() != _state["pid"]:
        return
    with open(str(path), "w") as f:
        json.dump({k: round(v, 3) for k, v in _phases.items()}, f)
