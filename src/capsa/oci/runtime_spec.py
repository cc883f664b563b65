"""OCI runtime-spec (config.json) as typed dataclasses.

Field names are snake_case; ``capsa.oci.codec`` maps them to the spec's camelCase.
Optional sections are ``None`` when absent so a round trip writes back only what was
given. Only the Linux platform is modelled.
"""

from __future__ import annotations

from capsa import fastjson
from capsa.errors import InvalidArgument
from capsa.oci.codec import from_dict, to_dict
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.2.0"

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def _json(name: str) -> Any:
    return field(default=None, json=name)


@record
class Root:
    path: str = "rootfs"
    readonly: bool | None = None


@record
class Mount:
    destination: str = ""
    type: str | None = None
    source: str | None = None
    options: list[str] | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None


@record
class IDMapping:
    container_id: int = _json("containerID")
    host_id: int = _json("hostID")
    size: int = 0


@record
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] | None = None
    username: str | None = None


@record
class ConsoleSize:
    height: int = 0
    width: int = 0


@record
class Capabilities:
    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


@record
class Rlimit:
    type: str = ""
    hard: int = 0
    soft: int = 0


@record
class Process:
    args: list[str] | None = None
    cwd: str = "/"
    env: list[str] | None = None
    terminal: bool | None = None
    console_size: ConsoleSize | None = None
    user: User = field(default_factory=User)
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] | None = None
    no_new_privileges: bool | None = None
    oom_score_adj: int | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    command_line: str | None = None


@record
class Hook:
    path: str = ""
    args: list[str] | None = None
    env: list[str] | None = None
    timeout: int | None = None


@record
class Hooks:
    prestart: list[Hook] | None = None
    create_runtime: list[Hook] | None = None
    create_container: list[Hook] | None = None
    start_container: list[Hook] | None = None
    poststart: list[Hook] | None = None
    poststop: list[Hook] | None = None


@record
class Namespace:
    type: str = ""
    path: str | None = None


@record
class Device:
    path: str = ""
    type: str = "c"
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@record
class DeviceCgroup:
    allow: bool = False
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


@record
class MemoryResources:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = _json("disableOOMKiller")
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


@record
class CPUResources:
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


@record
class PidsResources:
    limit: int = 0


@record
class WeightDevice:
    major: int = 0
    minor: int = 0
    weight: int | None = None
    leaf_weight: int | None = None


@record
class ThrottleDevice:
    major: int = 0
    minor: int = 0
    rate: int = 0


@record
class BlockIOResources:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: list[WeightDevice] | None = None
    throttle_read_bps_device: list[ThrottleDevice] | None = None
    throttle_write_bps_device: list[ThrottleDevice] | None = None
    throttle_read_iops_device: list[ThrottleDevice] | None = _json("throttleReadIOPSDevice")
    throttle_write_iops_device: list[ThrottleDevice] | None = _json("throttleWriteIOPSDevice")


@record
class HugepageLimit:
    page_size: str = ""
    limit: int = 0


@record
class NetworkPriority:
    name: str = ""
    priority: int = 0


@record
class NetworkResources:
    class_id: int | None = _json("classID")
    priorities: list[NetworkPriority] | None = None


@record
class Resources:
    devices: list[DeviceCgroup] | None = None
    memory: MemoryResources | None = None
    cpu: CPUResources | None = None
    pids: PidsResources | None = None
    block_io: BlockIOResources | None = _json("blockIO")
    hugepage_limits: list[HugepageLimit] | None = None
    network: NetworkResources | None = None
    unified: dict[str, str] | None = None


@record
class SeccompArg:
    index: int = 0
    value: int = 0
    value_two: int | None = None
    op: str = ""


@record
class SeccompSyscall:
    names: list[str] = field(default_factory=list)
    action: str = ""
    errno_ret: int | None = None
    args: list[SeccompArg] | None = None


@record
class Seccomp:
    default_action: str = "SCMP_ACT_ALLOW"
    default_errno_ret: int | None = None
    architectures: list[str] | None = None
    flags: list[str] | None = None
    listener_path: str | None = None
    syscalls: list[SeccompSyscall] | None = None


@record
class Linux:
    namespaces: list[Namespace] | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None
    devices: list[Device] | None = None
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: str | None = None
    seccomp: Seccomp | None = None
    sysctl: dict[str, str] | None = None
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    mount_label: str | None = None
    time_offsets: dict[str, dict[str, int]] | None = None
    personality: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces or []:
            if ns.type == kind:
                return ns
        return None


@record
class Spec:
    oci_version: str = OCI_VERSION
    root: Root | None = None
    mounts: list[Mount] | None = None
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] | None = None
    linux: Linux | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Spec:
        return from_dict(cls, data, "config")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = to_dict(self)
        return out


def load_spec(bundle: str) -> Spec:
    """Read and type-check ``<bundle>/config.json``."""
    path = f"{bundle.rstrip('/')}/config.json"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"no config.json in bundle {bundle}") from None
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None
    try:
        data = fastjson.loads(raw)
    except ValueError as e:  # bad JSON, or bytes that are not UTF-8
        raise InvalidArgument(f"{path}: invalid JSON: {e}") from None
    except RecursionError:  # [[[[... a few thousand deep
        raise InvalidArgument(f"{path}: invalid JSON: nested too deeply") from None
    return Spec.from_json(data)
