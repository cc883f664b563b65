"""The default runtime spec, as ``runc spec`` (and ``runc spec --rootless``) writes it.

Pure data: the only host facts read are the caller's uid and gid, and only for the
rootless variant's user-namespace mappings.
"""

from __future__ import annotations

import os

from capsa.oci.runtime_spec import (
    Capabilities,
    DeviceCgroup,
    IDMapping,
    Linux,
    Mount,
    Namespace,
    Process,
    Resources,
    Rlimit,
    Root,
    Spec,
    User,
)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPABILITIES = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
DEFAULT_HOSTNAME = "runc"

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

_NAMESPACES = ("pid", "network", "ipc", "uts", "mount")
_DEVPTS_OPTIONS = ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")
_RO_NODEV = ["nosuid", "noexec", "nodev", "ro"]


def default_spec(
    *, rootless: bool = False, args: list[str] | None = None, terminal: bool = True
) -> Spec:
    """A fresh spec equal to what ``runc spec [--rootless]`` prints."""
    return Spec(
        process=_process(args if args is not None else ["sh"], terminal),
        root=Root(path="rootfs", readonly=True),
        hostname=DEFAULT_HOSTNAME,
        mounts=_mounts(rootless),
        linux=_linux(rootless),
    )


def _process(args: list[str], terminal: bool) -> Process:
    caps = list(DEFAULT_CAPABILITIES)
    return Process(
        terminal=terminal,
        user=User(uid=0, gid=0),
        args=list(args),
        env=[DEFAULT_PATH, "TERM=xterm"],
        cwd="/",
        capabilities=Capabilities(
            bounding=list(caps), effective=list(caps), permitted=list(caps), ambient=list(caps)
        ),
        rlimits=[Rlimit(type="RLIMIT_NOFILE", hard=1024, soft=1024)],
        no_new_privileges=True,
    )


def _mounts(rootless: bool) -> list[Mount]:
    devpts = [o for o in _DEVPTS_OPTIONS if not (rootless and o.startswith("gid="))]
    if rootless:
        sysfs = Mount("/sys", "none", "/sys", ["rbind", *_RO_NODEV])
    else:
        sysfs = Mount("/sys", "sysfs", "sysfs", list(_RO_NODEV))
    return [
        Mount("/proc", "proc", "proc"),
        Mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount("/dev/pts", "devpts", "devpts", devpts),
        Mount(
            "/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
        ),
        Mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        sysfs,
        Mount(
            "/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]
        ),
    ]


def _linux(rootless: bool) -> Linux:
    linux = Linux(
        masked_paths=list(MASKED_PATHS),
        readonly_paths=list(READONLY_PATHS),
    )
    if not rootless:
        linux.namespaces = [Namespace(type=t) for t in _NAMESPACES]
        linux.resources = Resources(devices=[DeviceCgroup(allow=False, access="rwm")])
        return linux
    linux.namespaces = [Namespace(type=t) for t in _NAMESPACES if t != "network"]
    linux.namespaces.append(Namespace(type="user"))
    linux.uid_mappings = [IDMapping(container_id=0, host_id=os.getuid(), size=1)]
    linux.gid_mappings = [IDMapping(container_id=0, host_id=os.getgid(), size=1)]
    return linux
