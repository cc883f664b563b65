"""The records of ``capsa explain``: one per section, gathered in an ``Explanation``.

Each section puts the container's init next to the host's view; ``status`` words and
seccomp mode names are the vocabulary the builders and the CLI share.
"""

from __future__ import annotations

from capsa.record import field, record

NAMESPACES = ("pid", "net", "mnt", "ipc", "uts", "user", "cgroup", "time")
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}
SHARED, OWN, UNKNOWN, STOPPED = "shared with host", "own", "unknown", "not running"


@record
class Namespace:
    kind: str  # pid, net, mnt, ipc, uts, user, cgroup, time
    container: int | None  # inode of /proc/<pid>/ns/<kind>
    host: int | None
    status: str  # own | shared with host | unknown | not running
    asked: str = ""  # from the config: new | host | join <path>


@record
class Limit:
    name: str  # in spec terms, e.g. memory.limit
    file: str  # the cgroup file holding it ("" when not running)
    asked: str
    in_force: str | None
    ok: bool


@record
class CgroupDir:
    hierarchy: str  # memory, cpu,cpuacct, unified, "" (v2 root)
    fstype: str
    host_path: str
    member: bool | None = None  # the init is in this cgroup (None: not running)


@record
class Usage:
    memory: int | None = None
    memory_max: int | None = None
    memory_limit: int | None = None  # None: unlimited
    pids: int | None = None
    pids_limit: int | None = None
    cpu_ns: int | None = None
    oom_kills: int | None = None


@record
class CgroupReport:
    version: int
    path: str
    dirs: list[CgroupDir] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the host cannot enforce
    usage: Usage | None = None


@record
class CapSet:
    name: str  # effective, permitted, bounding, inheritable, ambient
    container: list[str]
    host: list[str]


@record
class CapabilityReport:
    sets: list[CapSet]
    dropped: list[str]  # in Docker's default set, not in the container's bounding set
    added: list[str]  # in the container's bounding set, not in Docker's default
    not_granted: list[str]  # the kernel's capabilities the container cannot ever gain
    kernel_total: int


@record
class SeccompReport:
    mode: int | None  # /proc/<pid>/status Seccomp: 0 disabled, 1 strict, 2 filter
    mode_name: str
    filters: int | None
    host_mode: int | None
    host_mode_name: str
    profile: str  # default | unconfined | custom
    default_action: str = ""
    rules: int = 0
    syscalls: int = 0
    no_new_privs: bool | None = None
    host_no_new_privs: bool | None = None
    no_new_privs_asked: bool = False


@record
class MountRow:
    target: str
    fstype: str
    source: str  # host path for binds and volumes, else the filesystem's source
    mode: str  # ro | rw
    kind: str  # root proc sys dev cgroup masked readonly volume bind tmpfs etc other
    detail: str = ""


@record
class MountReport:
    mounted: bool  # rows read from /proc/<pid>/mountinfo (else from the config)
    rows: list[MountRow] = field(default_factory=list)
    masked_absent: list[str] = field(default_factory=list)  # asked, not present here
    readonly_absent: list[str] = field(default_factory=list)


@record
class Layer:
    index: int
    chain_id: str
    diff_id: str
    directory: str
    size: int | None
    created_by: str = ""


@record
class RootfsReport:
    driver: str
    readonly: bool
    layers: list[Layer] = field(default_factory=list)
    upper: str = ""
    upper_size: int | None = None


@record
class UserReport:
    uid: int | None
    gid: int | None
    name: str = ""
    groups: list[int] = field(default_factory=list)
    host_uid: int | None = None
    host_gid: int | None = None
    uid_map: list[str] = field(default_factory=list)
    gid_map: list[str] = field(default_factory=list)
    asked: str = ""  # --user as given, or the config's uid:gid


@record
class Explanation:
    id: str
    name: str
    image: str
    image_id: str
    state: str
    pid: int
    running: bool
    host: str  # whose view stands for the host: "pid 1" or "this process (pid N)"
    config_source: str  # bundle (the config it was started with) | generated | none
    notes: list[str] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    cgroup: CgroupReport | None = None
    capabilities: CapabilityReport | None = None
    seccomp: SeccompReport | None = None
    mounts: MountReport | None = None
    rootfs: RootfsReport | None = None
    user: UserReport | None = None
