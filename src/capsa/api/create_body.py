"""Docker's ContainerCreate body (``Config`` + ``HostConfig`` + ``NetworkingConfig``)
-> the engine's ``ContainerSpec``: the same records ``capsa run``'s flags make.

A field of the wrong JSON type is a 400 naming it (``HostConfig.Memory``); a value
capsa cannot honour (a cgroup parent, GPUs, legacy links, a log driver other than
json-file...) is a 400 saying so, never dropped. Fields the docker CLI always sends
with their zero value (``CpuRealtimePeriod: 0``, ``MemorySwappiness: -1``) are
accepted as the defaults they are. Ranges are the engine's to refuse (``create``
checks every spec with ``capsa.engine.containers.limits``).
"""

from __future__ import annotations

import json
import os
import shutil

from capsa.api.params import field
from capsa.engine.containers.types import (
    ContainerSpec,
    DeviceSpec,
    Healthcheck,
    MountSpec,
    NetworkAttachment,
    Resources,
    ThrottleSpec,
)
from capsa.engine.network.types import PortMapping
from capsa.errors import InvalidArgument
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NS = 1_000_000_000
_MIN_DURATION_NS = 1_000_000  # Docker's containertypes.MinimumDuration (1ms)
_OWN_RUNTIMES = ("", "capsa", "capsa-runtime")

# HostConfig fields capsa has no use for, with the values that mean "not asked for"
# (what the docker CLI sends when the flag is not given): anything else is refused.
_UNSUPPORTED_HOST: dict[str, tuple[object, ...]] = {
    "Links": (None, []),
    "Cgroup": (None, ""),
    "CgroupParent": (None, ""),
    "UsernsMode": (None, "", "host"),
    "Isolation": (None, "", "default"),
    "VolumeDriver": (None, "", "local"),
    "BlkioWeightDevice": (None, []),
    "CpuRealtimePeriod": (None, 0),
    "CpuRealtimeRuntime": (None, 0),
    "DeviceCgroupRules": (None, []),
    "DeviceRequests": (None, []),
    "MemorySwappiness": (None, -1),
    "KernelMemory": (None, 0),
    "KernelMemoryTCP": (None, 0),
    "CpuCount": (None, 0),
    "CpuPercent": (None, 0),
    "IOMaximumIOps": (None, 0),
    "IOMaximumBandwidth": (None, 0),
    "MaskedPaths": (None,),
    "ReadonlyPaths": (None,),
    "StorageOpt": (None, {}),
}
_WHY = {
    "Links": "legacy links are not supported: put the containers on a user-defined network",
    "MemorySwappiness": "memory swappiness is not supported on cgroup v2",
    "DeviceRequests": "device requests (--gpus) are not supported",
}


@record
class CreateRequest:
    """A create body, read: the spec, and the bind sources to make first (Docker creates
    a missing ``Binds`` source directory, not a ``Mounts`` one)."""

    spec: ContainerSpec
    bind_sources: list[str]
    warnings: list[str]


class _Obj:
    """A JSON object of the body, read field by field with its path for errors."""

    def __init__(self, doc: dict[str, Any], where: str) -> None:
        self.doc = doc
        self.where = where

    def label(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def text(self, name: str, default: str = "") -> str:
        value = field(self.doc, name, str, self.where)
        return default if value is None else value

    def num(self, name: str, default: int = 0) -> int:
        value = field(self.doc, name, int, self.where)
        return default if value is None else value

    def opt_num(self, name: str) -> int | None:
        return field(self.doc, name, int, self.where)

    def flag(self, name: str) -> bool:
        return bool(field(self.doc, name, bool, self.where))

    def obj(self, name: str) -> _Obj:
        value = field(self.doc, name, dict, self.where)
        return _Obj(value or {}, self.label(name))

    def has(self, name: str) -> bool:
        return self.doc.get(name) is not None

    def strings(self, name: str) -> list[str]:
        """A list of strings (null: empty)."""
        value = field(self.doc, name, list, self.where)
        if value is None:
            return []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _type_error(f"{self.label(name)}[{i}]", "string", item)
        return list(value)

    def command(self, name: str) -> list[str] | None:
        """Docker's StrSlice: a list of strings or one string; null: not given."""
        value = self.doc.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return [value]
        return self.strings(name)

    def str_map(self, name: str) -> dict[str, str]:
        value = field(self.doc, name, dict, self.where)
        if value is None:
            return {}
        for key, item in value.items():
            if not isinstance(item, str):
                raise _type_error(f"{self.label(name)}.{key}", "string", item)
        return dict(value)

    def objects(self, name: str) -> list[_Obj]:
        value = field(self.doc, name, list, self.where)
        out = []
        for i, item in enumerate(value or []):
            if not isinstance(item, dict):
                raise _type_error(f"{self.label(name)}[{i}]", "object", item)
            out.append(_Obj(item, f"{self.label(name)}[{i}]"))
        return out


def _type_error(label: str, wanted: str, value: object) -> InvalidArgument:
    got = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array"}.get(
        type(value), "object" if isinstance(value, dict) else "null"
    )
    return InvalidArgument(f"invalid type for field {label}: expected {wanted}, got {got}")


def read_create(
    doc: dict[str, Any], name: str = "", version: tuple[int, int] = (1, 50)
) -> CreateRequest:
    """The body of ``POST /containers/create?name=NAME`` as the engine's spec."""
    config = _Obj(doc, "")
    host = config.obj("HostConfig")
    net = config.obj("NetworkingConfig")
    image = config.text("Image")
    if not image:
        raise InvalidArgument("invalid request body: Image: an image is required")
    from capsa.oci.reference import parse

    parse(image)  # a name no image can have is refused before looking it up
    spec = ContainerSpec(image=image, name=name.removeprefix("/"))
    _config(config, spec)
    warnings: list[str] = []
    binds = _mounts(config, host, spec)
    _host(host, spec)
    _network(config, host, net, spec, version)
    return CreateRequest(spec=spec, bind_sources=binds, warnings=warnings)


# -- Config ----------------------------------------------------------------------------


def _config(c: _Obj, spec: ContainerSpec) -> None:
    spec.command = c.command("Cmd")
    entrypoint = c.command("Entrypoint")
    if entrypoint is not None:
        # [""] is the docker CLI's ``--entrypoint ""``: reset the image's
        spec.entrypoint = [] if entrypoint == [""] else entrypoint
    spec.env = c.strings("Env")
    spec.workdir = c.text("WorkingDir")
    if spec.workdir and not spec.workdir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{spec.workdir}' is invalid, it needs to be an absolute path"
        )
    spec.user = c.text("User")
    spec.hostname = c.text("Hostname")
    spec.domainname = c.text("Domainname")
    spec.labels = c.str_map("Labels")
    spec.tty = c.flag("Tty")
    spec.stdin_open = c.flag("OpenStdin")
    for flag in ("AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce", "ArgsEscaped"):
        c.flag(flag)  # how a client attaches: its own business, checked for type only
    spec.stop_signal = c.text("StopSignal")
    spec.stop_timeout = c.opt_num("StopTimeout")
    if c.has("Healthcheck"):
        spec.healthcheck = _healthcheck(c.obj("Healthcheck"))
    if c.flag("NetworkDisabled"):
        spec.network_mode = "none"
    spec.mac_address = c.text("MacAddress")  # before API 1.44; an endpoint's since
    c.strings("OnBuild")
    c.strings("Shell")  # both for images only
    c.obj("ExposedPorts")  # read with PublishAllPorts (_ports)
    c.obj("Volumes")  # read with the mounts (_mounts)


def _healthcheck(h: _Obj) -> Healthcheck:
    test = h.strings("Test")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidArgument(
            f"invalid value for field {h.label('Test')}: it starts with NONE, CMD or CMD-SHELL"
        )
    durations = {}
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        ns = h.num(key)
        if ns != 0 and ns < _MIN_DURATION_NS:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
        durations[key] = ns / _NS
    retries = h.num("Retries")
    if retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    return Healthcheck(
        test=test,
        interval=durations["Interval"],
        timeout=durations["Timeout"],
        start_period=durations["StartPeriod"],
        start_interval=durations["StartInterval"],
        retries=retries,
    )


# -- mounts ------------------------------------------------------------------------------


def _mounts(c: _Obj, host: _Obj, spec: ContainerSpec) -> list[str]:
    """Binds, Mounts, Tmpfs and Config.Volumes, in Docker's order; the Binds sources to
    create."""
    from capsa.syntax.mounts import parse_tmpfs, parse_volume

    mounts: list[MountSpec] = []
    make: list[str] = []
    for text in host.strings("Binds"):
        m = parse_volume(text)
        if m.type == "volume" and not m.source:
            raise InvalidArgument(f"invalid volume specification: '{text}'")
        first = text.split(":", 1)[0]
        if m.type == "bind" and not first.startswith("/"):
            raise InvalidArgument(
                f"invalid volume specification: '{text}': bind source path must be absolute"
            )
        if m.type == "bind":
            make.append(m.source)
        mounts.append(m)
    for m_doc in host.objects("Mounts"):
        mounts.append(_mount(m_doc, make))
    tmpfs = host.str_map("Tmpfs")
    for target, opts in tmpfs.items():
        mounts.append(parse_tmpfs(f"{target}:{opts}" if opts else target))
    seen: set[str] = set()
    for m in mounts:
        target = os.path.normpath(m.target) if m.target else m.target
        if target in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.target}")
        seen.add(target)
    volumes = c.obj("Volumes")
    for target in sorted(volumes.doc):
        if not isinstance(target, str) or not target.startswith("/"):
            raise InvalidArgument(
                f"invalid value for field Volumes: {target!r}: mount path must be absolute"
            )
        if os.path.normpath(target) not in seen:
            mounts.append(MountSpec(type="volume", target=target))
            seen.add(os.path.normpath(target))
    spec.mounts = mounts
    spec.volumes_from = host.strings("VolumesFrom")
    return make


def _mount(m: _Obj, make_bind: list[str]) -> MountSpec:
    kind = m.text("Type")
    target = m.text("Target")
    source = m.text("Source")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(
            f'invalid value for field {m.label("Type")}: mount type "{kind}"'
            " is not supported (bind, volume or tmpfs)"
        )
    if not target:
        raise InvalidArgument(
            f'invalid mount config for type "{kind}": field Target must not be empty'
        )
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid mount path: '{target}' mount path must be absolute")
    spec = MountSpec(type=kind, target=target, source=source, readonly=m.flag("ReadOnly"))
    m.text("Consistency")
    bind, volume, tmpfs = m.obj("BindOptions"), m.obj("VolumeOptions"), m.obj("TmpfsOptions")
    if kind != "bind" and bind.doc:
        raise InvalidArgument(f'invalid mount config for type "{kind}": BindOptions given')
    if kind != "volume" and volume.doc:
        raise InvalidArgument(f'invalid mount config for type "{kind}": VolumeOptions given')
    if kind != "tmpfs" and tmpfs.doc:
        raise InvalidArgument(f'invalid mount config for type "{kind}": TmpfsOptions given')
    if kind == "bind":
        if not source:
            raise InvalidArgument(
                'invalid mount config for type "bind": field Source must not be empty'
            )
        if not source.startswith("/"):
            raise InvalidArgument(
                f"invalid mount config for type \"bind\": invalid mount path: '{source}'"
                " mount path must be absolute"
            )
        spec.propagation = bind.text("Propagation")
        spec.bind_recursive = not bind.flag("NonRecursive")
        if bind.flag("ReadOnlyNonRecursive"):
            raise InvalidArgument("a read-only bind that is not recursively so is not supported")
        bind.flag("ReadOnlyForceRecursive")  # capsa's read-only binds are recursive
        if bind.flag("CreateMountpoint"):
            make_bind.append(source)
        elif not os.path.exists(source):
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {source}'
            )
    elif kind == "volume":
        spec.no_copy = volume.flag("NoCopy")
        if volume.str_map("Labels"):
            raise InvalidArgument(
                "volume labels in a mount are not supported: create the volume first"
            )
        if volume.text("Subpath"):
            raise InvalidArgument("volume subpaths are not supported")
        driver = volume.obj("DriverConfig")
        if driver.text("Name") not in ("", "local") or driver.str_map("Options"):
            raise InvalidArgument(
                "volume driver options in a mount are not supported: create the volume first"
            )
    else:
        if source:
            raise InvalidArgument(
                'invalid mount config for type "tmpfs": field Source must not be specified'
            )
        size = tmpfs.num("SizeBytes")
        if size < 0:
            raise InvalidArgument(f"invalid value for field {tmpfs.label('SizeBytes')}: {size}")
        spec.tmpfs_size = size
        spec.tmpfs_mode = tmpfs.num("Mode") & 0o7777
        options = field(tmpfs.doc, "Options", list, tmpfs.where) or []
        for i, opt in enumerate(options):
            if not (
                isinstance(opt, list)
                and 1 <= len(opt) <= 2
                and all(isinstance(x, str) for x in opt)
            ):
                raise _type_error(f"{tmpfs.label('Options')}[{i}]", "[key] or [key, value]", opt)
            spec.options.append("=".join(opt))
    return spec


# -- HostConfig ----------------------------------------------------------------------------


def _host(h: _Obj, spec: ContainerSpec) -> None:
    for key, allowed in _UNSUPPORTED_HOST.items():
        value = h.doc.get(key)
        if value not in allowed:
            why = _WHY.get(key, "capsa cannot honour it")
            raise InvalidArgument(f"HostConfig.{key}: {json.dumps(value)}: {why}")
    h.text("ContainerIDFile")  # the client's file
    size = field(h.doc, "ConsoleSize", list, h.where)  # the first size: attach resizes
    if size is not None and not (
        len(size) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in size)
    ):
        raise _type_error("HostConfig.ConsoleSize", "[height, width]", size)
    spec.restart = _restart(h.obj("RestartPolicy"))
    spec.auto_remove = h.flag("AutoRemove")
    spec.resources = _resources(h)
    spec.devices = [
        DeviceSpec(
            host=d.text("PathOnHost"),
            container=d.text("PathInContainer") or d.text("PathOnHost"),
            permissions=d.text("CgroupPermissions") or "rwm",
        )
        for d in h.objects("Devices")
    ]
    for d in spec.devices:
        if not d.host:
            raise InvalidArgument("invalid value for field HostConfig.Devices: PathOnHost is empty")
        if set(d.permissions) - set("rwm"):
            raise InvalidArgument(f"invalid device mode: {d.permissions}")
    spec.ulimits = [_ulimit(u) for u in h.objects("Ulimits")]
    spec.cap_add = h.strings("CapAdd")
    spec.cap_drop = h.strings("CapDrop")
    spec.privileged = h.flag("Privileged")
    spec.read_only = h.flag("ReadonlyRootfs")
    _security_opts(h.strings("SecurityOpt"), spec)
    spec.dns = h.strings("Dns")
    spec.dns_search = h.strings("DnsSearch")
    spec.dns_options = h.strings("DnsOptions")
    from capsa.syntax.network import parse_extra_host

    spec.extra_hosts = [parse_extra_host(x) for x in h.strings("ExtraHosts")]
    spec.init = h.flag("Init")
    spec.ipc_mode = h.text("IpcMode")
    spec.pid_mode = h.text("PidMode")
    spec.uts_mode = h.text("UTSMode")
    spec.cgroupns_mode = h.text("CgroupnsMode")
    spec.shm_size = h.num("ShmSize")
    spec.sysctls = h.str_map("Sysctls")
    spec.group_add = h.strings("GroupAdd")
    oom = h.num("OomScoreAdj")
    spec.oom_score_adj = oom or None
    spec.annotations = h.str_map("Annotations")
    log = h.obj("LogConfig")
    driver = log.text("Type")
    if driver not in ("", "json-file"):
        raise InvalidArgument(
            f'HostConfig.LogConfig.Type: log driver "{driver}" is not supported: '
            "capsa keeps json-file logs"
        )
    spec.log_opts = log.str_map("Config")
    spec.runtime = _runtime(h.text("Runtime"))


def _restart(r: _Obj) -> str:
    from capsa.syntax.policies import parse_restart

    name = r.text("Name") or "no"
    count = r.num("MaximumRetryCount")
    if count < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if count and name != "on-failure":
        raise InvalidArgument(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    text = f"{name}:{count}" if count else name
    parse_restart(text)  # unknown names refused in Docker's words
    return text


def _resources(h: _Obj) -> Resources:
    r = Resources(
        memory=h.num("Memory"),
        memory_swap=h.num("MemorySwap"),
        memory_reservation=h.num("MemoryReservation"),
        oom_kill_disable=h.flag("OomKillDisable"),
        nano_cpus=h.num("NanoCpus"),
        cpu_shares=h.num("CpuShares"),
        cpu_quota=h.num("CpuQuota"),
        cpu_period=h.num("CpuPeriod"),
        cpuset_cpus=h.text("CpusetCpus"),
        cpuset_mems=h.text("CpusetMems"),
        pids_limit=h.num("PidsLimit"),
        blkio_weight=h.num("BlkioWeight"),
        device_read_bps=_throttles(h, "BlkioDeviceReadBps"),
        device_write_bps=_throttles(h, "BlkioDeviceWriteBps"),
        device_read_iops=_throttles(h, "BlkioDeviceReadIOps"),
        device_write_iops=_throttles(h, "BlkioDeviceWriteIOps"),
    )
    if r.pids_limit < 0:
        r.pids_limit = -1  # Docker: zero or less is unlimited
    return r


def _throttles(h: _Obj, name: str) -> list[ThrottleSpec]:
    out = []
    for t in h.objects(name):
        path, rate = t.text("Path"), t.num("Rate")
        if not path or rate < 0:
            raise InvalidArgument(f"invalid value for field HostConfig.{name}: {t.doc}")
        out.append(ThrottleSpec(path=path, rate=rate))
    return out


def _ulimit(u: _Obj) -> str:
    from capsa.engine.containers.limits import ULIMITS

    name = u.text("Name")
    if name not in ULIMITS:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft, hard = u.num("Soft"), u.opt_num("Hard")
    if hard is None:
        hard = soft  # docker-py's Ulimit without a hard limit
    if hard != -1 and (soft == -1 or soft > hard):
        raise InvalidArgument(
            f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return f"{name}={soft}:{hard}"


def _security_opts(opts: list[str], spec: ContainerSpec) -> None:
    """``no-new-privileges``, ``seccomp=unconfined|PROFILE`` (the docker CLI sends the
    profile's JSON, not a file), ``apparmor=``/``label=`` (as ``capsa run``: no such
    module here, nothing to set)."""
    for opt in opts:
        sep = "=" if "=" in opt else ":"
        key, _, value = opt.partition(sep)
        if key == "no-new-privileges":
            if value.lower() not in ("", "true", "1", "false", "0"):
                raise InvalidArgument(f"invalid value in HostConfig.SecurityOpt: {opt!r}")
            spec.no_new_privileges = value.lower() in ("", "true", "1")
        elif key == "seccomp":
            if value == "unconfined":
                spec.seccomp = "unconfined"
                continue
            try:
                json.loads(value)
            except ValueError as e:
                raise InvalidArgument(f"invalid seccomp profile in SecurityOpt: {e}") from None
            spec.seccomp = value
        elif key in ("apparmor", "label"):
            continue
        elif key == "systempaths":
            raise InvalidArgument(
                f"HostConfig.SecurityOpt: {opt!r} is not supported: the masked paths stay masked"
            )
        else:
            raise InvalidArgument(f"invalid value in HostConfig.SecurityOpt: {opt!r}")


def _runtime(name: str) -> str:
    if name in _OWN_RUNTIMES:
        return ""
    if shutil.which(name) is None:
        raise InvalidArgument(f"unknown or invalid runtime name: {name}")
    return name


# -- networking ----------------------------------------------------------------------------


def _network(c: _Obj, h: _Obj, net: _Obj, spec: ContainerSpec, version: tuple[int, int]) -> None:
    mode = h.text("NetworkMode")
    if spec.network_mode == "none":  # Config.NetworkDisabled
        mode = "none"
    endpoints = net.obj("EndpointsConfig")
    names = list(endpoints.doc)
    if mode in ("", "default") and len(names) == 1 and names[0] not in ("default", "bridge"):
        mode = names[0]  # docker-py's networking_config without network_mode
    spec.network_mode = "bridge" if mode in ("", "default") else mode
    primary_keys = {spec.network_mode, mode} | (
        {"default", "bridge"} if spec.network_mode == "bridge" else set()
    )
    extra = []
    for key in names:
        ep = endpoints.obj(key)
        aliases, ip, mac = _endpoint(ep)
        if key in primary_keys:
            spec.aliases = aliases
            spec.ip = ip
            spec.mac_address = mac or spec.mac_address
            continue
        extra.append(key)
        if mac:
            raise InvalidArgument(
                f"{ep.where}.MacAddress: a MAC address is set on the first network only"
            )
        spec.networks.append(NetworkAttachment(name=key, aliases=aliases, ip=ip))
    if extra:
        if version < (1, 44):
            raise InvalidArgument(
                "Container cannot be connected to network endpoints: " + ", ".join(names)
            )
        if spec.network_mode in ("none", "host") or spec.network_mode.startswith("container:"):
            raise InvalidArgument(
                f"a container with network mode {spec.network_mode} cannot join other networks: "
                + ", ".join(extra)
            )
    _ports(c, h, spec)


def _endpoint(ep: _Obj) -> tuple[list[str], str, str]:
    if ep.strings("Links"):
        raise InvalidArgument(f"{ep.where}.Links: legacy links are not supported")
    if ep.str_map("DriverOpts"):
        raise InvalidArgument(f"{ep.where}.DriverOpts: driver options are not supported")
    ipam = ep.obj("IPAMConfig")
    if ipam.text("IPv6Address"):
        raise InvalidArgument(f"{ipam.where}.IPv6Address: a fixed IPv6 address is not supported")
    if ipam.strings("LinkLocalIPs"):
        raise InvalidArgument(f"{ipam.where}.LinkLocalIPs: link-local addresses are not supported")
    ip = ipam.text("IPv4Address")
    if ip:
        import ipaddress

        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {ip}") from None
    return ep.strings("Aliases"), ip, ep.text("MacAddress")


def _ports(c: _Obj, h: _Obj, spec: ContainerSpec) -> None:
    """PortBindings, and with PublishAllPorts the ExposedPorts too (the image's EXPOSE
    the engine adds itself), each on a host port chosen at create when none is given."""
    ports: list[PortMapping] = []
    bindings = h.obj("PortBindings")
    for key in bindings.doc:
        port, proto = _port_key(key, bindings.label(key))
        for b in bindings.objects(key):
            host_port = b.text("HostPort")
            if host_port and not (host_port.isdigit() and 0 < int(host_port) <= 65535):
                raise InvalidArgument(
                    f"invalid value for field {b.label('HostPort')}: {host_port!r}: "
                    "a port number (host port ranges are not supported)"
                )
            ports.append(PortMapping(int(host_port or 0), port, proto, b.text("HostIp")))
    spec.publish_all = h.flag("PublishAllPorts")
    exposed = c.obj("ExposedPorts")
    keys = [_port_key(k, exposed.label(k)) for k in exposed.doc]
    if spec.publish_all:
        for port, proto in sorted(keys):
            if not any(p.container_port == port and p.protocol == proto for p in ports):
                ports.append(PortMapping(0, port, proto))
    spec.ports = ports


def _port_key(key: str, label: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp") or not (port.isdigit() and 0 < int(port) <= 65535):
        raise InvalidArgument(f"invalid port specification: {label}: {key!r}")
    return int(port), proto
