"""Docker's JSON shapes for the system endpoints (``/info``), from engine reports."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.system.info import SystemInfo


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
        "Swarm": {"LocalNodeState": "inactive"},
        "LiveRestoreEnabled": True,  # containers outlive the CLI and the API server
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": info.security_options,
        "Warnings": info.warnings or None,
    }
