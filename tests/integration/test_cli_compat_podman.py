"""The same commands through capsa and, where podman is installed, through podman's
Docker-compatible API (the docker CLI against ``podman system service``): outputs, exit codes
and the JSON field names of ``inspect``.

Podman runs with private storage (``--root/--runroot``), ``--network none`` and runc, so
nothing lands in the machine's podman store; the service and the storage are removed at
the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import capsa_cli, requires, unique_name
from tests.helpers.capsa_cli import IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = [pytest.mark.root, pytest.mark.podman]

PODMAN_IMAGE = "localhost/capsa-test/busybox:latest"

# Keys whose children are user data (label names, network names, env-like maps).
FREE_FORM = {
    "Config.Labels",
    "Config.Volumes",
    "Config.ExposedPorts",
    "HostConfig.LogConfig.Config",
    "HostConfig.PortBindings",
    "HostConfig.Sysctls",
    "HostConfig.StorageOpt",
    "GraphDriver.Data",
    "NetworkSettings.Ports",
    "NetworkSettings.Networks",
    "State.Health.Log",
}

IMPORTANT = [
    "Id",
    "Created",
    "Path",
    "Args",
    "State.Status",
    "State.Running",
    "State.Paused",
    "State.Restarting",
    "State.OOMKilled",
    "State.Dead",
    "State.Pid",
    "State.ExitCode",
    "State.Error",
    "State.StartedAt",
    "State.FinishedAt",
    "Image",
    "Name",
    "RestartCount",
    "LogPath",
    "HostConfig.Memory",
    "HostConfig.MemorySwap",
    "HostConfig.MemoryReservation",
    "HostConfig.NanoCpus",
    "HostConfig.CpuShares",
    "HostConfig.PidsLimit",
    "HostConfig.NetworkMode",
    "HostConfig.RestartPolicy",
    "HostConfig.RestartPolicy.Name",
    "HostConfig.RestartPolicy.MaximumRetryCount",
    "HostConfig.AutoRemove",
    "HostConfig.Binds",
    "HostConfig.CapAdd",
    "HostConfig.CapDrop",
    "HostConfig.Privileged",
    "HostConfig.ReadonlyRootfs",
    "HostConfig.SecurityOpt",
    "HostConfig.LogConfig",
    "HostConfig.Init",
    "HostConfig.ShmSize",
    "HostConfig.Devices",
    "HostConfig.Ulimits",
    "HostConfig.BlkioWeight",
    "HostConfig.BlkioDeviceReadBps",
    "HostConfig.BlkioDeviceWriteBps",
    "HostConfig.BlkioDeviceReadIOps",
    "HostConfig.BlkioDeviceWriteIOps",
    "HostConfig.CpuPeriod",
    "HostConfig.CpuQuota",
    "HostConfig.CpusetCpus",
    "HostConfig.OomKillDisable",
    "Mounts",
    "Mounts[].Type",
    "Mounts[].Source",
    "Mounts[].Destination",
    "Mounts[].Mode",
    "Mounts[].RW",
    "Mounts[].Propagation",
    "Config.Hostname",
    "Config.User",
    "Config.Env",
    "Config.Cmd",
    "Config.Image",
    "Config.Labels",
    "Config.WorkingDir",
    "Config.Entrypoint",
    "Config.Tty",
    "Config.OpenStdin",
    "NetworkSettings",
    "NetworkSettings.Networks",
    "NetworkSettings.SandboxKey",
]


class PodmanPeer:
    """podman with private storage, and the docker CLI talking to its API service."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.argv = [
            "podman",
            "--root",
            str(base / "storage"),
            "--runroot",
            str(base / "run"),
            "--runtime",
            shutil.which("runc") or "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--tmpdir",
            str(base / "tmp"),
        ]
        self.socket = base / "podman.sock"
        self.service: subprocess.Popen[bytes] | None = None

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.argv, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if check and proc.returncode:
            pytest.fail(f"podman {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
        return proc

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}
        env.pop("DOCKER_CONTEXT", None)
        proc = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=120, env=env, check=False
        )
        if check and proc.returncode:
            pytest.fail(f"docker {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
        return proc

    def start_service(self) -> None:
        self.service = subprocess.Popen(
            [*self.argv, "system", "service", "--time=0", f"unix://{self.socket}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while self.docker("version", check=False).returncode != 0:
            if self.service.poll() is not None or time.monotonic() > deadline:
                pytest.skip("podman system service did not come up")
            time.sleep(0.1)

    def close(self) -> None:
        self.podman("rm", "-af", "-t", "0", check=False)
        if self.service is not None:
            self.service.terminate()
            try:
                self.service.wait(10)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()
        self.podman("system", "reset", "-f", check=False)
        _unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def _unmount_under(base: Path) -> None:
    from capsa.linux.syscalls import MNT_DETACH, umount2

    points = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(base))
    ]
    for point in sorted(points, key=len, reverse=True):
        with contextlib.suppress(OSError):
            umount2(point, MNT_DETACH)


@pytest.fixture(scope="module")
def peer(busybox_tarball: Path) -> Iterator[PodmanPeer]:
    requires("podman", "docker", "runc")
    base = Path(tempfile.mkdtemp(prefix="cp", dir="/tmp"))
    peer = PodmanPeer(base)
    try:
        peer.podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_tarball), PODMAN_IMAGE)
        peer.start_service()
        yield peer
    finally:
        peer.close()


def key_paths(doc: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document; list items as ``[]``; free-form maps as a leaf."""
    out: set[str] = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            path = f"{prefix}.{key}" if prefix else key
            out.add(path)
            if path not in FREE_FORM:
                out |= key_paths(value, path)
    elif isinstance(doc, list):
        for item in doc:
            out |= key_paths(item, f"{prefix}[]")
    return out


def _same_container(capsa: CapsaCli, peer: PodmanPeer, tmp_path: Path) -> tuple[dict, dict]:
    name = unique_name()
    (tmp_path / "data").mkdir()
    flags = [
        "--name",
        name,
        "--init",
        "-m",
        "64m",
        "-e",
        "A=1",
        "-l",
        "capsa.test=1",
        "--restart",
        "on-failure:3",
        "-v",
        f"{tmp_path / 'data'}:/data:ro",
        "--health-cmd",
        "true",
        "--health-interval",
        "30s",
        "--cap-add",
        "NET_ADMIN",
        "--ulimit",
        "nofile=1024:2048",
        "--ulimit",
        "nproc=1024:1024",
        "--network",
        "none",
    ]
    capsa.run("run", "-d", *flags, IMAGE, "sleep", "300")
    peer.docker("run", "-d", *flags, PODMAN_IMAGE, "sleep", "300")
    (ours,) = capsa.json("inspect", name)
    (theirs,) = json.loads(peer.docker("inspect", name).stdout)
    peer.docker("rm", "-f", "-t", "0", name, check=False)
    return ours, theirs


def test_inspect_field_names_match_docker(
    capsa: CapsaCli, peer: PodmanPeer, tmp_path: Path
) -> None:
    ours, theirs = _same_container(capsa, peer, tmp_path)
    mine, docker = key_paths(ours), key_paths(theirs)
    missing = sorted(docker - mine)
    if missing:
        warnings.warn(
            "capsa inspect lacks keys Docker's shape has (from podman): " + ", ".join(missing),
            stacklevel=1,
        )
    important_in_peer = [k for k in IMPORTANT if k in docker]
    lacking = [k for k in important_in_peer if k not in mine]
    assert not lacking, f"capsa inspect lacks important keys: {lacking}"
    # the values that say the same thing must agree in type
    for path in ("State.Pid", "State.Running", "HostConfig.Memory", "RestartCount"):
        a, b = _get(ours, path), _get(theirs, path)
        assert type(a) is type(b), f"{path}: capsa {a!r} vs docker {b!r}"
    assert ours["HostConfig"]["Memory"] == theirs["HostConfig"]["Memory"]
    assert ours["HostConfig"]["RestartPolicy"] == theirs["HostConfig"]["RestartPolicy"]
    assert ours["Config"]["Labels"]["capsa.test"] == theirs["Config"]["Labels"]["capsa.test"]
    assert ours["Name"].startswith("/") and theirs["Name"].startswith("/")


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc[part]
    return doc


def test_inspect_has_no_extra_top_level_keys(
    capsa: CapsaCli, peer: PodmanPeer, tmp_path: Path
) -> None:
    ours, theirs = _same_container(capsa, peer, tmp_path)
    extra = sorted(set(ours) - set(theirs) - {"Platform", "Driver", "MountLabel", "ProcessLabel"})
    assert not extra, f"capsa inspect has top-level keys Docker does not: {extra}"


@pytest.mark.parametrize(
    "argv",
    [
        ("sh", "-c", "echo out; echo err >&2; exit 3"),
        ("capsa-test-nosuchcmd",),
        ("/etc/passwd",),
        ("sh", "-c", "id -u; hostname | wc -c; cat /proc/1/comm"),
    ],
)
def test_same_run_same_result(capsa: CapsaCli, peer: PodmanPeer, argv: tuple[str, ...]) -> None:
    ours = capsa.run("run", "--rm", "--network", "none", IMAGE, *argv, check=False)
    # podman's own CLI: podman 4's compat API cannot attach the docker 28 CLI (409)
    theirs = peer.podman("run", "--rm", "--network", "none", PODMAN_IMAGE, *argv, check=False)
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    if theirs.returncode == 0 or argv[0] == "sh":
        assert ours.stdout == theirs.stdout
    assert capsa.run("ps", "-aq").stdout == ""


def test_same_ps_format(capsa: CapsaCli, peer: PodmanPeer) -> None:
    name = unique_name()
    capsa.run("run", "-d", "--name", name, "-l", "k=v", IMAGE, "sh", "-c", "exit 2")
    capsa.run("wait", name)
    peer.docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "-l",
        "k=v",
        PODMAN_IMAGE,
        "sh",
        "-c",
        "exit 2",
    )
    peer.docker("wait", name)
    template = "{{.Names}}|{{.State}}|{{.Labels}}|{{.Command}}"
    ours = capsa.run("ps", "-a", "--no-trunc", "--filter", f"name={name}", "--format", template)
    theirs = peer.docker("ps", "-a", "--no-trunc", "--filter", f"name={name}", "--format", template)
    peer.docker("rm", "-f", name, check=False)
    assert ours.stdout.split("|")[:3] == theirs.stdout.split("|")[:3]
    assert capsa.fmt(name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 2"
