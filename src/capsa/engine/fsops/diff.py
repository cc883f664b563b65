"""``capsa diff``: what a container's upper dir changed against its image's layers.

The upper dir is in overlayfs form: a whiteout (char device 0:0) deletes, an opaque
directory (``trusted.overlay.opaque=y``) hides everything below it in the layers.
Paths are reported as Docker does, walking names in order, a directory before what
is in it: ``A`` added, ``C`` changed, ``D`` deleted. A directory the container only
passed through (copied up, same owner and mode, nothing reported below it) is left
out, and so are the empty files and directories the runtime made as mount points.
"""

from __future__ import annotations

import os
import stat

from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    Skip = Callable[[str, os.stat_result], bool]

_OPAQUE = "trusted.overlay.opaque"
_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FOUND, _HIDDEN, _ABSENT = "found", "hidden", "absent"


@record(frozen=True)
class Change:
    kind: str  # A | C | D
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(f"/proc/self/fd/{fd}", _OPAQUE) == b"y"
    except OSError:
        return False


class Lowers:
    """The read-only layers of an image, highest first, looked up as overlayfs would."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs

    def stat(self, parts: list[str]) -> os.stat_result | None:
        for layer in self.dirs:
            status, fd = self._walk(layer, parts)
            if status == _HIDDEN:
                return None
            if fd is not None:
                try:
                    return os.fstat(fd)
                finally:
                    os.close(fd)
        return None

    def children(self, parts: list[str]) -> set[str]:
        """Names visible in directory ``parts`` of the merged layers."""
        names: set[str] = set()
        hidden: set[str] = set()
        for layer in self.dirs:
            status, fd = self._walk(layer, parts)
            if status == _HIDDEN:
                break
            if fd is None:
                continue
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    break
                self._list(fd, names, hidden)
                if _opaque(fd):
                    break
            finally:
                os.close(fd)
        return names

    @staticmethod
    def _list(fd: int, names: set[str], hidden: set[str]) -> None:
        dfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in os.listdir(dfd):
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if is_whiteout(st):
                    hidden.add(name)
                elif name not in hidden:
                    names.add(name)
        finally:
            os.close(dfd)

    @staticmethod
    def _walk(layer: str, parts: list[str]) -> tuple[str, int | None]:
        """(found, O_PATH fd) | (hidden, None): lower layers lose | (absent, None)."""
        try:
            fd = os.open(layer, _O_PATH_NOFOLLOW | os.O_DIRECTORY)
        except FileNotFoundError:
            return _ABSENT, None
        for i, part in enumerate(parts):
            try:
                child = os.open(part, _O_PATH_NOFOLLOW, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                status = _HIDDEN if _opaque(fd) else _ABSENT
                os.close(fd)
                return status, None
            os.close(fd)
            fd = child
            st = os.fstat(fd)
            last = i == len(parts) - 1
            if is_whiteout(st) or (not last and not stat.S_ISDIR(st.st_mode)):
                os.close(fd)
                return _HIDDEN, None
        return _FOUND, fd


def changes(upper: str, lowers: Lowers, skip: Skip | None = None) -> list[Change]:
    """The container's changes, in Docker's order."""
    fd = os.open(upper, _O_DIR)
    try:
        return _Differ(lowers, skip).directory(fd, "", [])
    finally:
        os.close(fd)


class _Differ:
    def __init__(self, lowers: Lowers, skip: Skip | None) -> None:
        self.lowers = lowers
        self.skip = skip

    def directory(self, dfd: int, path: str, parts: list[str]) -> list[Change]:
        found: dict[str, list[Change]] = {}
        for name in os.listdir(dfd):
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            child = f"{path}/{name}"
            if self.skip is not None and self.skip(child, st):
                continue
            found[name] = self.entry(dfd, name, st, child, [*parts, name])
        if parts and _opaque_dir(dfd):
            for name in self.lowers.children(parts) - found.keys():
                found[name] = [Change("D", f"{path}/{name}")]
        return [c for name in sorted(found) for c in found[name]]

    def entry(
        self, dfd: int, name: str, st: os.stat_result, path: str, parts: list[str]
    ) -> list[Change]:
        lower = self.lowers.stat(parts)
        if is_whiteout(st):
            return [Change("D", path)] if lower is not None else []
        if not stat.S_ISDIR(st.st_mode):
            return [Change("C" if lower is not None else "A", path)]
        sub = os.open(name, _O_DIR, dir_fd=dfd)
        try:
            inner = self.directory(sub, path, parts)
        finally:
            os.close(sub)
        if lower is None:
            return [Change("A", path), *inner]
        if inner or not stat.S_ISDIR(lower.st_mode) or _attrs_differ(st, lower):
            return [Change("C", path), *inner]
        return []


def _opaque_dir(dfd: int) -> bool:
    try:
        return os.getxattr(f"/proc/self/fd/{dfd}", _OPAQUE) == b"y"
    except OSError:
        return False


def _attrs_differ(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid)


def mountpoint_skip(upper: str, targets: Iterable[str], lowers: Lowers) -> Skip:
    """Skip the empty files and directories a runtime made in ``upper`` to mount
    ``targets`` on (what Docker keeps in a container's init layer)."""
    wanted = frozenset(targets)

    def skip(path: str, st: os.stat_result) -> bool:
        if path not in wanted or lowers.stat(path.strip("/").split("/")) is not None:
            return False
        if stat.S_ISREG(st.st_mode):
            return st.st_size == 0
        return stat.S_ISDIR(st.st_mode) and _empty_dir(upper, path)

    return skip


def _empty_dir(upper: str, path: str) -> bool:
    from capsa.linux import safepath

    root = safepath.open_root(upper)
    try:
        fd = safepath.open_in_root(root, path, _O_DIR)
    except Exception:
        return False
    finally:
        os.close(root)
    try:
        return not os.listdir(fd)
    finally:
        os.close(fd)
