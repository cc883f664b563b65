"""Neutral container spec + image config -> OCI runtime config, with Docker's defaults.

Docker's secure defaults: its default capability set, its seccomp profile, masked and
read-only /proc and /sys paths, a private /dev with the standard nodes; ``privileged``
lifts them. Everything that needs the container's files (the user's uid from
/etc/passwd, volume sources) is resolved by the caller and passed in ``Inputs``.
"""

from __future__ import annotations

import os
import signal

from capsa.engine.containers import kernel_limits
from capsa.engine.containers.types import ContainerSpec, ThrottleSpec
from capsa.errors import InvalidArgument
from capsa.linux.capabilities import CAPABILITIES, DOCKER_DEFAULT_CAPS, canonical
from capsa.oci import runtime_spec as oci
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.oci.image_spec import ImageConfig

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/sbin/docker-init"
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@record
class Inputs:
    """What the engine resolved for this container before generating its config."""

    container_id: str
    rootfs: str
    image: ImageConfig
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    mounts: list[oci.Mount] = field(default_factory=list)  # volumes, binds, tmpfs, /etc files
    namespace_paths: dict[str, str] = field(default_factory=dict)  # container:<id> modes
    home: str = "/root"  # the user's home from the image's /etc/passwd
    init_binary: str = ""  # host path of tini, bind-mounted at INIT_PATH with --init
    cgroups_path: str = ""
    hostname: str = ""


def command_line(spec: ContainerSpec, image: ImageConfig) -> list[str]:
    """Docker's rule: --entrypoint replaces the image's and resets its CMD."""
    cfg = image.config
    image_ep = list((cfg.entrypoint if cfg else None) or [])
    image_cmd = list((cfg.cmd if cfg else None) or [])
    if spec.entrypoint is not None:
        entrypoint = [a for a in spec.entrypoint if a != ""]
        cmd = list(spec.command or [])
    else:
        entrypoint = image_ep
        cmd = list(spec.command) if spec.command is not None else image_cmd
    args = entrypoint + cmd
    if not args:
        raise InvalidArgument("no command specified")
    return args


def environment(
    spec: ContainerSpec, image: ImageConfig, hostname: str, home: str = "/root"
) -> list[str]:
    merged: dict[str, str] = {}
    for item in [
        f"PATH={DEFAULT_PATH}",
        f"HOSTNAME={hostname}",
        f"HOME={home}",
        *((image.config.env if image.config else None) or []),
        *(["TERM=xterm"] if spec.tty else []),
        *spec.env,
    ]:
        key, _, value = item.partition("=")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def host_capabilities() -> set[str]:
    """What this process may grant (its bounding set): root here lacks CAP_SYS_RESOURCE."""
    from capsa.linux.capabilities import current, names

    return set(names(current().bounding))


def capabilities(spec: ContainerSpec) -> list[str]:
    if spec.privileged:
        return sorted(host_capabilities() & set(CAPABILITIES), key=CAPABILITIES.__getitem__)
    caps = set(DOCKER_DEFAULT_CAPS)
    adds = [c.upper() for c in spec.cap_add]
    drops = [c.upper() for c in spec.cap_drop]
    if "ALL" in drops:
        caps.clear()
    if "ALL" in adds:
        caps = set(CAPABILITIES)
    caps |= {canonical(c) for c in adds if c != "ALL"}
    caps -= {canonical(c) for c in drops if c != "ALL"}
    if "ALL" in adds:
        caps &= host_capabilities()
    return sorted(caps, key=CAPABILITIES.__getitem__)


def stop_signal(spec: ContainerSpec, image: ImageConfig) -> int:
    from capsa.signames import signal_number

    name = spec.stop_signal or ((image.config.stop_signal if image.config else None) or "")
    return signal_number(name) if name else int(signal.SIGTERM)


# sysctls that live in a namespace the container owns (Docker's list); others would
# change the host
_IPC_SYSCTLS = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)


def check_sysctls(spec: ContainerSpec) -> None:
    for key in spec.sysctls:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if spec.ipc_mode == "host":
                raise InvalidArgument(f"sysctl '{key}' is not allowed in host IPC mode")
            continue
        if key.startswith("net."):
            if spec.network_mode == "host":
                raise InvalidArgument(f"sysctl '{key}' is not allowed in host network mode")
            continue
        if key in ("kernel.domainname", "kernel.hostname") and spec.uts_mode != "host":
            continue
        raise InvalidArgument(
            f"sysctl '{key}' is not allowed: it is not namespaced (it would change the host)"
        )


def check_modes(spec: ContainerSpec) -> None:
    """What the kernel would refuse at start: --pid/--ipc/--uts/--cgroupns values Docker
    accepts, the hostname and domain name, the sizes of the command line and environment
    given, and the stop signal. No ``--cgroupns`` takes the host's default, recorded."""
    kernel_limits.check_uts_name("hostname", spec.hostname)
    kernel_limits.check_uts_name("domainname", spec.domainname)
    given = [*(spec.entrypoint or []), *(spec.command or [])]
    kernel_limits.check_exec_strings(given, spec.env, kernel_limits.exec_limit(spec.ulimits))
    for flag, value, allowed in (
        ("pid", spec.pid_mode, ("", "host", "private")),
        ("ipc", spec.ipc_mode, ("", "host", "private", "shareable", "none")),
        ("uts", spec.uts_mode, ("", "host", "private")),
    ):
        if value not in allowed and not value.startswith("container:"):
            raise InvalidArgument(f"invalid {flag.upper()} mode: {value}")
    if spec.cgroupns_mode not in ("", "host", "private"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {spec.cgroupns_mode}")
    spec.cgroupns_mode = spec.cgroupns_mode or default_cgroupns()
    if spec.stop_signal:
        from capsa.signames import signal_number

        signal_number(spec.stop_signal)


def default_cgroupns(unified_marker: str = "/sys/fs/cgroup/cgroup.controllers") -> str:
    """Docker's and podman's default: a cgroup namespace of its own on a cgroup v2 host,
    the host's on v1 (hybrid included, as on our machines)."""
    return "private" if os.path.exists(unified_marker) else "host"


def _namespaces(spec: ContainerSpec, paths: dict[str, str]) -> list[oci.Namespace]:
    modes = {
        "pid": spec.pid_mode,
        "ipc": spec.ipc_mode,
        "uts": spec.uts_mode,
        "network": spec.network_mode,
    }
    out = [oci.Namespace(type="mount")]
    for kind in ("pid", "ipc", "uts", "network"):
        mode = modes[kind]
        if mode == "host":
            continue
        if mode.startswith("container:") and kind not in paths:
            raise InvalidArgument(
                f"{kind} namespace of {mode.partition(':')[2]}: the container is not running"
            )
        out.append(oci.Namespace(type=kind, path=paths.get(kind)))
    if spec.cgroupns_mode != "host":  # "": a record made before --cgroupns, private
        out.append(oci.Namespace(type="cgroup"))
    return out


def _base_mounts(spec: ContainerSpec) -> list[oci.Mount]:
    shm = spec.shm_size or 64 * 1024 * 1024
    sys_opts = ["nosuid", "noexec", "nodev", "rw" if spec.privileged else "ro"]
    mounts = [
        oci.Mount(
            destination="/proc", type="proc", source="proc", options=["nosuid", "noexec", "nodev"]
        ),
        oci.Mount(
            destination="/dev",
            type="tmpfs",
            source="tmpfs",
            options=["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        oci.Mount(
            destination="/dev/pts",
            type="devpts",
            source="devpts",
            options=["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        oci.Mount(destination="/sys", type="sysfs", source="sysfs", options=sys_opts),
        oci.Mount(
            destination="/sys/fs/cgroup",
            type="cgroup",
            source="cgroup",
            options=["nosuid", "noexec", "nodev", "relatime", "rw" if spec.privileged else "ro"],
        ),
        oci.Mount(
            destination="/dev/mqueue",
            type="mqueue",
            source="mqueue",
            options=["nosuid", "noexec", "nodev"],
        ),
    ]
    if spec.ipc_mode not in ("host", "none") and not spec.ipc_mode.startswith("container:"):
        mounts.append(
            oci.Mount(
                destination="/dev/shm",
                type="tmpfs",
                source="shm",
                options=["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"],
            )
        )
    if spec.network_mode == "host":  # sysfs of the host's network namespace: bind it
        mounts[3] = oci.Mount(
            destination="/sys",
            type="bind",
            source="/sys",
            options=["rbind", "nosuid", "noexec", "nodev", "ro"],
        )
    return mounts


def rlimits(spec: ContainerSpec) -> list[oci.Rlimit] | None:
    """``--ulimit name=soft[:hard]`` (-1: unlimited), checked as Docker's go-units does."""
    from capsa.syntax.policies import parse_ulimit

    return [parse_ulimit(item) for item in spec.ulimits] or None


def _device_numbers(path: str) -> tuple[str, int, int]:
    import stat

    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        why = e.strerror if isinstance(e, OSError) else "not a valid path"
        raise InvalidArgument(
            f"error gathering device information while adding custom "
            f"device {path!r}: {(why or '').lower()}"
        ) from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"{path} is not a device node")
    return kind, os.major(st.st_rdev), os.minor(st.st_rdev)


def _throttles(items: list[ThrottleSpec]) -> list[oci.ThrottleDevice] | None:
    out = []
    for t in items:
        _, major, minor = _device_numbers(t.path)
        out.append(oci.ThrottleDevice(major=major, minor=minor, rate=t.rate))
    return out or None


def check_limits(spec: ContainerSpec) -> None:
    """Docker's ranges for the limits (``capsa.engine.containers.limits``)."""
    from capsa.engine.containers.limits import refusal

    why = refusal(spec)
    if why:
        raise InvalidArgument(why)


def resources(spec: ContainerSpec) -> oci.Resources:
    """The cgroup settings of ``spec``, refused first when out of Docker's ranges (create
    calls this to validate a spec)."""
    check_limits(spec)
    r = spec.resources
    res = oci.Resources(devices=[oci.DeviceCgroup(allow=spec.privileged, access="rwm")])
    if r.memory or r.memory_reservation or r.oom_kill_disable or r.memory_swap:
        swap = r.memory_swap or (r.memory * 2 if r.memory else None)
        res.memory = oci.MemoryResources(
            limit=r.memory or None,
            reservation=r.memory_reservation or None,
            swap=swap,
            disable_oom_killer=r.oom_kill_disable or None,
        )
    cpu = oci.CPUResources()
    if r.nano_cpus:
        cpu.period, cpu.quota = 100000, r.nano_cpus * 100000 // 1_000_000_000
    else:
        cpu.period, cpu.quota = r.cpu_period or None, r.cpu_quota or None
    cpu.shares = r.cpu_shares or None
    cpu.cpus, cpu.mems = r.cpuset_cpus or None, r.cpuset_mems or None
    if any(v is not None for v in (cpu.period, cpu.quota, cpu.shares, cpu.cpus, cpu.mems)):
        res.cpu = cpu
    if r.pids_limit:  # zero or less: unlimited, as Docker takes it
        res.pids = oci.PidsResources(limit=max(r.pids_limit, -1))
    blkio = oci.BlockIOResources(
        weight=r.blkio_weight or None,
        throttle_read_bps_device=_throttles(r.device_read_bps),
        throttle_write_bps_device=_throttles(r.device_write_bps),
        throttle_read_iops_device=_throttles(r.device_read_iops),
        throttle_write_iops_device=_throttles(r.device_write_iops),
    )
    if any(
        v is not None
        for v in (
            blkio.weight,
            blkio.throttle_read_bps_device,
            blkio.throttle_write_bps_device,
            blkio.throttle_read_iops_device,
            blkio.throttle_write_iops_device,
        )
    ):
        res.block_io = blkio
    return res


def host_devices() -> list[oci.Device]:
    """--privileged: every device node of the host's /dev (not pts/shm/mqueue)."""
    import stat

    out = []
    for base, dirs, files in os.walk("/dev"):
        dirs[:] = [
            d
            for d in dirs
            if os.path.join(base, d) not in ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd")
        ]
        for name in files:
            path = os.path.join(base, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                if path in ("/dev/console", "/dev/ptmx", "/dev/tty"):
                    continue
                kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
                out.append(
                    oci.Device(
                        path=path,
                        type=kind,
                        major=os.major(st.st_rdev),
                        minor=os.minor(st.st_rdev),
                        file_mode=stat.S_IMODE(st.st_mode),
                        uid=st.st_uid,
                        gid=st.st_gid,
                    )
                )
    return out


def _devices(spec: ContainerSpec, res: oci.Resources) -> list[oci.Device]:
    out = host_devices() if spec.privileged else []
    for d in spec.devices:
        kind, major, minor = _device_numbers(d.host)
        out.append(
            oci.Device(
                path=d.container or d.host,
                type=kind,
                major=major,
                minor=minor,
                file_mode=0o666,
                uid=0,
                gid=0,
            )
        )
        assert res.devices is not None
        res.devices.append(
            oci.DeviceCgroup(
                allow=True, type=kind, major=major, minor=minor, access=d.permissions or "rwm"
            )
        )
    return out


def _seccomp(spec: ContainerSpec, caps: list[str]) -> oci.Seccomp | None:
    if spec.privileged or spec.seccomp == "unconfined":
        return None
    from capsa.oci.seccomp_default import default_profile

    if not spec.seccomp:
        return default_profile(set(caps))
    from capsa.engine.containers.seccomp_profile import parse_docker_profile

    return parse_docker_profile(spec.seccomp, set(caps))


def generate(spec: ContainerSpec, inputs: Inputs) -> oci.Spec:
    image = inputs.image
    hostname = inputs.hostname or inputs.container_id[:12]
    caps = capabilities(spec)
    res = resources(spec)
    devices = _devices(spec, res)
    args = command_line(spec, image)
    if spec.init:
        args = [INIT_PATH, "--", *args]
    env = environment(spec, image, hostname, inputs.home)
    kernel_limits.check_exec_strings(args, env, kernel_limits.exec_limit(spec.ulimits))
    process = oci.Process(
        args=args,
        env=env,
        cwd=spec.workdir or ((image.config.working_dir if image.config else None) or "/"),
        terminal=spec.tty,
        user=oci.User(
            uid=inputs.uid, gid=inputs.gid, additional_gids=inputs.additional_gids or None
        ),
        capabilities=oci.Capabilities(bounding=caps, effective=caps, permitted=caps),
        rlimits=rlimits(spec),
        no_new_privileges=spec.no_new_privileges or None,
        oom_score_adj=spec.oom_score_adj,
    )
    mounts = _base_mounts(spec) + list(inputs.mounts)
    if spec.init and inputs.init_binary:
        mounts.append(
            oci.Mount(
                destination=INIT_PATH,
                type="bind",
                source=inputs.init_binary,
                options=["rbind", "ro", "nosuid", "nodev"],
            )
        )
    linux = oci.Linux(
        namespaces=_namespaces(spec, inputs.namespace_paths),
        devices=devices or None,
        cgroups_path=inputs.cgroups_path or f"/capsa-{inputs.container_id}",
        resources=res,
        seccomp=_seccomp(spec, caps),
        sysctl=dict(spec.sysctls) or None,
        masked_paths=None if spec.privileged else list(MASKED_PATHS),
        readonly_paths=None if spec.privileged else list(READONLY_PATHS),
    )
    return oci.Spec(
        root=oci.Root(path=inputs.rootfs, readonly=spec.read_only or None),
        mounts=mounts,
        process=process,
        hostname=None if spec.uts_mode == "host" else hostname,
        domainname=spec.domainname or None,
        annotations=dict(spec.annotations) or None,
        linux=linux,
    )
