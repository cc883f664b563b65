"""``--log``, ``--log-format`` and ``--debug``, the way runc (logrus) does them.

Every log line goes to one place: the ``--log`` file when one is given, else stderr.
``text`` lines are logrus's (``time="..." level=error msg="..."``) in a file, and
capsa's ``capsa-runtime: ...`` on stderr; ``json`` lines are ``{"level","msg","time"}``
objects wherever they go. With a log file an error is also printed, plain, on stderr,
as runc does, so that a caller reading only stderr still sees why a command failed.
Debug lines are written only with ``--debug``. Time stamps are RFC 3339 in local time,
to the second (logrus's default).
"""

from __future__ import annotations

import os
import sys
import time

from capsa import fastjson
from capsa.errors import InvalidArgument, os_reason

FORMATS = ("text", "json")
# logrus quotes a text value unless every character is one of these
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")


class RuntimeLog:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        if fmt not in FORMATS:
            raise InvalidArgument(f"invalid log-format: {fmt}")
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug
        self._fd = _open_log(path) if path else -1

    def _write(self, level: str, msg: str) -> None:
        if self._fd >= 0:
            line = _json_line(level, msg) if self.fmt == "json" else _text_line(level, msg)
            try:
                os.write(self._fd, line.encode())
            except OSError:
                pass
        elif self.fmt == "json":
            sys.stderr.write(_json_line(level, msg))
        else:
            prefix = "" if level == "error" else f"{level}: "
            sys.stderr.write(f"capsa-runtime: {prefix}{msg}\n")

    def error(self, msg: str) -> None:
        self._write("error", msg)
        if self._fd >= 0:
            sys.stderr.write(f"capsa-runtime: {msg}\n")

    def warning(self, msg: str) -> None:
        self._write("warning", msg)

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._write("debug", msg)


def _open_log(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise InvalidArgument(f"cannot open log file {path}: {os_reason(e)}") from None


def timestamp(now: float | None = None) -> str:
    """RFC 3339 in local time, to the second: ``2024-05-01T10:00:00Z`` or ``...+02:00``."""
    local = time.localtime(time.time() if now is None else now)
    offset = local.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        hours, minutes = divmod(abs(offset) // 60, 60)
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def _json_line(level: str, msg: str) -> str:
    """logrus's JSONFormatter: the keys sorted, Go's string escapes."""
    return fastjson.go_dumps({"level": level, "msg": msg, "time": timestamp()}) + "\n"


def _text_line(level: str, msg: str) -> str:
    """logrus's TextFormatter without colours: ``time="..." level=... msg=...``."""
    return f"time={_logfmt(timestamp())} level={level} msg={_logfmt(msg)}\n"


def _logfmt(value: str) -> str:
    if value and set(value) <= _BARE:
        return value
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
