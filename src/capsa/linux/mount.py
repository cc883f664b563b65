"""Mount containerd-style ``Mount`` values (overlay snapshots, binds) onto a target.

Overlay goes through the new mount API: ``fsopen("overlay")``, one ``fsconfig``
``lowerdir+`` call per layer, ``fsmount`` and ``move_mount``. Each layer path is its own
parameter, so an image with hundreds of layers never meets the one-page limit of
mount(2)'s data string. Kernels without ``fsopen`` or ``lowerdir+`` (before 6.8) get
mount(2) with the layers spelt relative to an fd of their common parent
(``/proc/self/fd/N/<rel>``): as short as a ``chdir`` would make them, without changing
the working directory of every thread of the process.
"""

from __future__ import annotations

import ctypes
import errno
import os

from capsa.errors import (
    CapsaError,
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from capsa.linux import syscalls
from capsa.linux.safepath import proc_fd_path
from capsa.record import field, record

_SYS_MOVE_MOUNT = 429  # the new mount API has one number on every architecture
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
FSOPEN_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100
MOUNT_DATA_LIMIT = 4096  # mount(2) copies one page of options

# option -> (mount(2) flag, fsmount MOUNT_ATTR_* flag)
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (syscalls.MS_RDONLY, 0x1),
    "nosuid": (syscalls.MS_NOSUID, 0x2),
    "nodev": (syscalls.MS_NODEV, 0x4),
    "noexec": (syscalls.MS_NOEXEC, 0x8),
    "noatime": (syscalls.MS_NOATIME, 0x10),
    "nodiratime": (syscalls.MS_NODIRATIME, 0x80),
}
_IGNORED = frozenset({"rw", "bind", "rbind", "private", "rprivate", "slave", "rslave"})
_ERRNO_KINDS: dict[int, type[CapsaError]] = {
    errno.ENOENT: NotFound,
    errno.ENOTDIR: InvalidArgument,
    errno.EINVAL: InvalidArgument,
    errno.EPERM: PermissionDenied,
    errno.EACCES: PermissionDenied,
    errno.ENODEV: Unavailable,
    errno.EBUSY: Conflict,
}

_libc = ctypes.CDLL(None, use_errno=True)


@record
class Mount:
    """A mount to make, as containerd's snapshotters return them."""

    type: str
    source: str
    options: list[str] = field(default_factory=list)


def mount_all(mounts: list[Mount], target: str) -> None:
    """Mount each of ``mounts`` on ``target`` in order; all or nothing."""
    done = 0
    try:
        for m in mounts:
            _mount_one(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            try:
                syscalls.umount2(target, syscalls.MNT_DETACH)
            except OSError:
                pass
        raise


def unmount(target: str, detach: bool = False) -> None:
    flags = syscalls.UMOUNT_NOFOLLOW | (syscalls.MNT_DETACH if detach else 0)
    try:
        syscalls.umount2(target, flags)
    except OSError as err:
        if err.errno == errno.EINVAL:
            raise InvalidArgument(f"{target}: not a mount point") from None
        raise _error(f"unmount {target}", err) from err


def lowerdir_option(dirs: list[str]) -> str:
    """``lowerdir=`` for ``dirs`` given highest layer first (``:`` and ``\\`` escaped)."""
    escaped = (d.replace("\\", "\\\\").replace(":", "\\:") for d in dirs)
    return "lowerdir=" + ":".join(escaped)


def split_lowerdir(value: str) -> list[str]:
    """The directories of a ``lowerdir`` value (the inverse of ``lowerdir_option``)."""
    dirs: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == ":":
            dirs.append("".join(current))
            current = []
        else:
            current.append(ch)
    dirs.append("".join(current))
    return [d for d in dirs if d]


def _mount_one(m: Mount, target: str) -> None:
    if m.type == "overlay":
        _mount_overlay(m, target)
    elif m.type == "bind" or "bind" in m.options or "rbind" in m.options:
        _mount_bind(m, target)
    else:
        flags, data = _legacy_flags(m.options)
        try:
            syscalls.mount(m.source, target, m.type, flags, ",".join(data) or None)
        except OSError as err:
            raise _error(f"mount {m.type} on {target}", err) from err


def _mount_bind(m: Mount, target: str) -> None:
    flags, _ = _legacy_flags(m.options)
    rec = syscalls.MS_REC if "rbind" in m.options else 0
    what = f"bind mount {m.source} on {target}"
    try:
        syscalls.mount(m.source, target, None, syscalls.MS_BIND | rec)
    except OSError as err:
        raise _error(what, err) from err
    if flags:  # a bind mount ignores flags until remounted
        try:
            syscalls.mount(None, target, None, syscalls.MS_BIND | syscalls.MS_REMOUNT | flags)
        except OSError as err:
            syscalls.umount2(target, syscalls.MNT_DETACH)
            raise _error(what, err) from err


def _legacy_flags(options: list[str]) -> tuple[int, list[str]]:
    flags, data = 0, []
    for opt in options:
        if opt in _FLAGS:
            flags |= _FLAGS[opt][0]
        elif opt not in _IGNORED:
            data.append(opt)
    return flags, data


class _Overlay:
    """An overlay mount's options, split into layers, dirs, flags and the rest."""

    def __init__(self, options: list[str]) -> None:
        self.lowers: list[str] = []
        self.upper = self.work = ""
        self.attrs = self.flags = 0
        self.params: list[tuple[str, str | None]] = []
        for opt in options:
            key, sep, value = opt.partition("=")
            if key == "lowerdir":
                self.lowers = split_lowerdir(value)
            elif key == "upperdir":
                self.upper = value
            elif key == "workdir":
                self.work = value
            elif opt in _FLAGS:
                self.flags |= _FLAGS[opt][0]
                self.attrs |= _FLAGS[opt][1]
            elif opt not in _IGNORED:
                self.params.append((key, value if sep else None))
        if not self.lowers:
            raise InvalidArgument("overlay mount without lowerdir")


def _mount_overlay(m: Mount, target: str) -> None:
    ovl = _Overlay(m.options)
    try:
        fs_fd = _fsopen("overlay")
    except OSError as err:
        if err.errno not in (errno.ENOSYS, errno.EPERM):
            raise _error(f"mount overlay on {target}", err) from err
        _mount_overlay_legacy(ovl, target)
        return
    try:
        if not _overlay_new_api(fs_fd, ovl, target):
            _mount_overlay_legacy(ovl, target)
    finally:
        os.close(fs_fd)


def _overlay_new_api(fs_fd: int, ovl: _Overlay, target: str) -> bool:
    """Mount through ``fs_fd``; False when the kernel lacks ``lowerdir+`` (before 6.8)."""
    steps: list[tuple[int, str | None, str | None]] = [
        (FSCONFIG_SET_STRING, "source", "overlay"),
        *((FSCONFIG_SET_STRING, "lowerdir+", lower) for lower in ovl.lowers),
        *(
            (FSCONFIG_SET_STRING, k, v)
            for k, v in (("upperdir", ovl.upper), ("workdir", ovl.work))
            if v
        ),
        *((FSCONFIG_SET_FLAG if v is None else FSCONFIG_SET_STRING, k, v) for k, v in ovl.params),
        (FSCONFIG_CMD_CREATE, None, None),
    ]
    for cmd, key, value in steps:
        try:
            _fsconfig(fs_fd, cmd, key, value)
        except OSError as err:
            log = _fs_log(fs_fd)
            if key == "lowerdir+" and err.errno == errno.EINVAL and "nknown parameter" in log:
                return False
            detail = log or (f"{key} {value}" if key else "")
            raise _error(f"mount overlay on {target}", err, detail) from err
    try:
        mnt_fd = _fsmount(fs_fd, ovl.attrs)
        try:
            _move_mount(mnt_fd, target)
        finally:
            os.close(mnt_fd)
    except OSError as err:
        raise _error(f"mount overlay on {target}", err, _fs_log(fs_fd)) from err
    return True


def _mount_overlay_legacy(ovl: _Overlay, target: str) -> None:
    """mount(2) with every directory spelt relative to an fd of their common parent."""
    dirs = [d for d in (*ovl.lowers, ovl.upper, ovl.work) if d]
    parent = os.path.commonpath([os.path.abspath(d) for d in dirs])
    parent_fd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        prefix = proc_fd_path(parent_fd)

        def short(d: str) -> str:
            return os.path.join(prefix, os.path.relpath(os.path.abspath(d), parent))

        opts = [lowerdir_option([short(d) for d in ovl.lowers])]
        dirs_opts = (("upperdir", ovl.upper), ("workdir", ovl.work))
        opts += [f"{k}={short(v)}" for k, v in dirs_opts if v]
        opts += [k if v is None else f"{k}={v}" for k, v in ovl.params]
        data = ",".join(opts)
        if len(data) >= MOUNT_DATA_LIMIT:
            raise InvalidArgument(
                f"overlay on {target}: {len(ovl.lowers)} layers exceed the "
                f"mount option limit on this kernel"
            )
        try:
            syscalls.mount("overlay", target, "overlay", ovl.flags, data)
        except OSError as err:
            raise _error(f"mount overlay on {target}", err) from err
    finally:
        os.close(parent_fd)


def _check(ret: int) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _fsopen(fstype: str) -> int:
    return _check(
        _libc.syscall(_SYS_FSOPEN, ctypes.c_char_p(fstype.encode()), ctypes.c_uint(FSOPEN_CLOEXEC))
    )


def _fsconfig(fd: int, cmd: int, key: str | None, value: str | None) -> None:
    raw_key = None if key is None else os.fsencode(key)
    raw_value = None if value is None else os.fsencode(value)
    _check(
        _libc.syscall(
            _SYS_FSCONFIG,
            ctypes.c_int(fd),
            ctypes.c_uint(cmd),
            ctypes.c_char_p(raw_key),
            ctypes.c_char_p(raw_value),
            ctypes.c_int(0),
        )
    )


def _fsmount(fd: int, attrs: int) -> int:
    return _check(
        _libc.syscall(
            _SYS_FSMOUNT, ctypes.c_int(fd), ctypes.c_uint(FSMOUNT_CLOEXEC), ctypes.c_uint(attrs)
        )
    )


def _move_mount(mnt_fd: int, target: str) -> None:
    _check(
        _libc.syscall(
            _SYS_MOVE_MOUNT,
            ctypes.c_int(mnt_fd),
            ctypes.c_char_p(b""),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(os.fsencode(target)),
            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
        )
    )


def _fs_log(fs_fd: int) -> str:
    """The messages the filesystem logged on its context fd ("e overlayfs: ...")."""
    lines = []
    for _ in range(16):
        try:
            msg = os.read(fs_fd, 1024)
        except OSError:
            break  # ENODATA: no more messages
        lines.append(msg.decode(errors="replace").strip().removeprefix("e ").strip())
    return "; ".join(line for line in lines if line)


def _error(what: str, err: OSError, detail: str = "") -> CapsaError:
    code = err.errno or 0
    reason = os.strerror(code).lower()
    suffix = f" ({detail})" if detail else ""
    return _ERRNO_KINDS.get(code, Internal)(f"{what}: {reason}{suffix}")
