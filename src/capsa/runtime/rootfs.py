"""The container's mount namespace: rootfs, spec mounts, /dev, pivot_root, masks.

Runs inside the container init, in its new mount namespace. Every mount target is
resolved inside the rootfs (``capsa.linux.safepath``) and mounted through the
``/proc/self/fd/N`` of an O_PATH handle, so a symlink in the image cannot redirect a
mount onto the host.
"""

from __future__ import annotations

import errno
import os
import stat

from capsa.errors import CapsaError, InvalidArgument, os_reason
from capsa.linux import safepath
from capsa.linux import syscalls as sc
from capsa.oci.runtime_spec import Device, Mount, Spec
from capsa.runtime import mountopts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.cgroups import CgroupManager

_LOCKABLE = (
    (os.ST_RDONLY, sc.MS_RDONLY),
    (os.ST_NOSUID, sc.MS_NOSUID),
    (os.ST_NODEV, sc.MS_NODEV),
    (os.ST_NOEXEC, sc.MS_NOEXEC),
    (os.ST_NOATIME, sc.MS_NOATIME),
    (os.ST_NODIRATIME, sc.MS_NODIRATIME),
    (os.ST_RELATIME, sc.MS_RELATIME),
)

DEFAULT_DEVICES = (
    Device(path="/dev/null", type="c", major=1, minor=3, file_mode=0o666, uid=0, gid=0),
    Device(path="/dev/zero", type="c", major=1, minor=5, file_mode=0o666, uid=0, gid=0),
    Device(path="/dev/full", type="c", major=1, minor=7, file_mode=0o666, uid=0, gid=0),
    Device(path="/dev/random", type="c", major=1, minor=8, file_mode=0o666, uid=0, gid=0),
    Device(path="/dev/urandom", type="c", major=1, minor=9, file_mode=0o666, uid=0, gid=0),
    Device(path="/dev/tty", type="c", major=5, minor=0, file_mode=0o666, uid=0, gid=0),
)

_DEV_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)


class RootfsBuilder:
    """Builds the container's filesystem view; one instance per container init."""

    def __init__(self, spec: Spec, rootfs: str, *, userns: bool, cgroup: CgroupManager | None):
        self.spec = spec
        self.rootfs = rootfs
        self.userns = userns
        self.cgroup = cgroup
        self.root_fd = -1
        # without a mount namespace of its own the container is in the runtime's: its
        # mounts are made there (under the rootfs) and it is chrooted, as runc does
        self.own_mount_ns = bool(spec.linux and spec.linux.namespace("mount"))

    # -- before pivot_root ------------------------------------------------

    def prepare(self) -> None:
        linux = self.spec.linux
        if self.own_mount_ns:
            self._prepare_namespace()
        self.root_fd = safepath.open_root(self.rootfs)
        for m in self.spec.mounts or []:
            self.mount_entry(m)
        if self._needs_dev():
            self._create_devices(DEFAULT_DEVICES)
            self._dev_links()
        linux_devices = linux.devices if linux else None
        if linux_devices:
            self._create_devices(linux_devices)
        cwd = self.spec.process.cwd if self.spec.process else "/"
        os.close(safepath.mkdir_all(self.root_fd, cwd or "/"))

    def _prepare_namespace(self) -> None:
        """The container's own mount namespace: propagation, and the rootfs as a mount
        point for pivot_root. Never done in the runtime's namespace (runc makes the
        host's ``/`` a slave there)."""
        linux = self.spec.linux
        prop = mountopts.PROPAGATION.get((linux.rootfs_propagation if linux else None) or "")
        sc.mount(None, "/", None, prop or (sc.MS_SLAVE | sc.MS_REC))
        self._make_parent_private()
        sc.mount(self.rootfs, self.rootfs, "bind", sc.MS_BIND | sc.MS_REC)

    def _make_parent_private(self) -> None:
        """pivot_root needs the new root's parent mount not to be shared."""
        best, shared = "", False
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                point = parts[4]
                inside = self.rootfs == point or self.rootfs.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, shared = point, any(p.startswith("shared:") for p in parts[6:])
        if best and shared:
            sc.mount(None, best, None, sc.MS_PRIVATE)

    def _needs_dev(self) -> bool:
        for m in self.spec.mounts or []:
            if os.path.normpath(m.destination) == "/dev":
                return not mountopts.parse(m.options).is_bind and m.type != "bind"
        return True

    def mount_entry(self, m: Mount) -> None:
        if not m.destination.startswith("/"):
            raise InvalidArgument(f"mount destination {m.destination!r} is not absolute")
        opts = mountopts.parse(m.options)
        kind = m.type or ("bind" if opts.is_bind else "")
        if kind == "bind" or opts.is_bind:
            self._bind(m, opts)
        elif kind == "cgroup":
            self._mount_cgroup(m, opts)
        else:
            self._mount_fs(m, kind, opts)

    def _target_fd(self, dest: str, is_dir: bool) -> int:
        if is_dir:
            return safepath.mkdir_all(self.root_fd, dest)
        return safepath.create_file(self.root_fd, dest)

    def _mount_fs(self, m: Mount, kind: str, opts: mountopts.MountOptions) -> None:
        if kind in ("proc", "sysfs"):
            self._require_plain_dir(kind, m.destination)
        fd = self._target_fd(m.destination, True)
        target = safepath.proc_fd_path(fd)
        bound_sys = False
        try:
            try:
                sc.mount(m.source or kind, target, kind, opts.flags, opts.data_str)
            except OSError as e:
                if kind == "sysfs" and e.errno in (errno.EPERM, errno.EACCES):
                    # no network namespace of our own (rootless): bind the host's /sys
                    sc.mount("/sys", target, None, sc.MS_BIND | sc.MS_REC)
                    bound_sys = True
                elif kind == "mqueue" and e.errno in (errno.EPERM, errno.EACCES):
                    sc.mount("/dev/mqueue", target, None, sc.MS_BIND | sc.MS_REC)
                else:
                    raise _mount_error(m, e) from None
        finally:
            os.close(fd)
        if bound_sys or opts.propagation:
            self._on_mounted(m.destination, opts.flags if bound_sys else 0, opts.propagation)

    def _require_plain_dir(self, kind: str, dest: str) -> None:
        """proc and sysfs go on a directory, never on what a symlink of the image points
        to (the destination's last component is not followed): as runc, refuse."""
        parent, name = os.path.split(os.path.normpath(dest))
        if not name:
            return
        try:
            fd = safepath.open_in_root(self.root_fd, parent, os.O_PATH | os.O_DIRECTORY)
        except CapsaError:
            return  # a missing parent: mkdir_all makes plain directories
        try:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        finally:
            os.close(fd)
        if not stat.S_ISDIR(mode):
            raise InvalidArgument(
                f'error mounting "{kind}" to rootfs at "{dest}": '
                f'filesystem "{kind}" must be mounted on ordinary directory'
            )

    def _bind(self, m: Mount, opts: mountopts.MountOptions) -> None:
        source = m.source or ""
        try:
            st = os.stat(source)
        except OSError as e:
            raise InvalidArgument(f"bind mount source {source!r}: {os_reason(e)}") from None
        fd = self._target_fd(m.destination, stat.S_ISDIR(st.st_mode))
        target = safepath.proc_fd_path(fd)
        try:
            try:
                sc.mount(source, target, None, sc.MS_BIND | (opts.flags & sc.MS_REC))
            except OSError as e:
                raise _mount_error(m, e) from None
        finally:
            os.close(fd)
        extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if extra or opts.propagation:
            self._on_mounted(m.destination, extra, opts.propagation)

    def _on_mounted(self, dest: str, remount_flags: int, propagation: list[int]) -> None:
        """Change a fresh mount: reopen ``dest`` so the handle names the new mount, not
        the directory underneath it."""
        fd = safepath.open_in_root(self.root_fd, dest, os.O_PATH)
        try:
            target = safepath.proc_fd_path(fd)
            if remount_flags:
                self._remount(target, remount_flags | sc.MS_BIND)
            for p in propagation:
                sc.mount(None, target, None, p)
        finally:
            os.close(fd)

    def _remount(self, target: str, flags: int) -> None:
        """Bind remount with ``flags``, keeping flags the kernel locked on the source."""
        flags = (flags | sc.MS_BIND | sc.MS_REMOUNT) & ~sc.MS_REC
        try:
            sc.mount(None, target, None, flags)
        except OSError as e:
            if e.errno != errno.EPERM:
                raise
            locked = os.statvfs(target).f_flag
            for st_flag, ms_flag in _LOCKABLE:
                if locked & st_flag:
                    flags |= ms_flag
            sc.mount(None, target, None, flags)

    def _mount_cgroup(self, m: Mount, opts: mountopts.MountOptions) -> None:
        if self.cgroup is None:
            return
        ro = opts.flags & sc.MS_RDONLY
        plan = self.cgroup.mount_plan()
        base_fd = self._target_fd(m.destination, True)
        try:
            if self.cgroup.version == 2 and len(plan) == 1:
                self._bind_cgroup_dir(plan[0].host_path, m.destination, ro)
                return
            sc.mount(
                "tmpfs",
                safepath.proc_fd_path(base_fd),
                "tmpfs",
                sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                "mode=755",
            )
        finally:
            os.close(base_fd)
        for entry in plan:
            dest = os.path.join(m.destination, entry.name)
            self._bind_cgroup_dir(entry.host_path, dest, ro)
            for link in entry.symlinks:
                self._symlink(entry.name, os.path.join(m.destination, link))
        if ro:
            fd = safepath.mkdir_all(self.root_fd, m.destination)
            try:
                self._remount(
                    safepath.proc_fd_path(fd),
                    sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                )
            finally:
                os.close(fd)

    def _bind_cgroup_dir(self, host_path: str, dest: str, ro: int) -> None:
        fd = safepath.mkdir_all(self.root_fd, dest)
        try:
            sc.mount(host_path, safepath.proc_fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(fd)
        flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | (sc.MS_RDONLY if ro else 0)
        self._on_mounted(dest, flags, [])

    def _symlink(self, target: str, link: str) -> None:
        parent_fd = safepath.mkdir_all(self.root_fd, os.path.dirname(link))
        try:
            os.symlink(target, os.path.basename(link), dir_fd=parent_fd)
        except FileExistsError:
            pass
        finally:
            os.close(parent_fd)

    def _create_devices(self, devices: list[Device] | tuple[Device, ...]) -> None:
        for dev in devices:
            self._create_device(dev)

    def _create_device(self, dev: Device) -> None:
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        if dev.type not in kinds:
            raise InvalidArgument(f"device {dev.path}: unknown type {dev.type!r}")
        if not dev.path.startswith("/dev/"):
            raise InvalidArgument(f"device {dev.path}: path must be under /dev")
        parent_fd = safepath.mkdir_all(self.root_fd, os.path.dirname(dev.path))
        name = os.path.basename(dev.path)
        mode = dev.file_mode if dev.file_mode is not None else 0o666
        try:
            try:
                os.unlink(name, dir_fd=parent_fd)
            except FileNotFoundError:
                pass
            if self.userns and dev.type != "p":
                self._bind_device(dev, parent_fd, name)
                return
            rdev = os.makedev(dev.major or 0, dev.minor or 0)
            os.mknod(name, mode=(mode & 0o7777) | kinds[dev.type], device=rdev, dir_fd=parent_fd)
            os.chown(name, dev.uid or 0, dev.gid or 0, dir_fd=parent_fd, follow_symlinks=False)
            os.chmod(name, mode & 0o7777, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)

    def _bind_device(self, dev: Device, parent_fd: int, name: str) -> None:
        """In a user namespace mknod is refused: bind the host's node instead."""
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=parent_fd))
        fd = safepath.open_in_root(self.root_fd, dev.path, os.O_PATH)
        try:
            sc.mount(dev.path, safepath.proc_fd_path(fd), None, sc.MS_BIND)
        finally:
            os.close(fd)

    def _dev_links(self) -> None:
        for target, link in _DEV_LINKS:
            self._symlink(target, link)
        if os.path.exists("/proc/kcore"):
            self._symlink("/proc/kcore", "/dev/core")

    # -- pivot --------------------------------------------------------------

    def pivot(self, no_pivot: bool = False) -> None:
        if not self.own_mount_ns:
            # the runtime's namespace: chroot only (pivot_root or MS_MOVE would change
            # the host's root)
            os.fchdir(self.root_fd)
            os.chroot(".")
            os.chdir("/")
        elif no_pivot:
            os.chdir(self.rootfs)
            sc.mount(self.rootfs, "/", None, sc.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
        else:
            old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fchdir(self.root_fd)
                sc.pivot_root(".", ".")
                os.fchdir(old)
                sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
                sc.umount2(".", sc.MNT_DETACH)
            finally:
                os.close(old)
            os.chdir("/")
        os.close(self.root_fd)
        self.root_fd = -1

    # -- after pivot ------------------------------------------------------------

    def finish(self) -> None:
        if not os.path.isdir("/proc/self/fd"):
            # the init reopens its exec fifo there: fail at create, not after start
            raise InvalidArgument("the container has no /proc: its config needs a proc mount")
        linux = self.spec.linux
        if linux:
            # sysctls first: /proc/sys becomes read-only with the readonly paths
            for key, value in (linux.sysctl or {}).items():
                _write_sysctl(key, value)
            for path in linux.readonly_paths or []:
                self._readonly(path)
            for path in linux.masked_paths or []:
                self._mask(path)
        # without a mount namespace "/" is a mount of the runtime's: left alone, as runc
        if self.spec.root and self.spec.root.readonly and self.own_mount_ns:
            self._remount("/", sc.MS_RDONLY)

    def _readonly(self, path: str) -> None:
        try:
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        except FileNotFoundError:
            return
        self._remount(path, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)

    def _mask(self, path: str) -> None:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
            else:
                sc.mount("/dev/null", path, None, sc.MS_BIND)
        except FileNotFoundError:
            return


def _write_sysctl(key: str, value: str) -> None:
    rel = key.replace(".", "/")
    if ".." in rel.split("/") or rel.startswith("/"):
        raise InvalidArgument(f"invalid sysctl {key!r}")
    try:
        with open(f"/proc/sys/{rel}", "w") as f:
            f.write(value)
    except FileNotFoundError:
        raise InvalidArgument(f"sysctl {key} does not exist") from None
    except OSError as e:
        raise InvalidArgument(f"cannot set sysctl {key}={value}: {os_reason(e)}") from None


def _mount_error(m: Mount, e: OSError) -> InvalidArgument:
    what = m.source or m.type or "mount"
    return InvalidArgument(f"cannot mount {what} on {m.destination}: {os_reason(e)}")
