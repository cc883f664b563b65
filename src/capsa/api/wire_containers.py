"""Docker's JSON shape of a container (``docker inspect``, ``GET /containers/{id}/json``)."""

from __future__ import annotations

import json

from capsa.engine.containers.types import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.containers.types import ContainerFiles, ContainerRecord, MountSpec
    from capsa.engine.network.types import Endpoint
    from capsa.engine.protocol import Containers

_ZERO_TIME = "0001-01-01T00:00:00Z"


def _state(service: Containers, rec: ContainerRecord) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Status": rec.state.value,
        "Running": rec.state in (State.RUNNING, State.PAUSED),
        "Paused": rec.state is State.PAUSED,
        "Restarting": rec.state is State.RESTARTING,
        "OOMKilled": rec.oom_killed,
        "Dead": rec.state is State.DEAD,
        "Pid": rec.pid if rec.state in (State.RUNNING, State.PAUSED) else 0,
        "ExitCode": rec.exit_code,
        "Error": rec.error,
        "StartedAt": rec.started_at or _ZERO_TIME,
        "FinishedAt": rec.finished_at or _ZERO_TIME,
    }
    health = service.health(rec)
    if health is not None:
        state["Health"] = health
    return state


def _image_config(service: Containers, rec: ContainerRecord) -> Any:
    return service.image_config(rec)


def _config(service: Containers, rec: ContainerRecord) -> dict[str, Any]:
    spec = rec.spec
    try:
        image = _image_config(service, rec)
    except Exception:
        image = None
    icfg = image.config if image else None
    from capsa.engine.containers.specgen import environment

    env = environment(spec, image, spec.hostname or rec.id[:12]) if image else spec.env
    config: dict[str, Any] = {
        "Hostname": spec.hostname or rec.id[:12],
        "Domainname": spec.domainname,
        "User": spec.user or ((icfg.user if icfg else None) or ""),
        "AttachStdin": spec.stdin_open,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": spec.tty,
        "OpenStdin": spec.stdin_open,
        "StdinOnce": spec.stdin_open,
        "Env": env,
        "Cmd": spec.command
        if spec.command is not None
        else (None if spec.entrypoint is not None else (icfg.cmd if icfg else None)),
        "Image": spec.image,
        "Volumes": {m.target: {} for m in spec.mounts if m.type == "volume"} or None,
        "WorkingDir": spec.workdir or ((icfg.working_dir if icfg else None) or ""),
        "Entrypoint": spec.entrypoint
        if spec.entrypoint is not None
        else (icfg.entrypoint if icfg else None),
        "OnBuild": None,
        "Labels": dict(spec.labels),
    }
    if spec.stop_signal:
        config["StopSignal"] = spec.stop_signal
    if spec.stop_timeout is not None:
        config["StopTimeout"] = spec.stop_timeout
    hc = spec.healthcheck
    if hc is not None:
        config["Healthcheck"] = {
            "Test": hc.test,
            "Interval": int(hc.interval * 1e9),
            "Timeout": int(hc.timeout * 1e9),
            "StartPeriod": int(hc.start_period * 1e9),
            "Retries": hc.retries,
        }
        if hc.start_interval:
            config["Healthcheck"]["StartInterval"] = int(hc.start_interval * 1e9)
    return config


def _host_config(rec: ContainerRecord) -> dict[str, Any]:
    spec, r = rec.spec, rec.spec.resources
    name, _, count = spec.restart.partition(":")
    doc: dict[str, Any] = {
        "Binds": [
            f"{m.source}:{m.target}{':ro' if m.readonly else ''}"
            for m in spec.mounts
            if m.type == "bind"
        ]
        or None,
        "ContainerIDFile": "",
        "NetworkMode": spec.network_mode,
        "PortBindings": _port_bindings(rec),
        "RestartPolicy": {
            "Name": "" if name == "no" else name,
            "MaximumRetryCount": int(count or 0),
        },
        "AutoRemove": spec.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": spec.volumes_from or None,
        "ConsoleSize": [0, 0],
        "CapAdd": spec.cap_add or None,
        "CapDrop": spec.cap_drop or None,
        "Dns": spec.dns,
        "DnsOptions": spec.dns_options,
        "DnsSearch": spec.dns_search,
        "ExtraHosts": spec.extra_hosts or None,
        "GroupAdd": spec.group_add or None,
        "IpcMode": spec.ipc_mode or "private",
        "Cgroup": "",
        "Links": None,
        "PidMode": spec.pid_mode,
        "Privileged": spec.privileged,
        "PublishAllPorts": spec.publish_all,
        "ReadonlyRootfs": spec.read_only,
        "SecurityOpt": (["no-new-privileges"] if spec.no_new_privileges else [])
        + (["seccomp=unconfined"] if spec.seccomp == "unconfined" else [])
        or None,
        "UTSMode": spec.uts_mode,
        "UsernsMode": "",
        "CgroupnsMode": spec.cgroupns_mode or "private",
        "ShmSize": spec.shm_size or 67108864,
        "Runtime": spec.runtime or "capsa",
        "Isolation": "",
        "Init": spec.init,
        "Memory": r.memory,
        "MemorySwap": r.memory_swap or (r.memory * 2 if r.memory else 0),
        "MemoryReservation": r.memory_reservation,
        "NanoCpus": r.nano_cpus,
        "CgroupParent": "",
        "CpuShares": r.cpu_shares,
        "CpuPeriod": r.cpu_period,
        "CpuQuota": r.cpu_quota,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": r.cpuset_cpus,
        "CpusetMems": r.cpuset_mems,
        "PidsLimit": r.pids_limit or None,
        "BlkioWeight": r.blkio_weight,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [{"Path": t.path, "Rate": t.rate} for t in r.device_read_bps],
        "BlkioDeviceWriteBps": [{"Path": t.path, "Rate": t.rate} for t in r.device_write_bps],
        "BlkioDeviceReadIOps": [{"Path": t.path, "Rate": t.rate} for t in r.device_read_iops],
        "BlkioDeviceWriteIOps": [{"Path": t.path, "Rate": t.rate} for t in r.device_write_iops],
        "MaskedPaths": [] if spec.privileged else _masked(),
        "ReadonlyPaths": [] if spec.privileged else _readonly(),
        "OomKillDisable": r.oom_kill_disable,
        "OomScoreAdj": spec.oom_score_adj or 0,
        "Devices": [
            {
                "PathOnHost": d.host,
                "PathInContainer": d.container,
                "CgroupPermissions": d.permissions,
            }
            for d in spec.devices
        ],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "MemorySwappiness": None,
        "Ulimits": [_ulimit(u) for u in spec.ulimits] or None,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "LogConfig": {"Type": "json-file", "Config": dict(spec.log_opts)},
    }
    # ``omitempty`` in Docker's HostConfig
    tmpfs = {m.target: _tmpfs_options(m) for m in spec.mounts if m.type == "tmpfs"}
    if tmpfs:
        doc["Tmpfs"] = tmpfs
    if spec.sysctls:
        doc["Sysctls"] = dict(spec.sysctls)
    if spec.annotations:
        doc["Annotations"] = dict(spec.annotations)
    return doc


def _tmpfs_options(m: MountSpec) -> str:
    """A tmpfs mount's options as ``--tmpfs`` writes them (``size=1m,mode=1777``)."""
    opts = [f"size={m.tmpfs_size}"] if m.tmpfs_size else []
    if m.tmpfs_mode:
        opts.append(f"mode={m.tmpfs_mode:o}")
    if m.readonly:
        opts.append("ro")
    return ",".join([*opts, *m.options])


def _port_bindings(rec: ContainerRecord) -> dict[str, Any]:
    """The ports the container publishes, as asked at create (host ports chosen then)."""
    out: dict[str, Any] = {}
    for p in rec.spec.ports:
        out.setdefault(f"{p.container_port}/{p.protocol}", []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port)}
        )
    return out


def _masked() -> list[str]:
    from capsa.engine.containers.specgen import MASKED_PATHS

    return list(MASKED_PATHS)


def _readonly() -> list[str]:
    from capsa.engine.containers.specgen import READONLY_PATHS

    return list(READONLY_PATHS)


def _ulimit(text: str) -> dict[str, Any]:
    name, _, value = text.partition("=")
    soft, _, hard = value.partition(":")
    return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}


def _mounts(rec: ContainerRecord, files: ContainerFiles) -> list[dict[str, Any]]:
    out = []
    for m in rec.spec.mounts:
        if m.type == "volume":
            source = files.volumes.get(m.source, "")
            out.append(
                {
                    "Type": "volume",
                    "Name": m.source,
                    "Source": source,
                    "Destination": m.target,
                    "Driver": "local",
                    "Mode": "z" if not m.readonly else "ro",
                    "RW": not m.readonly,
                    "Propagation": "",
                }
            )
        elif m.type == "bind":
            out.append(
                {
                    "Type": "bind",
                    "Source": m.source,
                    "Destination": m.target,
                    "Mode": "",
                    "RW": not m.readonly,
                    "Propagation": m.propagation or "rprivate",
                }
            )
        else:
            out.append(
                {
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": m.target,
                    "Mode": "",
                    "RW": not m.readonly,
                    "Propagation": "",
                }
            )
    return out


def container_inspect(
    service: Containers, rec: ContainerRecord, size: bool = False
) -> dict[str, Any]:
    files = service.files(rec)
    config = _config(service, rec)
    args = (config["Entrypoint"] or []) + (config["Cmd"] or [])
    doc: dict[str, Any] = {
        "Id": rec.id,
        "Created": rec.created,
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": _state(service, rec),
        "Image": rec.image_id,
        "ResolvConfPath": files.resolv_conf,
        "HostnamePath": files.hostname,
        "HostsPath": files.hosts,
        "LogPath": files.log,
        "Name": f"/{rec.name}",
        "RestartCount": rec.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _host_config(rec),
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": ":".join(files.lowers),
                "UpperDir": files.upper,
                "WorkDir": files.work,
                "MergedDir": files.merged,
            },
        },
        "Mounts": _mounts(rec, files),
        "Config": config,
        "NetworkSettings": network_settings(service, rec),
    }
    if size:
        doc["SizeRw"] = service.rw_size(rec)
        doc["SizeRootFs"] = service.root_fs_size(rec, doc["SizeRw"])
    return doc


def ports(rec: ContainerRecord) -> dict[str, Any]:
    """``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}``."""
    out: dict[str, Any] = {}
    for p in rec.spec.ports:
        out.setdefault(f"{p.container_port}/{p.protocol}", []).append(
            {"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)}
        )
    return out


def _ipam_config(ep: Endpoint) -> dict[str, str] | None:
    """The address asked for (``--ip``, ``network connect --ip``); null if none."""
    return {"IPv4Address": ep.requested_ip} if ep.requested_ip else None


def _configured(ip: str) -> dict[str, Any]:
    """A stopped container's network, as configured: no addresses, the ``--ip`` asked."""
    return {
        "IPAMConfig": {"IPv4Address": ip} if ip else None,
        "Links": None,
        "Aliases": None,
        "MacAddress": "",
        "DriverOpts": None,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def network_settings(service: Containers, rec: ContainerRecord) -> dict[str, Any]:
    endpoints = service.endpoints(rec)
    networks = {}
    for ep in endpoints:
        networks[ep.network_name] = {
            "IPAMConfig": _ipam_config(ep),
            "Links": None,
            "Aliases": ep.aliases or None,
            "MacAddress": ep.mac,
            "DriverOpts": None,
            "NetworkID": ep.network_id,
            "EndpointID": ep.id,
            "Gateway": ep.gateway,
            "IPAddress": ep.ip,
            "IPPrefixLen": ep.prefix_len,
            "IPv6Gateway": "",
            "GlobalIPv6Address": ep.ip6,
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": ep.dns_names or None,
        }
    mode = rec.spec.network_mode
    if not networks and mode and not mode.startswith("container:"):
        networks = {mode: _configured(rec.spec.ip)}
        if mode not in ("none", "host"):
            networks.update({a.name: _configured(a.ip) for a in rec.spec.networks})
    first = endpoints[0] if endpoints else None
    return {
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports(rec),
        "SandboxKey": f"/proc/{rec.pid}/ns/net" if rec.pid else "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": first.id if first else "",
        "Gateway": first.gateway if first else "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": first.ip if first else "",
        "IPPrefixLen": first.prefix_len if first else 0,
        "IPv6Gateway": "",
        "MacAddress": first.mac if first else "",
        "Networks": networks,
    }


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=4)


# -- the list (``GET /containers/json``) -------------------------------------------------


def container_summary(
    service: Containers,
    rec: ContainerRecord,
    size: bool = False,
    images: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One item of Docker's container list. ``images``: image configs already read
    (by image id), shared by the items of one list."""
    import time

    spec = rec.spec
    entry, cmd = spec.entrypoint, spec.command
    if entry is None or cmd is None:
        cache = images if images is not None else {}
        if rec.image_id not in cache:
            try:
                cache[rec.image_id] = service.image_config(rec).config
            except Exception:  # the image is gone (rmi -f): no command of its to show
                cache[rec.image_id] = None
        cfg = cache[rec.image_id]
        if entry is None:
            entry = (cfg.entrypoint if cfg else None) or []
            if cmd is None:
                cmd = (cfg.cmd if cfg else None) or []
    args = [*(entry or []), *(cmd or [])]
    health = service.health(rec) if rec.state is State.RUNNING else None
    doc: dict[str, Any] = {
        "Id": rec.id,
        "Names": [f"/{rec.name}"],
        "Image": rec.image_name,
        "ImageID": rec.image_id,
        "Command": " ".join(args),
        "Created": _epoch(rec.created),
        "Ports": _summary_ports(rec),
        "Labels": dict(spec.labels),
        "State": rec.state.value,
        "Status": status_text(rec, health, time.time()),
        "HostConfig": {"NetworkMode": spec.network_mode},
        "NetworkSettings": {"Networks": network_settings(service, rec)["Networks"]},
        "Mounts": _mounts(rec, service.files(rec)) if spec.mounts else [],
    }
    if spec.annotations:
        doc["HostConfig"]["Annotations"] = dict(spec.annotations)
    if size:
        doc["SizeRw"] = service.rw_size(rec)
        doc["SizeRootFs"] = service.root_fs_size(rec, doc["SizeRw"])
    return doc


def _summary_ports(rec: ContainerRecord) -> list[dict[str, Any]]:
    """Published ports while the container runs (Docker shows none otherwise)."""
    if rec.state not in (State.RUNNING, State.PAUSED):
        return []
    out = []
    for p in rec.spec.ports:
        item: dict[str, Any] = {
            "IP": p.host_ip or "0.0.0.0",
            "PrivatePort": p.container_port,
            "PublicPort": p.host_port,
            "Type": p.protocol,
        }
        out.append(item)
    return out


def _epoch(stamp: str) -> int:
    from capsa.syntax.durations import rfc3339_ns

    try:
        return rfc3339_ns(stamp) // 1_000_000_000
    except Exception:
        return 0


def status_text(rec: ContainerRecord, health: dict[str, Any] | None, now: float) -> str:
    """Docker's ``Status``: ``Up 5 minutes (healthy)``, ``Exited (0) 2 seconds ago``..."""

    from capsa.syntax.durations import human_duration

    def since(stamp: str) -> str:
        return human_duration(now - _epoch_float(stamp)) if stamp else "Less than a second"

    if rec.state in (State.RUNNING, State.PAUSED):
        text = "Up " + since(rec.started_at)
        if rec.state is State.PAUSED:
            return text + " (Paused)"
        status = (health or {}).get("Status")
        if status == "starting":
            return text + " (health: starting)"
        if status in ("healthy", "unhealthy"):
            return f"{text} ({status})"
        return text
    code = "unknown" if rec.exit_code is None else str(rec.exit_code)
    if rec.state is State.RESTARTING:
        return f"Restarting ({code}) {since(rec.finished_at)} ago"
    if rec.state is State.EXITED:
        return f"Exited ({code}) {since(rec.finished_at)} ago"
    if rec.state is State.REMOVING:
        return "Removal In Progress"
    if rec.state is State.DEAD:
        return "Dead"
    return "Created"


def _epoch_float(stamp: str) -> float:
    from capsa.syntax.durations import rfc3339_ns

    try:
        return rfc3339_ns(stamp) / 1e9
    except Exception:
        return 0.0
