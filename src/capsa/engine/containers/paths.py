"""Where a container's files live: data under the root, run state under the runroot."""

from __future__ import annotations

import os


class ContainerPaths:
    def __init__(self, root: str, runroot: str, container_id: str) -> None:
        self.id = container_id
        self.data = os.path.join(root, "containers", container_id)
        self.run = os.path.join(runroot, "containers", container_id)

    @property
    def log(self) -> str:
        return os.path.join(self.data, "json.log")

    @property
    def hosts(self) -> str:
        return os.path.join(self.data, "hosts")

    @property
    def hostname(self) -> str:
        return os.path.join(self.data, "hostname")

    @property
    def resolv_conf(self) -> str:
        return os.path.join(self.data, "resolv.conf")

    @property
    def bundle(self) -> str:
        return os.path.join(self.run, "bundle")

    @property
    def rootfs(self) -> str:
        return os.path.join(self.run, "rootfs")

    @property
    def attach_socket(self) -> str:
        return os.path.join(self.run, "attach.sock")

    @property
    def monitor_log(self) -> str:
        return os.path.join(self.run, "monitor.log")

    def make(self) -> None:
        os.makedirs(self.data, mode=0o700, exist_ok=True)
        os.makedirs(self.bundle, mode=0o700, exist_ok=True)
        os.makedirs(self.rootfs, mode=0o755, exist_ok=True)


def runtime_root(runroot: str) -> str:
    """The state directory capsa's runtime (or runc) keeps its containers in."""
    return os.path.join(runroot, "runtime")
