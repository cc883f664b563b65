"""What a process entering a container does before the container can reach it.

The container's init and every ``exec`` run the runtime's Python until their final
``execve``, inside the container's namespaces and with more privileges than the
container has. Three things keep the container from using that window (runc and crun
do the same):

- ``hide``: the process is made non-dumpable, so a container without CAP_SYS_PTRACE
  cannot open its ``/proc/<pid>/exe``, ``fd/*``, ``mem``, ``environ`` or ``cwd``
  (the kernel resets it at the final ``execve``); and every fd it inherited from
  its caller (an engine's databases, sockets, logs) is closed, keeping only those
  meant for the container and for the hand-shake with the runtime.
- ``seal_imports``: once the process sees the container's files (a joined mount
  namespace, or after ``pivot_root``) only built-in and frozen modules may be
  imported: a module found on ``sys.path`` there would be the container's code,
  run with the runtime's privileges. A late import then fails instead.
- the final hop goes through ``capsa.linux.trampoline``, so ``/proc/<pid>/exe``
  never names the host's interpreter while the container's program starts.
"""

from __future__ import annotations

import sys

from capsa.linux import syscalls as sc
from capsa.linux.fds import close_all_except

_SAFE_FINDERS = ("BuiltinImporter", "FrozenImporter")


def hide(keep: tuple[int, ...]) -> None:
    """Non-dumpable, and no fd from 3 up but ``keep``."""
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    close_all_except(keep)


def seal_imports() -> None:
    """From here on, imports find only modules compiled into the interpreter."""
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") in _SAFE_FINDERS]
    sys.path_importer_cache.clear()
    sys.path.clear()


def preserved(count: int) -> tuple[int, ...]:
    """The fds ``--preserve-fds`` passes on: 3 up to 3 + ``count``."""
    return tuple(range(3, 3 + count))
