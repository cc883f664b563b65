"""Run a test body in a forked child, so process-wide changes (capabilities,
seccomp filters, uids) never touch the pytest process."""

from __future__ import annotations

import os
import resource
import traceback
from collections.abc import Callable


def run_in_child(fn: Callable[[], str]) -> tuple[int, str]:
    """Run ``fn`` in a forked child; return its wait status and what it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            out = fn()
        except BaseException:
            out, code = traceback.format_exc(), 99
        os.write(w, out.encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return status, data


def ok(status: int, out: str) -> str:
    """Assert the child exited 0 and return its output."""
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    return out
