"""Reading and writing cgroup files, with kernel errors turned into typed errors.

Every helper takes a cgroup directory and a bare file name: names never contain a
slash, so nothing here can reach outside the directory it was given.
"""

from __future__ import annotations

import errno
import os

from capsa.errors import (
    CapsaError,
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from capsa.record import field, record

UNLIMITED = (1 << 64) - 1


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise InvalidArgument(f"invalid cgroup file name {name!r}")


def translate(e: OSError, path: str, value: str | None = None) -> CapsaError:
    """Map an OSError on a cgroup file to the capsa error kind naming file and value."""
    what = f"{path}" if value is None else f"{value!r} to {path}"
    if e.errno == errno.EINVAL or e.errno == errno.ERANGE:
        return InvalidArgument(f"kernel rejected writing {what}")
    if e.errno == errno.EBUSY:
        return Conflict(f"cgroup busy writing {what}")
    if e.errno == errno.ENOENT:
        return NotFound(f"no cgroup file {path}")
    if e.errno in (errno.EPERM, errno.EACCES):
        return PermissionDenied(f"not permitted: {what}")
    if e.errno == errno.ESRCH:
        return NotFound(f"no such process writing {what}")
    if e.errno == errno.ENOSPC:
        return Conflict(f"no space writing {what} (empty cpuset or limit reached?)")
    return Internal(f"cannot access {path}: {e.strerror}")


def write(directory: str, name: str, value: str) -> None:
    """Write ``value`` to ``directory/name`` in one write(2) call."""
    _check_name(name)
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise translate(e, path, value) from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise translate(e, path, value) from None
    finally:
        os.close(fd)


def read(directory: str, name: str) -> str:
    _check_name(name)
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise translate(e, path) from None


def read_optional(directory: str, name: str) -> str | None:
    """Like :func:`read` but ``None`` when the file does not exist."""
    try:
        return read(directory, name)
    except NotFound:
        return None


def has(directory: str, name: str) -> bool:
    _check_name(name)
    return os.path.exists(os.path.join(directory, name))


def parse_uint(text: str) -> int:
    """Parse a single cgroup number; ``max`` and v1's huge values mean unlimited."""
    text = text.strip()
    if text == "max":
        return UNLIMITED
    try:
        value = int(text)
    except ValueError:
        raise Internal(f"unexpected cgroup value {text!r}") from None
    return max(value, 0)


def read_uint(directory: str, name: str, default: int = 0) -> int:
    text = read_optional(directory, name)
    if text is None or not text.strip():
        return default
    return parse_uint(text.split()[0])


def parse_flat_keyed(text: str) -> dict[str, int]:
    """Parse ``key value`` lines (memory.stat, cpu.stat, memory.events ...)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = parse_uint(parts[1])
            except Internal:
                continue
    return out


def read_flat_keyed(directory: str, name: str) -> dict[str, int]:
    text = read_optional(directory, name)
    return parse_flat_keyed(text) if text is not None else {}


@record
class WriteLog:
    """Records the old content of each file written, to undo a failed apply."""

    saved: list[tuple[str, str, str]] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def write(self, directory: str, name: str, value: str, *, restorable: bool = True) -> None:
        path = os.path.join(directory, name)
        if restorable and path not in self._seen:
            old = read_optional(directory, name)
            if old is not None:
                self.saved.append((directory, name, _restore_value(name, old)))
            self._seen.add(path)
        write(directory, name, value)

    def rollback(self) -> list[BaseException]:
        """Write old values back, last first; return the errors met (never raise)."""
        errors: list[BaseException] = []
        for directory, name, old in reversed(self.saved):
            try:
                write(directory, name, old)
            except CapsaError as e:
                errors.append(e)
        self.saved.clear()
        return errors


def _restore_value(name: str, old: str) -> str:
    old = old.strip()
    if name == "memory.oom_control":
        # first line is "oom_kill_disable N"
        first = old.splitlines()[0].split() if old else ["", "0"]
        return first[-1]
    return old.splitlines()[0] if old else old
