"""Room on the data root's file system, and what capsa does when there is none.

A full disk must never wedge capsa: reads keep working, removals and prunes free
space, and the metadata stays consistent. Three rules make it so:

- **A reserve.** ``<root>/reserved-space`` holds ``RESERVE_SIZE`` bytes allocated while
  there is room. A metadata write or an event that finds the disk full releases it
  (unlinks it) and carries on in the space it gave back: recording an exit, a removal
  or a prune never fails for want of a few pages. It is made again once there is room.
- **New objects refuse a disk low on space.** A container's rw layer, an image layer or
  blob, a volume: below ``LOW_SPACE`` free bytes (plus the reserve's size while it is
  released) they fail at once with ``NoSpace``, so they never eat the room kept for
  cleaning up; one the disk fills up under is undone, never left half made.
- **Delete first, record afterwards.** Removal frees files before it changes records
  (``capsa.engine.containers.removal``), in an order that can be retried.

The SQLite side (reads on a full disk, the reserve for writes) lives in
``capsa.store.db``.
"""

from __future__ import annotations

import errno
import os

from capsa.errors import FailedPrecondition

RESERVE_NAME = "reserved-space"
RESERVE_SIZE = 1 << 20
LOW_SPACE = 256 << 10  # free bytes below which the disk counts as full
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class NoSpace(FailedPrecondition):
    """The file system holding capsa's data is full (ENOSPC, a quota)."""


def no_space(path: str) -> NoSpace:
    return NoSpace(f"no space left on device: {path}")


def free_bytes(path: str) -> int | None:
    """Bytes this process may still write below ``path`` (root may use the blocks a
    file system keeps for it); None if unknown."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


def is_low(path: str) -> bool:
    free = free_bytes(path)
    return free is not None and free < LOW_SPACE


def is_full_error(err: BaseException | None) -> bool:
    """An ``OSError`` saying the disk (or the quota) is full."""
    return isinstance(err, OSError) and err.errno in _FULL_ERRNOS


def check_room(root: str) -> None:
    """Refuse to make something new in the data root ``root`` when its disk is low on
    space, counting the reserve as wanted back if it was released."""
    free = free_bytes(root)
    if free is None:
        return
    wanted = LOW_SPACE if Reserve(root).exists() else LOW_SPACE + RESERVE_SIZE
    if free < wanted:
        raise no_space(root)


class Reserve:
    """``<root>/reserved-space``: room kept back for cleaning up on a full disk."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, RESERVE_NAME)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def ensure(self) -> None:
        """Make the reserve if it is missing and the disk has room to spare for it."""
        if os.path.exists(self.path):
            return
        free = free_bytes(self.root)
        if free is None or free < RESERVE_SIZE + LOW_SPACE:
            return
        tmp = f"{self.path}.{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_SIZE)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
        except OSError:  # a race for the last bytes, a read-only root: no reserve
            _unlink(tmp)

    def release(self) -> bool:
        """Give the reserve back to the file system; whether there was one."""
        return _unlink(self.path)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except OSError:
        return False
    return True
