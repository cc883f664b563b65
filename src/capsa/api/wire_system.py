"""Docker's JSON shapes for the system endpoints (``/info``, ``/system/df``), from
engine reports."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.protocol import Containers
    from capsa.engine.system.info import SystemInfo
    from capsa.engine.system.types import DiskUsage


def docker_info(info: SystemInfo) -> dict[str, Any]:
    """Docker's ``GET /info`` document (the fields capsa can fill)."""
    return {
        "ID": info.id,
        "Containers": info.containers,
        "ContainersRunning": info.running,
        "ContainersPaused": info.paused,
        "ContainersStopped": info.stopped,
        "Images": info.images,
        "Driver": info.storage_driver,
        "DriverStatus": [],
        "Plugins": {
            "Volume": info.volume_plugins,
            "Network": info.network_plugins,
            "Authorization": None,
            "Log": info.log_plugins,
        },
        "MemoryLimit": True,
        "SwapLimit": not any("swap" in w for w in info.warnings),
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "OomKillDisable": info.cgroup_version == 1,
        "Debug": False,
        "KernelMemoryTCP": False,
        "IPv4Forwarding": info.ipv4_forwarding,
        "BridgeNfIptables": info.bridge_nf_iptables,
        "BridgeNfIp6tables": info.bridge_nf_ip6tables,
        "NFd": info.open_fds,
        "NGoroutines": info.threads,
        "NEventsListener": 0,
        "HttpProxy": info.http_proxy,
        "HttpsProxy": info.https_proxy,
        "NoProxy": info.no_proxy,
        "GenericResources": None,
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SystemTime": info.system_time,
        "LoggingDriver": info.logging_driver,
        "CgroupDriver": info.cgroup_driver,
        "CgroupVersion": str(info.cgroup_version),
        "KernelVersion": info.kernel_version,
        "OperatingSystem": info.operating_system,
        "OSVersion": info.os_version,
        "OSType": "linux",
        "Architecture": info.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": [r for r in info.insecure_registries if "/" in r],
            "IndexConfigs": {},
            "Mirrors": info.registry_mirrors,
        },
        "NCPU": info.ncpu,
        "MemTotal": info.mem_total,
        "DockerRootDir": info.root_dir,
        "Name": info.name,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": info.server_version,
        "Runtimes": {name: {"path": path} for name, path in info.runtimes.items()},
        "DefaultRuntime": info.default_runtime,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,  # containers outlive the CLI and the API server
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": info.security_options,
        "Warnings": info.warnings or None,
    }


def disk_usage(service: Containers, usage: DiskUsage) -> dict[str, Any]:
    """``GET /system/df``: the images, containers and volumes with their sizes."""
    from capsa.api.wire import image_summary
    from capsa.api.wire_containers import container_summary
    from capsa.api.wire_volumes import volume_inspect

    images = []
    for item in usage.images:
        doc = image_summary(item.summary)
        doc["SharedSize"] = item.shared_size
        images.append(doc)
    containers = []
    for c in usage.containers:
        doc = container_summary(service, c.record)
        doc["SizeRw"] = c.size_rw
        doc["SizeRootFs"] = service.root_fs_size(c.record, c.size_rw)
        containers.append(doc)
    volumes = []
    for v in usage.volumes:
        doc = volume_inspect(v.volume)
        doc["UsageData"] = {"Size": v.size, "RefCount": v.links}
        volumes.append(doc)
    return {
        "LayersSize": usage.items[0].size if usage.items else 0,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    }
