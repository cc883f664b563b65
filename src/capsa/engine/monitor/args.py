"""A container monitor's arguments, phase by phase, and their form on the wire.

A monitor (``capsa.engine.monitor.setup``) lives in phases that hand each other
typed records, in one process or across ``exec``, a fork, the monitor host's sockets
and the files a resting host or a shim leaves in the run root:

- ``MonitorArgs``: what starts a monitor (the *setup* phase), made by the launcher
  (``containers.launch``) and again by the finish phase when the restart policy
  brings the container back;
- ``LoopArgs``: a running container's supervision loop (``monitor.loop``), made by
  the setup phase; a loop hands its current state on as a new ``LoopArgs`` (to an
  ``exec`` of itself, to the host on hand-over and as its standby copy, in the shim's
  record, in a resting host's state file);
- ``LoopResult``: how the container ended, as the loop saw it;
- ``FinishArgs``: what the *finish* phase records (the loop's result) and restarts.

Records are frozen: a phase that changes its arguments makes new ones (``replace``).
On the wire they are JSON objects (``capsa.oci.codec``: camelCase keys) and are read
strictly: a key that no field has is an error, as is a missing required field or a
value of the wrong type. Monitors and hosts started by the same capsa speak the same
form; there is no reading of another version's.
"""

from __future__ import annotations

from capsa.record import field, fields, record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


@record(frozen=True)
class Roots:
    """The engine's roots, from which a monitor rebuilds its ``ServiceContext``."""

    root: str  # data root: the databases, images, containers' layers
    runroot: str  # run root: sockets, the monitor host, containers' run directories
    config: str = ""  # the configuration file the launcher read ("": none)


@record(frozen=True)
class MonitorArgs:
    """What a container's monitor starts with (its *setup* phase). The fields from
    ``ready_fd`` to ``wait_attach`` are used up by the setup phase; the rest stays with
    the monitor through its phases and restarts (``LoopArgs.monitor``,
    ``FinishArgs.monitor``)."""

    roots: Roots
    id: str  # the container's full id
    name: str  # its name, for the process title and messages
    # the pipe the setup phase reports on, once: {"ok": true, "pid", "warnings"} or
    # {"error", "kind", "exit_code"} (-1: nobody waits, as after a restart)
    ready_fd: int = -1
    # the attach socket the launcher made and is connected to already (-1: the
    # monitor makes it)
    listener_fd: int = -1
    wait_attach: bool = False  # accept one client and its hello before the start (run)
    # what the host should import for the next monitors ("network": pyroute2, nftables);
    # "network" also tells the host that this container's roots may have networks to
    # take down when it exits
    warm: list[str] = field(default_factory=list)
    clients: list[int] = field(default_factory=list)  # attach connections (a restart's)
    backoff: float = 0.0  # the restart delay last used (doubles on quick exits)
    host_fd: int = -1  # the channel to the monitor host that forked it (-1: none)
    host_linger: float = 0.0  # that host's linger: > 0 leaves idle networks up


# the fds a launcher passes with a spawn request to the host, by field of MonitorArgs
SPAWN_FDS = ("ready_fd", "listener_fd")


@record(frozen=True)
class HealthArgs:
    """The container's healthcheck as the loop runs it (``containers.healthspec``)."""

    test: list[str]  # ["CMD", arg...] or ["CMD-SHELL", command]
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int
    on_failure: str = "none"  # --health-on-failure: none, kill, restart, stop


@record(frozen=True)
class LoopArgs:
    """A running container's supervision loop, for a ``Loop`` in this process or
    another. Fd fields are numbers in the process the record is for (a receiver maps
    them: ``loop.remap_fds``); -1 is none."""

    monitor: MonitorArgs  # the monitor's arguments, the setup phase's fds used up
    pid: int  # the container's init
    log: str  # the json-file log's path
    runtime_root: str  # the runtime's state root (health probes exec through it)
    runtime_name: str = ""  # the container's runtime ("": capsa's own)
    tty: bool = False  # the output comes from a pty master, not pipes
    started: float = 0.0  # time.time() at the start: the finish phase's run length
    log_opts: dict[str, str] = field(default_factory=dict)  # --log-opt, as given
    health: HealthArgs | None = None
    health_due: float | None = None  # when the next probe is due (None: from the start)
    master: int = -1  # the pty master (tty)
    stdin: int = -1  # the write end of the container's stdin pipe (-i without tty)
    stdout: int = -1  # read ends of the output pipes (without tty)
    stderr: int = -1
    listener: int = -1  # the attach socket
    notify: int = -1  # the shim's notification pipe (handed over)
    clients: list[int] = field(default_factory=list)  # attach connections
    # what each client asked for (by fd, as a string), for the clients that said hello
    wants: dict[str, dict[str, Any]] = field(default_factory=dict)
    shim: int = 0  # the container's shim (handed over), and its start time
    shim_start: int = 0


# the fd fields of LoopArgs besides ``clients``
LOOP_FDS = ("stdout", "stderr", "stdin", "master", "listener", "notify")


@record(frozen=True)
class LoopResult:
    """How the container ended, as its loop saw it."""

    exit_code: int | None = None  # None: nobody could know (``unknown_why`` says why)
    unknown_why: str = ""
    health_restart: bool = False  # --health-on-failure restart: restart whatever the policy
    health_stop: bool = False  # --health-on-failure stop: as if stopped by the user


@record(frozen=True)
class FinishArgs:
    """What the *finish* phase records, then restarts or removes."""

    monitor: MonitorArgs
    result: LoopResult
    started: float = 0.0  # LoopArgs.started
    shim: int = 0  # the shim to release once the exit is recorded (0: none)
    shim_start: int = 0
    clients: list[int] = field(default_factory=list)  # told the exit code, or kept on restart


def monitor_of(args: MonitorArgs | FinishArgs) -> MonitorArgs:
    return args if isinstance(args, MonitorArgs) else args.monitor


def with_host(args: T, host_fd: int, host_linger: float) -> T:
    """``args`` (``MonitorArgs`` or ``FinishArgs``) for a monitor the host forks."""
    if isinstance(args, FinishArgs):
        monitor = replace(args.monitor, host_fd=host_fd, host_linger=host_linger)
        return replace(args, monitor=monitor)
    return replace(args, host_fd=host_fd, host_linger=host_linger)


# -- the wire ---------------------------------------------------------------------------

_NESTED = {"Roots": Roots, "MonitorArgs": MonitorArgs, "HealthArgs": HealthArgs}
_NESTED["LoopResult"] = LoopResult
_PHASES: dict[str, type] = {"setup": MonitorArgs, "loop": LoopArgs, "finish": FinishArgs}
_KEYS: dict[type, dict[str, type | None]] = {}


def to_wire(args: Any) -> dict[str, Any]:
    """A record of this module as a JSON-ready object."""
    from capsa.oci.codec import to_dict

    out: dict[str, Any] = to_dict(args)
    return out


def from_wire(cls: type[T], data: Any, where: str = "monitor arguments") -> T:
    """Record ``cls`` from its JSON object; ``InvalidArgument`` for a key no field has,
    a missing field, or a value of the wrong type."""
    from capsa.errors import InvalidArgument
    from capsa.oci.codec import from_dict

    _check_keys(cls, data, where)
    try:
        return from_dict(cls, data, where)
    except TypeError as e:  # a required field missing
        raise InvalidArgument(f"{where}: {e}") from None


def _check_keys(cls: type, data: Any, where: str) -> None:
    from capsa.errors import InvalidArgument

    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected an object")
    keys = _KEYS.get(cls)
    if keys is None:
        from capsa.oci.codec import json_name

        keys = {}
        for f in fields(cls):
            keys[json_name(f)] = _NESTED.get(f.type.removesuffix(" | None"))
        _KEYS[cls] = keys
    for key, value in data.items():
        if key not in keys:
            raise InvalidArgument(f"{where}: unknown key {key!r}")
        nested = keys[key]
        if nested is not None and value is not None:
            _check_keys(nested, value, f"{where}.{key}")


def dumps(args: MonitorArgs | LoopArgs | FinishArgs) -> str:
    """The command-line form of a phase's arguments: ``{"phase": ..., "args": {...}}``."""
    from capsa import fastjson

    phase = next(name for name, cls in _PHASES.items() if type(args) is cls)
    return fastjson.dumps({"phase": phase, "args": to_wire(args)})


def loads(text: str | bytes) -> MonitorArgs | LoopArgs | FinishArgs:
    """What ``dumps`` wrote (``InvalidArgument`` for anything else)."""
    from capsa import fastjson
    from capsa.errors import InvalidArgument

    data = fastjson.loads(text)
    if not isinstance(data, dict) or set(data) != {"phase", "args"}:
        raise InvalidArgument('monitor arguments: expected {"phase": ..., "args": {...}}')
    cls = _PHASES.get(data["phase"])
    if cls is None:
        raise InvalidArgument(f"monitor arguments: unknown phase {data['phase']!r}")
    args: MonitorArgs | LoopArgs | FinishArgs = from_wire(cls, data["args"])
    return args
