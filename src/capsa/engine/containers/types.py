"""The container half of the engine protocol: the neutral spec, state, options, reports.

``ContainerSpec`` is what a user asks for (docker run's flags, compose's service
keys), independent of any runtime; ``capsa.engine.containers.specgen`` turns it into an OCI
config. ``ContainerRecord`` is what the engine keeps about a container.
"""

from __future__ import annotations

from capsa.engine.network.types import PortMapping
from capsa.errors import Conflict
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import Enum
    from typing import Any
else:
    from capsa.enums import Enum  # the standard one costs a cold ``ps`` ~3.5 ms


class State(Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


class Action(Enum):
    START = "start"
    STOP = "stop"
    KILL = "kill"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    EXEC = "exec"
    ATTACH = "attach"
    REMOVE = "remove"
    FORCE_REMOVE = "force remove"
    UPDATE = "update"
    RENAME = "rename"
    COMMIT = "commit"


_LIVE = frozenset({State.RUNNING, State.PAUSED, State.RESTARTING})
ALLOWED: dict[Action, frozenset[State]] = {
    Action.START: frozenset({State.CREATED, State.EXITED}),
    Action.STOP: frozenset(State),
    Action.KILL: frozenset({State.RUNNING, State.RESTARTING}),
    Action.PAUSE: frozenset({State.RUNNING}),
    Action.UNPAUSE: frozenset({State.PAUSED}),
    Action.EXEC: frozenset({State.RUNNING}),
    Action.ATTACH: frozenset({State.RUNNING, State.CREATED}),
    Action.REMOVE: frozenset({State.CREATED, State.EXITED, State.DEAD}),
    Action.FORCE_REMOVE: frozenset(State),
    Action.UPDATE: frozenset(State),
    Action.RENAME: frozenset(State),
    Action.COMMIT: frozenset(State),
}

_MESSAGES = {
    Action.KILL: "cannot kill container {name}: container {id} is not running",
    Action.PAUSE: "cannot pause container {name}: container {id} is not running",
    Action.UNPAUSE: "cannot unpause container {name}: container {id} is not paused",
    Action.UNPAUSE: "cannot unpause container {name}: container {id} is not paused",
    Action.EXEC: "container {id} is not running",
    Action.REMOVE: "cannot remove container {name}: container is {state}: stop the container "
    "before removing or force remove",
    Action.START: "cannot start container {name}: container is {state}",
}


def check(action: Action, state: State, name: str, container_id: str) -> None:
    """Raise Conflict (with docker's wording) unless ``action`` is allowed in ``state``."""
    if state in ALLOWED[action]:
        return
    if action is Action.PAUSE and state is State.PAUSED:
        raise Conflict(
            f"cannot pause container {name}: container {container_id[:12]} is already paused"
        )
    template = _MESSAGES.get(action, "cannot {action} container {name}: container is {state}")
    raise Conflict(
        template.format(name=name, id=container_id[:12], state=state.value, action=action.value)
    )


def is_live(state: State) -> bool:
    return state in _LIVE


@record
class MountSpec:
    type: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # host path (bind), volume name ("" = anonymous), unused for tmpfs
    readonly: bool = False
    propagation: str = ""  # rprivate, rshared, ... (bind)
    bind_recursive: bool = True
    no_copy: bool = False  # volume: do not populate from the image
    selinux: str = ""
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    options: list[str] = field(default_factory=list)  # extra mount options


@record
class DeviceSpec:
    host: str
    container: str
    permissions: str = "rwm"


@record
class ThrottleSpec:
    path: str  # host device path
    rate: int


@record
class Resources:
    memory: int = 0
    memory_swap: int = 0  # -1 unlimited swap; 0 unset
    memory_reservation: int = 0
    oom_kill_disable: bool = False
    nano_cpus: int = 0  # --cpus * 1e9
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0  # 0 unset, -1 unlimited
    blkio_weight: int = 0
    device_read_bps: list[ThrottleSpec] = field(default_factory=list)
    device_write_bps: list[ThrottleSpec] = field(default_factory=list)
    device_read_iops: list[ThrottleSpec] = field(default_factory=list)
    device_write_iops: list[ThrottleSpec] = field(default_factory=list)
    network_rate_in: int = 0  # bits per second (issue 5)
    network_rate_out: int = 0


@record
class Healthcheck:
    test: list[str] = field(default_factory=list)  # [] = from the image; ["NONE"] disables
    interval: float = 0
    timeout: float = 0
    start_period: float = 0
    start_interval: float = 0
    retries: int = 0
    on_failure: str = "none"  # none | kill | restart | stop


@record
class NetworkAttachment:
    """A network the container joins besides the one of ``network_mode`` (``network
    connect``), again at every start: with its aliases and the address asked for."""

    name: str
    aliases: list[str] = field(default_factory=list)
    ip: str = ""


@record
class ContainerSpec:
    image: str  # as the user wrote it
    name: str = ""
    command: list[str] | None = None
    entrypoint: list[str] | None = None  # [] resets the image's
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    tty: bool = False
    stdin_open: bool = False
    init: bool = False
    auto_remove: bool = False
    restart: str = "no"
    healthcheck: Healthcheck | None = None
    read_only: bool = False
    mounts: list[MountSpec] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp: str = ""  # "" default profile, "unconfined", or a JSON file's content
    devices: list[DeviceSpec] = field(default_factory=list)
    ulimits: list[str] = field(default_factory=list)  # name=soft[:hard]
    sysctls: dict[str, str] = field(default_factory=dict)
    shm_size: int = 0
    stop_signal: str = ""
    stop_timeout: int | None = None
    pid_mode: str = ""  # "" private, "host", "container:<id>"
    ipc_mode: str = ""  # "" private (shareable), "host", "none", "container:<id>"
    uts_mode: str = ""  # "" private, "host"
    cgroupns_mode: str = ""  # "host" | "private" (create fills the default); "" = private
    network_mode: str = "bridge"  # none | host | bridge | container:<id> | <network>
    aliases: list[str] = field(default_factory=list)  # --network-alias
    ip: str = ""  # --ip
    mac_address: str = ""
    publish_all: bool = False  # -P: every EXPOSEd port on a random host port
    extra_hosts: list[str] = field(default_factory=list)  # host:ip
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    log_opts: dict[str, str] = field(default_factory=dict)
    runtime: str = ""  # "" = capsa's own; else an OCI runtime binary (runc, crun)
    oom_score_adj: int | None = None
    group_add: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    ports: list[PortMapping] = field(default_factory=list)  # -p, -P: host ports fixed at create
    networks: list[NetworkAttachment] = field(default_factory=list)  # network connect


@record
class ContainerRecord:
    id: str
    name: str
    image_id: str
    image_name: str
    created: str
    spec: ContainerSpec
    state: State = State.CREATED
    pid: int = 0
    pid_start: int = 0
    exit_code: int | None = 0  # None: unknown (the process ended unseen, engine.restore)
    started_at: str = ""
    finished_at: str = ""
    oom_killed: bool = False
    error: str = ""
    restart_count: int = 0
    health: dict[str, Any] | None = None
    monitor_pid: int = 0
    monitor_start: int = 0
    stopped_by_user: bool = False
    restarting: bool = False  # stopped by `restart`: an --rm container stays for its start
    rootfs_key: str = ""
    chain_ids: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:12]


@record
class PsOptions:
    all: bool = False
    last: int = 0
    size: bool = False
    filters: dict[str, list[str]] = field(default_factory=dict)


@record
class LogOptions:
    """What ``logs`` reads: the last ``tail`` entries (None: all) between ``since`` and
    ``until`` (epoch seconds), then with ``follow`` what comes until the container ends."""

    tail: int | None = None
    since: float | None = None
    until: float | None = None
    follow: bool = False


@record
class ContainerFiles:
    """Where a container's files are on the host (Docker's inspect shows them)."""

    resolv_conf: str
    hostname: str
    hosts: str
    log: str
    merged: str  # the rootfs overlay
    upper: str
    work: str
    lowers: list[str]  # top layer first
    volumes: dict[str, str] = field(default_factory=dict)  # volume name -> mountpoint


@record
class ExecStdio:
    """The caller's side of an exec: the fds its stdin, stdout and stderr are (-1:
    none), and with a terminal, the terminal's size."""

    stdin: int = -1
    stdout: int = -1
    stderr: int = -1
    rows: int = 0
    cols: int = 0


@record
class ExecSpec:
    command: list[str]
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    env: list[str] = field(default_factory=list)
    user: str = ""
    workdir: str = ""
    privileged: bool = False
