"""Resolve container-controlled paths inside a root directory, never on the host.

Every path that comes from an image or a user (mount destinations, volume targets,
``cp``, layer entries, WORKDIR, COPY destinations) is resolved as if the root were
``/``: ``..`` stops at the root and symlink targets, absolute or relative, are
re-rooted. The fd-based functions use ``openat2(RESOLVE_IN_ROOT)`` and fall back to a
component-by-component walk with ``O_PATH|O_NOFOLLOW`` when the kernel (or a seccomp
filter) refuses ``openat2``. ``secure_join`` is the string form, like Go's
filepath-securejoin: it is racy by nature, so prefer the fds when opening or mounting.
"""

from __future__ import annotations

import errno
import os
import stat

from capsa.errors import (
    AlreadyExists,
    CapsaError,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from capsa.linux import syscalls

# secure_join's budget, as filepath-securejoin; the fd walk matches the kernel's.
MAX_SYMLINKS = 255
_KERNEL_MAX_SYMLINKS = 40
_EAGAIN_RETRIES = 16
_RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

_ERRNO_KINDS: dict[int, type[CapsaError]] = {
    errno.ENOENT: NotFound,
    errno.EEXIST: AlreadyExists,
    errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.EROFS: PermissionDenied,
    errno.ELOOP: InvalidArgument,
    errno.ENOTDIR: InvalidArgument,
    errno.EISDIR: InvalidArgument,
    errno.ENAMETOOLONG: InvalidArgument,
    errno.EINVAL: InvalidArgument,
    errno.EXDEV: InvalidArgument,
}


def open_root(root: str) -> int:
    """An ``O_PATH|O_DIRECTORY|O_CLOEXEC`` fd of the (trusted) root directory."""
    try:
        return os.open(root, _O_PATH_DIR)
    except OSError as err:
        raise _error(root, err) from err


def proc_fd_path(fd: int) -> str:
    """The magic link naming ``fd``: mount onto it, not onto a re-resolved string."""
    return f"/proc/self/fd/{fd}"


def secure_join(root: str, unsafe: str) -> str:
    """``root`` joined with ``unsafe``, every symlink evaluated as if ``root`` were ``/``.

    ``..`` is clamped at the root and absolute symlink targets are re-rooted. Missing
    components (and any below a non-directory) are appended lexically.
    """
    _check_path(unsafe)
    root = _clean_root(root)
    current: list[str] = []
    parts = _components(unsafe)
    hops = 0
    while parts:
        part = parts.pop()
        if part == "..":
            if current:
                current.pop()
            continue
        current.append(part)
        full = _join(root, current)
        try:
            target = os.readlink(full)
        except OSError as err:
            if err.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
                continue  # not a symlink, or missing: keep it lexically
            raise _error(full, err) from err
        hops += 1
        if hops > MAX_SYMLINKS:
            raise InvalidArgument(f"{unsafe}: too many levels of symbolic links")
        current.pop()
        if target.startswith("/"):
            current.clear()
        parts.extend(_components(target))
    return _join(root, current)


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0o644) -> int:
    """``open(path, flags, mode)`` with ``path`` resolved inside ``root_fd``; close-on-exec."""
    _check_path(path)
    flags |= os.O_CLOEXEC
    try:
        fd = _openat2_in_root(root_fd, path or "/", flags, mode)
        return fd if fd is not None else _open_walk(root_fd, path, flags, mode)
    except OSError as err:
        raise _error(path, err) from err


def mkdir_all(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create every missing directory of ``path`` inside the root (``mode`` minus umask).

    Returns an ``O_PATH|O_DIRECTORY`` fd of the final directory; raises InvalidArgument
    when a component exists and is not a directory (or a symlink to one).
    """
    _check_path(path)
    fast = _try_open_existing(root_fd, path, _O_PATH_DIR)
    if fast is not None:
        return fast
    try:
        dir_fd, _ = _walk(root_fd, path, create_mode=mode, follow_last=True, whole=True)
    except OSError as err:
        raise _error(path, err) from err
    return dir_fd  # O_PATH, checked to be a directory


def create_file(root_fd: int, path: str, mode: int = 0o644) -> int:
    """Create ``path`` inside the root as an empty file if it is missing (a file mount point).

    Missing parents are created as by ``mkdir_all``; an existing entry is kept as it is
    (never truncated, never opened for I/O) and a symlink is followed inside the root.
    Returns an ``O_PATH`` fd of the entry.
    """
    _check_path(path)
    fast = _try_open_existing(root_fd, path, os.O_PATH | os.O_CLOEXEC)
    if fast is not None:
        return fast
    try:
        dir_fd, name = _walk(root_fd, path, create_mode=0o755, follow_last=True, whole=False)
        try:
            return _create_entry(dir_fd, name, mode)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise _error(path, err) from err


def _create_entry(dir_fd: int, name: str, mode: int) -> int:
    try:
        # mknodat(S_IFREG) creates like O_CREAT|O_EXCL but opens nothing (FIFOs, devices).
        os.mknod(name, stat.S_IFREG | (mode & 0o7777), dir_fd=dir_fd)
    except FileExistsError:
        pass  # lost a race to another creator, or a symlink appeared: opened below
    return os.open(name, _O_PATH_NOFOLLOW, dir_fd=dir_fd)


def _openat2_in_root(root_fd: int, path: str, flags: int, mode: int) -> int | None:
    """openat2 in the root; None when the kernel or a seccomp filter refuses the call."""
    if not (flags & os.O_CREAT or (flags & os.O_TMPFILE) == os.O_TMPFILE):
        mode = 0  # openat2 rejects a mode it would not use
    for _ in range(_EAGAIN_RETRIES):
        try:
            return syscalls.openat2(root_fd, path, flags, mode, _RESOLVE)
        except OSError as err:
            if err.errno in (errno.ENOSYS, errno.EPERM):
                return None  # the walk gives the real answer (EPERM may be genuine)
            if err.errno != errno.EAGAIN:  # a rename or mount raced a ".."
                raise
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def _try_open_existing(root_fd: int, path: str, flags: int) -> int | None:
    try:
        return _openat2_in_root(root_fd, path or "/", flags, 0)
    except OSError:
        return None  # missing or odd: the walk creates it or reports why


def _open_walk(root_fd: int, path: str, flags: int, mode: int) -> int:
    """The fallback: resolve ``path`` component by component, then open the last one."""
    must_dir = _is_dir_form(path)
    creating = bool(flags & os.O_CREAT)
    if must_dir and creating:
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    exclusive = creating and bool(flags & os.O_EXCL)
    follow = must_dir or not (flags & os.O_NOFOLLOW or exclusive)
    dir_fd, name = _walk(root_fd, path, create_mode=None, follow_last=follow, whole=False)
    if must_dir:
        flags |= os.O_DIRECTORY
    try:
        return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def _walk(
    root_fd: int, path: str, *, create_mode: int | None, follow_last: bool, whole: bool
) -> tuple[int, str]:
    """Resolve ``path`` inside the root; returns (owned dir fd, last name).

    With ``whole`` every component must be a directory and the name is ``"."``.
    ``create_mode`` creates missing directories. ``..`` pops our own stack of fds, so
    it can neither leave the root nor be raced by a rename.
    """
    stack: list[int] = []  # owned fds below root_fd
    parts = _components(path)
    hops = 0
    try:
        while parts:
            part = parts.pop()
            if part == "..":
                if stack:
                    os.close(stack.pop())
                continue
            dir_fd = stack[-1] if stack else root_fd
            last = not parts
            if last and not whole and not follow_last:
                return _own(dir_fd, stack), part
            fd = _open_component(dir_fd, part, None if last and not whole else create_mode)
            if fd is None:
                if last and not whole:  # the caller opens or creates it
                    return _own(dir_fd, stack), part
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                target = _read_link(fd, path, hops)
                if target.startswith("/"):
                    _close_all(stack)
                parts.extend(_components(target))
            elif stat.S_ISDIR(st.st_mode):
                stack.append(fd)
                continue
            elif last and not whole:
                os.close(fd)
                return _own(dir_fd, stack), part
            else:
                os.close(fd)
                raise InvalidArgument(f"{path}: {part} is not a directory")
        return _own(stack[-1] if stack else root_fd, stack), "."
    finally:
        _close_all(stack)


def _open_component(dir_fd: int, name: str, create_mode: int | None) -> int | None:
    """O_PATH|O_NOFOLLOW fd of ``name``, creating a missing directory with ``create_mode``.

    None when ``name`` is missing and ``create_mode`` is None.
    """
    try:
        return os.open(name, _O_PATH_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        if create_mode is None:
            return None
    try:
        os.mkdir(name, create_mode, dir_fd=dir_fd)
    except FileExistsError:
        pass  # raced with another creator: use whatever is there now
    return os.open(name, _O_PATH_NOFOLLOW, dir_fd=dir_fd)


def _read_link(fd: int, path: str, hops: int) -> str:
    try:
        if hops > _KERNEL_MAX_SYMLINKS:
            raise InvalidArgument(f"{path}: too many levels of symbolic links")
        return os.readlink("", dir_fd=fd)
    finally:
        os.close(fd)


def _own(dir_fd: int, stack: list[int]) -> int:
    """Hand the directory fd to the caller: take it off the stack, or re-open the root."""
    if stack and stack[-1] == dir_fd:
        return stack.pop()
    return os.open(".", _O_PATH_DIR, dir_fd=dir_fd)


def _close_all(stack: list[int]) -> None:
    while stack:
        os.close(stack.pop())


def _components(path: str) -> list[str]:
    """The components to resolve, reversed so that ``pop()`` yields the next one."""
    return [p for p in reversed(path.split("/")) if p and p != "."]


def _is_dir_form(path: str) -> bool:
    """True when the kernel would require a directory: a trailing ``/``, ``.`` or ``..``."""
    tail = path.rsplit("/", 1)[-1]
    return path != "" and tail in ("", ".", "..")


def _check_path(path: str) -> None:
    if "\0" in path:
        raise InvalidArgument(f"{path!r}: path contains a nul byte")


def _clean_root(root: str) -> str:
    root = os.path.normpath(root)
    return "/" + root.lstrip("/") if root.startswith("/") else root


def _join(root: str, parts: list[str]) -> str:
    if not parts:
        return root
    return ("" if root == "/" else root) + "/" + "/".join(parts)


def _error(path: str, err: OSError) -> CapsaError:
    code = err.errno or 0
    kind = _ERRNO_KINDS.get(code, Internal)
    return kind(f"{path}: {os.strerror(code).lower()}")
