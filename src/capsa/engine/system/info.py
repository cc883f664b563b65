"""System-wide views: ``info`` (what this engine and host are) and ``events`` filters.

``system_info`` gathers the facts as a typed record (``capsa.api.wire_system`` lays
them out as Docker's ``GET /info``, what ``info --format`` templates see).
``event_matcher`` applies ``events --filter`` the way dockerd does (the filter map is
read from text by ``capsa.syntax.filters.parse_event_filters``).
"""

from __future__ import annotations

import os
import shutil
import time

from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from capsa.engine.containers.service import ContainerService


@record
class SystemInfo:
    id: str
    name: str  # the host name
    containers: int = 0
    running: int = 0
    paused: int = 0
    stopped: int = 0
    images: int = 0
    server_version: str = ""
    storage_driver: str = "overlay"
    logging_driver: str = "json-file"
    cgroup_driver: str = "cgroupfs"
    cgroup_version: int = 1
    runtimes: dict[str, str] = field(default_factory=dict)  # name -> path
    default_runtime: str = "capsa"
    kernel_version: str = ""
    operating_system: str = ""
    os_version: str = ""
    architecture: str = ""
    ncpu: int = 0
    mem_total: int = 0
    root_dir: str = ""
    run_root: str = ""
    security_options: list[str] = field(default_factory=list)
    volume_plugins: list[str] = field(default_factory=lambda: ["local"])
    network_plugins: list[str] = field(default_factory=lambda: ["host", "none"])
    log_plugins: list[str] = field(default_factory=lambda: ["json-file"])
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    system_time: str = ""
    ipv4_forwarding: bool = False
    bridge_nf_iptables: bool = False
    bridge_nf_ip6tables: bool = False
    open_fds: int = 0  # of the process that answers (dockerd's NFd)
    threads: int = 0  # of that process (dockerd's NGoroutines)
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""


def _os_release(path: str = "/etc/os-release") -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                key, eq, value = line.strip().partition("=")
                if eq:
                    out[key] = value.strip().strip('"')
    except OSError:
        pass
    return out


def engine_id(root: str) -> str:
    """A stable identity of this data root, made on first use (dockerd's engine-id)."""
    import uuid

    path = os.path.join(root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(root, exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(uuid.uuid4()) + "\n")
    try:
        os.link(tmp, path)  # whoever links first wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    with open(path) as f:
        return f.read().strip()


def _runtimes() -> dict[str, str]:
    import sys

    own = os.path.join(os.path.dirname(sys.executable), "capsa-runtime")
    out = {"capsa": own if os.path.exists(own) else "capsa-runtime"}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            out[name] = path
    return out


def _cgroup_facts() -> tuple[int, list[str]]:
    from capsa.cgroups.layout import detect

    try:
        version = detect().version
    except OSError:
        return 1, ["WARNING: no cgroup hierarchy found"]
    warnings = []
    if version == 1 and not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        warnings.append("WARNING: No swap limit support")
    return version, warnings


def _registries(service: ContainerService) -> tuple[list[str], list[str]]:
    settings = service.ctx.settings
    insecure = ["127.0.0.0/8", "::1/128"]
    mirrors: list[str] = []
    for domain, cfg in settings.registries.items():
        if cfg.insecure:
            insecure.append(domain)
        mirrors.extend(m for m in cfg.mirrors if m not in mirrors)
    return insecure, mirrors


def system_info(service: ContainerService) -> SystemInfo:
    from capsa import __version__
    from capsa.engine.containers.types import PsOptions, State

    ctx = service.ctx
    states = [rec.state for rec in service.list_containers(PsOptions(all=True))]
    release, uname = _os_release(), os.uname()
    version, warnings = _cgroup_facts()
    insecure, mirrors = _registries(service)
    running = sum(1 for s in states if s is State.RUNNING)
    paused = sum(1 for s in states if s is State.PAUSED)
    return SystemInfo(
        id=engine_id(ctx.settings.root),
        name=uname.nodename,
        containers=len(states),
        running=running,
        paused=paused,
        stopped=len(states) - running - paused,
        images=len(ctx.images.list()),
        server_version=__version__,
        cgroup_version=version,
        runtimes=_runtimes(),
        kernel_version=uname.release,
        operating_system=release.get("PRETTY_NAME", "Linux"),
        os_version=release.get("VERSION_ID", ""),
        architecture=uname.machine,
        ncpu=len(os.sched_getaffinity(0)),
        mem_total=os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
        root_dir=ctx.settings.root,
        run_root=ctx.settings.runroot,
        security_options=["name=seccomp,profile=builtin"]
        + (["name=cgroupns"] if version == 2 else []),
        insecure_registries=insecure,
        registry_mirrors=mirrors,
        warnings=warnings,
        system_time=_now_local(),
        ipv4_forwarding=_sysctl_on("net/ipv4/ip_forward"),
        bridge_nf_iptables=_sysctl_on("net/bridge/bridge-nf-call-iptables"),
        bridge_nf_ip6tables=_sysctl_on("net/bridge/bridge-nf-call-ip6tables"),
        open_fds=_count("/proc/self/fd"),
        threads=_count("/proc/self/task"),
        http_proxy=_env("HTTP_PROXY"),
        https_proxy=_env("HTTPS_PROXY"),
        no_proxy=_env("NO_PROXY"),
    )


def _sysctl_on(name: str) -> bool:
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip() == "1"
    except OSError:  # the module is not loaded (br_netfilter): off
        return False


def _count(path: str) -> int:
    try:
        return len(os.listdir(path))
    except OSError:
        return 0


def _env(name: str) -> str:
    return os.environ.get(name) or os.environ.get(name.lower()) or ""


def _now_local() -> str:
    ns = time.time_ns()
    local = time.localtime(ns // 10**9)
    offset = local.tm_gmtoff or 0
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:"
    if offset:
        zone += f"{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{ns % 10**9:09d}{zone}"


# -- events --filter -----------------------------------------------------------------


def _exact(filters: dict[str, list[str]], key: str, *sources: str) -> bool:
    wanted = filters.get(key)
    return not wanted or any(s in wanted for s in sources)


def _fuzzy(filters: dict[str, list[str]], key: str, *sources: str) -> bool:
    wanted = filters.get(key)
    return not wanted or any(s and s.startswith(w) for s in sources for w in wanted)


def _labels(wanted: list[str], attributes: dict[str, str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in attributes or (eq and attributes[key] != value):
            return False
    return True


def _strip_tag(name: str) -> str:
    base, _, tag = name.rpartition(":")
    return base if base and "/" not in tag else name


def event_matcher(filters: dict[str, list[str]]) -> Callable[[dict[str, Any]], bool]:
    """dockerd's events.Filter.Include: values of one key OR, keys AND."""

    def match(event: dict[str, Any]) -> bool:
        kind, action = event.get("Type", ""), event.get("Action", "")
        actor = event.get("Actor") or {}
        actor_id, attrs = actor.get("ID", ""), actor.get("Attributes") or {}
        fuzzy_events = {"health_status", "exec_create", "exec_start"}
        if fuzzy_events & set(filters.get("event", [])):
            if not _fuzzy(filters, "event", action):
                return False
        elif not _exact(filters, "event", action):
            return False
        image = attrs.get("name" if kind == "image" else "image", "")
        named = (actor_id, attrs.get("name", ""))
        return (
            _exact(filters, "type", kind)
            and _exact(filters, "scope", event.get("scope", "local"))
            and _fuzzy(filters, "container", *named)
            and _fuzzy(filters, "volume", *named)
            and _fuzzy(filters, "network", *named)
            and _exact(filters, "image", actor_id, image, _strip_tag(actor_id), _strip_tag(image))
            and _labels(filters.get("label", []), attrs)
        )

    return match
