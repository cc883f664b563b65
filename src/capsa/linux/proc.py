"""Reading process facts from /proc; naming this process for ``ps``."""

from __future__ import annotations

import os


def set_title(title: str) -> None:
    """What ``ps`` shows for this process (when setproctitle is installed)."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is the state)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rfind(b")") + 2 :].decode().split()


def start_time(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, expected_start: int | None = None) -> bool:
    """True if ``pid`` exists, is not a zombie and (if given) started at ``expected_start``."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return expected_start is None or int(fields[19]) == expected_start


def pid_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")
