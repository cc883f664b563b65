"""A container's filesystem as ``cp`` sees it: the root plus its volumes and binds.

Paths are resolved in the container's namespace: ``..`` stops at ``/``, symlinks,
absolute or relative, are followed as if the root were ``/``, and a path below a
mount's target lands in that mount's host source. The string walk only decides
*where* a path lives; every open goes through ``openat2(RESOLVE_IN_ROOT)`` inside
the directory that holds it (the rootfs or one mount source), so a symlink swapped
in by the container meanwhile cannot reach host files either.
"""

from __future__ import annotations

import os
import posixpath
import stat

from capsa.errors import InvalidArgument, NotFound, PermissionDenied
from capsa.linux import safepath
from capsa.record import record

MAX_SYMLINKS = 40
_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


@record(frozen=True)
class MountPoint:
    target: str  # canonical container path
    source: str  # host directory, or host file for a file bind (/etc/hosts)
    readonly: bool = False
    is_file: bool = False


@record(frozen=True)
class Location:
    """Where a canonical container ``path`` lives: ``rel`` inside host directory ``base``."""

    path: str
    base: str
    rel: str
    readonly: bool = False
    mount: str = ""  # the target of the mount holding it; "" for the root filesystem
    mount_root: bool = False  # ``path`` is that mount's target itself


def components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def join(parent: str, name: str) -> str:
    return posixpath.join(parent, name) if name else parent


class View:
    """A root directory with mounts layered on it; owns the root fds it opens."""

    def __init__(self, root: str, readonly_root: bool = False) -> None:
        self.root = root
        self.readonly_root = readonly_root
        self.mounts: dict[str, MountPoint] = {}
        self._fds: dict[str, int] = {}

    def add_mount(self, target: str, source: str, readonly: bool = False) -> None:
        """Mount ``source`` at ``target`` (resolved in the view as it is, like a runtime)."""
        path = self.resolve(target).path
        is_file = os.path.exists(source) and not os.path.isdir(source)
        self.mounts[path] = MountPoint(path, source, readonly, is_file)

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolution -----------------------------------------------------------------

    def locate(self, path: str) -> Location:
        """The location of a canonical path (no symlink evaluation)."""
        path = "/" + "/".join(components(path))
        probe = path
        while True:
            m = self.mounts.get(probe)
            if m is not None:
                rest = path[len(probe) :].lstrip("/")
                if m.is_file:
                    base, name = os.path.split(m.source)
                    return Location(path, base, join(name, rest), m.readonly, probe, not rest)
                return Location(path, m.source, rest, m.readonly, probe, not rest)
            if probe == "/":
                return Location(path, self.root, path.lstrip("/"), self.readonly_root)
            probe = posixpath.dirname(probe)

    def resolve(self, path: str, follow_last: bool = True) -> Location:
        """Evaluate ``path`` inside the container; missing components are kept as written."""
        if "\0" in path:
            raise InvalidArgument(f"{path!r}: path contains a nul byte")
        parts = components(path)[::-1]
        current: list[str] = []
        hops = 0
        while parts:
            part = parts.pop()
            if part == "..":
                if current:
                    current.pop()
                continue
            current.append(part)
            if not parts and not follow_last:
                break
            target = self.readlink(self.locate("/" + "/".join(current)))
            if target is None:
                continue
            hops += 1
            if hops > MAX_SYMLINKS:
                raise InvalidArgument(f"{path}: too many levels of symbolic links")
            current.pop()
            if target.startswith("/"):
                current.clear()
            parts.extend(components(target)[::-1])
        return self.locate("/" + "/".join(current))

    def readlink(self, loc: Location) -> str | None:
        """The target of the symlink at ``loc``; None when it is missing or not a link."""
        if loc.mount_root:
            return None
        try:
            fd = self.open(loc, _O_PATH_NOFOLLOW)
        except (NotFound, InvalidArgument):
            return None
        try:
            if not stat.S_ISLNK(os.fstat(fd).st_mode):
                return None
            return os.readlink("", dir_fd=fd)
        finally:
            os.close(fd)

    # -- access -----------------------------------------------------------------------

    def base_fd(self, base: str) -> int:
        fd = self._fds.get(base)
        if fd is None:
            fd = self._fds[base] = safepath.open_root(base)
        return fd

    def open(self, loc: Location, flags: int, mode: int = 0o644) -> int:
        """``open`` of ``loc`` confined to its base directory."""
        return safepath.open_in_root(self.base_fd(loc.base), loc.rel, flags, mode)

    def lstat(self, loc: Location) -> os.stat_result | None:
        try:
            fd = self.open(loc, _O_PATH_NOFOLLOW)
        except (NotFound, InvalidArgument):
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def parent_fd(self, loc: Location, create: bool = False) -> tuple[int, str]:
        """An O_PATH fd of the directory holding ``loc`` and its name there (caller closes)."""
        if loc.mount_root and not loc.rel:
            raise InvalidArgument(f"{loc.path}: is a mount point")
        head, name = posixpath.split(loc.rel)
        base = self.base_fd(loc.base)
        if create:
            return safepath.mkdir_all(base, head or "/"), name
        return safepath.open_in_root(base, head or "/", _O_PATH_DIR), name

    def check_writable(self, loc: Location) -> None:
        if not loc.readonly:
            return
        if not loc.mount:
            raise PermissionDenied("container rootfs is marked read-only")
        raise PermissionDenied("mounted volume is marked read-only")
