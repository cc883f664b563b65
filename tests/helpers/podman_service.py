"""``podman system service`` on a private socket and private storage: the Docker-API peer
that capsa's service is compared with (response shapes in tests, timings in benchmarks).

Nothing of the machine's podman state is used or changed:

- storage, run root and tmp dir (``--root``, ``--runroot``, ``--tmpdir``: its database,
  locks' alive file, containers' userdata, volumes) under one private base directory;
- a private ``containers.conf`` (``CONTAINERS_CONF``): the machine's settings (its ulimits,
  runc; MACHINE.md) plus ``network_config_dir`` under the base (a network created through
  the service is written there, not to /etc/containers/networks), a ``default_subnet``
  away from every route of the host (podman's default ``10.88.0.0/16`` is capsa's too),
  and the events log file under the base;
- ``--cgroup-manager cgroupfs`` and ``--events-backend file`` (these machines have cgroup v1
  and no journald for podman), ``--runtime runc`` (crun refuses hybrid cgroups).

The image is the tests' busybox tarball imported as ``localhost/capsa-test/busybox:latest``
(``podman import --change 'CMD ["/bin/sh"]'``, as ``capsa import -c`` makes capsa's), so a
Docker request naming ``capsa-test/busybox:latest`` finds it on both sides.

``close()`` removes every container (``rm -af -t 0``), stops the service (SIGTERM, then
SIGKILL after 20 s), runs ``system reset -f``, lazily unmounts what is left under the base,
removes the cgroups podman left for the containers this service made (their ids come from
its private events log; the shared ``libpod_parent`` stays unless this service made it),
deletes the base, and returns what was left over: processes naming the base, mounts under
it, cgroups and network namespaces of its containers.

The module works without pytest (the benchmarks use it); the fixture ``podman_service``
(module scope) needs pytest and the ``busybox_tarball`` fixture of tests/helpers/capsa_cli.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers.api import Reply, unix_request

IMAGE = "capsa-test/busybox:latest"  # what requests name; podman stores it under localhost/
PODMAN_IMAGE = f"localhost/{IMAGE}"
MACHINE_CONF = Path("/etc/containers/containers.conf")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class PodmanError(RuntimeError):
    pass


# -- private configuration -----------------------------------------------------------------


def host_routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    dsts = [r.get("dst", "") for r in json.loads(out or "[]")]
    nets = []
    for d in dsts:
        if d and d != "default":
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.IPv4Network(d, strict=False))
    return nets


def free_subnet() -> str:
    """A /24 in 10.200-250.x.0 that overlaps no route of the host nor capsa's default."""
    busy = [*host_routes(), ipaddress.IPv4Network("10.88.0.0/16")]
    start = os.getpid() % 256  # parallel users start at different places
    for i in range(256):
        third = (start + i) % 256
        for second in range(231, 251):
            net = ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
            if not any(net.overlaps(b) for b in busy):
                return str(net)
    raise PodmanError("no free subnet for podman's default network")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise PodmanError(f"cannot write {value!r} to containers.conf")


def _toml(doc: dict[str, Any]) -> str:
    """containers.conf's subset of TOML: tables of scalars and lists (and one level of
    sub-tables, e.g. [engine.runtimes])."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        subs = {}
        for key, value in body.items():
            if isinstance(value, dict):
                subs[key] = value
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, value in subs.items():
            table(f"{name}.{key}", value)

    for name, body in doc.items():
        if isinstance(body, dict):
            table(name, body)
    return "\n".join(lines) + "\n"


def private_conf(base: Path) -> Path:
    """The machine's containers.conf with private network, events and runtime settings."""
    doc: dict[str, Any] = {}
    if MACHINE_CONF.exists():
        with contextlib.suppress(tomllib.TOMLDecodeError, OSError):
            doc = tomllib.loads(MACHINE_CONF.read_text())
    doc.setdefault("containers", {}).setdefault(
        "default_ulimits", ["nofile=20000:20000", "nproc=32768:32768"]
    )
    engine = doc.setdefault("engine", {})
    engine.update(
        runtime="runc",
        cgroup_manager="cgroupfs",
        events_logger="file",
        events_logfile_path=str(base / "events.log"),
    )
    network = doc.setdefault("network", {})
    (base / "networks").mkdir(exist_ok=True)
    network.update(
        network_backend="netavark",
        network_config_dir=str(base / "networks"),
        default_subnet=free_subnet(),
    )
    conf = base / "containers.conf"
    conf.write_text(_toml(doc))
    return conf


# -- the service ---------------------------------------------------------------------------


class PodmanService:
    """podman with private state under ``base``, and its Docker-API service on
    ``base/podman.sock``. ``base`` must be short: podman refuses a run root over 50
    characters."""

    def __init__(self, base: Path) -> None:
        self.base = base
        (base / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf = private_conf(base)
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}
        self.env.pop("CONTAINER_HOST", None)
        self.env.pop("CONTAINER_CONNECTION", None)
        self.argv = [
            "podman",
            "--root",
            str(base / "root"),
            "--runroot",
            str(base / "run"),
            "--tmpdir",
            str(base / "tmp"),
            "--runtime",
            shutil.which("runc") or "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]
        self.socket = base / "podman.sock"
        self.url = f"unix://{self.socket}"
        self.docker_config = base / "docker-config"
        self.docker_config.mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = base / "service.log"
        self._had_parent = any(CGROUP_ROOT.glob("*/libpod_parent"))
        self._sandboxes: set[str] = set()

    # -- podman's own CLI --------------------------------------------------------------
    def podman(
        self, *args: str, check: bool = True, timeout: float = 120, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.argv, *args],
            input=None if input is None else input.decode(errors="surrogateescape"),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def load_image(self, tarball: Path, ref: str = PODMAN_IMAGE) -> None:
        """The busybox rootfs tarball as ``ref`` (``CMD ["/bin/sh"]``, like capsa's)."""
        self.podman("import", "--change", 'CMD ["/bin/sh"]', str(tarball), ref)

    # -- the service -------------------------------------------------------------------
    def start(self, timeout: float = 30) -> None:
        with open(self._log, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.argv, "system", "service", "--time=0", self.url],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise PodmanError(f"podman system service exited: {self.log_text()}")
            with contextlib.suppress(OSError, http_exceptions()):
                if self.request("GET", "/_ping", timeout=5).status == 200:
                    return
            if time.monotonic() > deadline:
                raise PodmanError(f"podman system service did not answer in {timeout}s")
            time.sleep(0.05)

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self._log.read_text(errors="replace")[-4000:]
        return ""

    def stop_service(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # -- clients -----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Reply:
        """One HTTP request; ``body``: bytes as they are, anything else as JSON."""
        return unix_request(str(self.socket), method, path, body, headers, timeout)

    def docker_env(self) -> dict[str, str]:
        env = {**os.environ, "DOCKER_HOST": self.url, "DOCKER_CONFIG": str(self.docker_config)}
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this service."""
        proc = subprocess.run(
            ["docker", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.docker_env(),
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise PodmanError(f"docker {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.url, version="auto", timeout=120)

    # -- cleanup -----------------------------------------------------------------------
    def container_ids(self) -> set[str]:
        """Every container this podman ever made: its events log, and its store now."""
        ids: set[str] = set()
        with contextlib.suppress(OSError):
            for line in (self.base / "events.log").read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if event.get("Type") == "container" and event.get("ID"):
                        ids.add(event["ID"])
        with contextlib.suppress(OSError):
            ids |= set(os.listdir(self.base / "root" / "overlay-containers"))
        return {i for i in ids if len(i) == 64}

    def close(self) -> list[str]:
        """Remove everything; what was left over (and then removed by force)."""
        ids = self.container_ids()
        self._sandboxes |= self._sandbox_keys()
        if self.proc is not None:
            self.podman("rm", "-af", "-t", "0", check=False)
            self.podman("volume", "rm", "-af", check=False)
        self.stop_service()
        self.podman("system", "reset", "-f", check=False)
        deadline = time.monotonic() + 10
        while True:
            left = self.leftovers(ids | self.container_ids())
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self._force_clean(ids | self.container_ids())
        with contextlib.suppress(OSError):
            os.unlink(self.conf)
        if not _mounts_under(self.base):
            shutil.rmtree(self.base, ignore_errors=True)
        return left

    def leftovers(self, ids: set[str]) -> list[str]:
        out = [f"mount {m}" for m in _mounts_under(self.base)]
        out += [f"process {pid} {cmd[:160]}" for pid, cmd in _processes_naming(str(self.base))]
        for cid in ids:
            out += [f"cgroup {p}" for p in CGROUP_ROOT.glob(f"*/libpod_parent/libpod-{cid}")]
        out += [f"netns {n}" for n in sorted(self._sandboxes) if os.path.lexists(n)]
        return out

    def _sandbox_keys(self) -> set[str]:
        """The network namespaces (``/run/netns/netns-...``) of the containers there are."""
        proc = self.podman("ps", "-a", "--format", "{{.ID}}", check=False, timeout=60)
        ids = proc.stdout.split()
        if not ids:
            return set()
        got = self.podman(
            "inspect", "--format", "{{.NetworkSettings.SandboxKey}}", *ids, check=False
        )
        return {k for k in got.stdout.split() if k.startswith("/")}

    def _force_clean(self, ids: set[str]) -> None:
        for pid, _ in _processes_naming(str(self.base)):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for point in sorted(_mounts_under(self.base), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        for ns in self._sandboxes:
            subprocess.run(["umount", "-l", ns], check=False, capture_output=True)
            with contextlib.suppress(OSError):
                os.unlink(ns)
        for cid in ids:
            for path in CGROUP_ROOT.glob(f"*/libpod_parent/libpod-{cid}"):
                _rmdir_tree(path)
        if not self._had_parent:  # podman's cgroupfs parent, made for this service
            for parent in CGROUP_ROOT.glob("*/libpod_parent"):
                _rmdir_tree(parent)


def http_exceptions() -> type[Exception]:
    import http.client

    return http.client.HTTPException


def _mounts_under(base: Path) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(str(base)):
            points.append(point)
    return points


def _processes_naming(marker: str) -> Iterator[tuple[int, str]]:
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        with contextlib.suppress(OSError):
            raw = Path("/proc", entry, "cmdline").read_bytes()
            cmd = raw.replace(b"\0", b" ").decode(errors="replace")
            if marker in cmd:
                yield int(entry), cmd


def _rmdir_tree(path: Path) -> None:
    for sub in sorted(path.glob("**/"), key=lambda p: len(str(p)), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()


# -- pytest fixture ------------------------------------------------------------------------


def _fixture() -> Any:
    import pytest

    @pytest.fixture(scope="module")
    def podman_service(busybox_tarball: Path) -> Iterator[PodmanService]:
        """podman's Docker-API service with the tests' busybox image (module scope)."""
        from tests.helpers import requires

        requires("podman", "conmon", "runc")
        base = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
        service = PodmanService(base)
        try:
            service.load_image(busybox_tarball)
            service.start()
        except PodmanError as e:
            service.close()
            pytest.skip(f"podman's service is not usable here: {e}")
        try:
            yield service
        finally:
            left = service.close()
        assert not left, "podman's service left:\n  " + "\n  ".join(left)

    return podman_service


podman_service = _fixture()
