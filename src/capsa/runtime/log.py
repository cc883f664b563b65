"""``--log`` / ``--log-format``: runc-style log lines for callers such as conmon."""

from __future__ import annotations

import sys
import time

from capsa import fastjson


class RuntimeLog:
    def __init__(self, path: str | None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def _write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        if self.fmt == "json":
            line = fastjson.dumps({"level": level, "msg": msg, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg="{msg}"'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def error(self, msg: str) -> None:
        self._write("error", msg)
        sys.stderr.write(f"capsa-runtime: {msg}\n")

    def warning(self, msg: str) -> None:
        self._write("warning", msg)
        sys.stderr.write(f"capsa-runtime: warning: {msg}\n")

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._write("debug", msg)
            sys.stderr.write(f"capsa-runtime: debug: {msg}\n")
