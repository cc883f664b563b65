"""Shared set-up for the API benchmarks: capsa's service and podman's, each on a private
socket with private state, the same busybox image in both, clients for each, cleanup.

- capsa: ``.venv/bin/capsa system service --socket BASE/capsa.sock`` on private
  ``CAPSA_ROOT``/``CAPSA_RUNROOT`` (the image: ``capsa import -c 'CMD ["/bin/sh"]'``);
- podman: ``podman system service --time=0 unix://BASE/pm/podman.sock`` with private
  ``--root/--runroot/--tmpdir``, a private containers.conf (network config dir, default
  subnet, events log), cgroupfs and the file events backend (tests/helpers/podman_service.py);
  the image: ``podman import --change 'CMD ["/bin/sh"]'`` of the same tarball.

Both are reached the same ways: ``side.docker(...)`` (the docker CLI, ``DOCKER_HOST`` set,
a private ``DOCKER_CONFIG``), ``side.request(...)`` (raw HTTP) and ``side.client()``
(docker-py). ``close()`` removes every container, stops both services and removes their
state; it prints what it had to remove by force.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CAPSA, ROOT, median_ms, timed  # noqa: F401  (re-exported)
from tests.helpers.api import Reply, _UnixConnection
from tests.helpers.podman_service import IMAGE, PodmanService
from tests.helpers.rootfs import build_busybox_rootfs

DOCKER = shutil.which("docker") or "docker"

__all__ = ["IMAGE", "ApiPeers", "Side", "command_line", "median_ms", "table", "timed"]


class Side:
    """One Docker-API service as the benchmarks drive it."""

    def __init__(self, name: str, socket: Path, config_dir: Path) -> None:
        self.name = name
        self.socket = socket
        self.url = f"unix://{socket}"
        self.env = {**os.environ, "DOCKER_HOST": self.url, "DOCKER_CONFIG": str(config_dir)}
        self.env.pop("DOCKER_CONTEXT", None)
        self.pid = 0

    def docker(
        self, *args: str, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 300)
        if "input" not in kwargs:
            kwargs.setdefault("stdin", subprocess.DEVNULL)
        try:
            proc = subprocess.run([DOCKER, *args], env=self.env, **kwargs)
        except subprocess.TimeoutExpired as e:
            raise SystemExit(
                f"{self.name}: docker {' '.join(args)} still runs after {e.timeout} s: {e.stderr!r}"
            ) from None
        if check and proc.returncode != 0:
            raise SystemExit(
                f"{self.name}: docker {' '.join(args)} -> {proc.returncode}: {proc.stderr}"
            )
        return proc

    def request(self, method: str, path: str, body: Any = None, timeout: float = 120) -> Reply:
        import json

        conn = _UnixConnection(str(self.socket), timeout)
        try:
            data = None
            headers = {}
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return Reply(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.url, version="auto", timeout=300)


class ApiPeers:
    """capsa's and podman's services side by side, private state under one temp dir."""

    def __init__(self) -> None:
        # a SIGTERM (timeout, kill) still runs close(): no service or state left behind
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        # short: podman refuses a run root over 50 characters, and a container's attach
        # socket below capsa's run root must fit in 107 bytes
        self.base = Path(tempfile.mkdtemp(prefix="cab", dir="/tmp"))
        rootfs = build_busybox_rootfs(self.base / "rootfs", probe=False)
        self.tarball = self.base / "busybox.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(self.tarball), "."], check=True)
        shutil.rmtree(rootfs)
        self.capsa_env = dict(
            os.environ, CAPSA_ROOT=str(self.base / "c"), CAPSA_RUNROOT=str(self.base / "cr")
        )
        self.capsa_env.pop("CAPSA_CONFIG", None)
        (self.base / "dc").mkdir()
        self.capsa = Side("capsa", self.base / "capsa.sock", self.base / "dc")
        self._capsa_proc: subprocess.Popen[bytes] | None = None
        self.pm = PodmanService(self.base / "pm")
        self.podman = Side("podman", self.pm.socket, self.pm.docker_config)
        self.capsa_cli("import", "-c", 'CMD ["/bin/sh"]', str(self.tarball), IMAGE)
        self.pm.load_image(self.tarball)

    @property
    def sides(self) -> tuple[Side, Side]:
        return self.capsa, self.podman

    def capsa_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([CAPSA, *args], env=self.capsa_env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise SystemExit(f"capsa {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    # -- the services ----------------------------------------------------------------------
    def start(self) -> None:
        self.start_capsa()
        self.start_podman()

    def start_capsa(self) -> None:
        log = open(self.base / "capsa-service.log", "ab")  # noqa: SIM115
        self._capsa_proc = subprocess.Popen(
            [CAPSA, "system", "service", "--socket", str(self.capsa.socket)],
            env=self.capsa_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        self.capsa.pid = self._capsa_proc.pid
        _wait_ping(self.capsa, self._capsa_proc)

    def start_podman(self) -> None:
        self.pm.start()
        self.podman.pid = self.pm.pid()

    def stop_capsa(self) -> None:
        proc = self._capsa_proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            print("capsa's service ignored SIGTERM for 20 s: killed", file=sys.stderr)
            proc.kill()
            proc.wait()

    def close(self) -> None:
        left: list[str] = []
        ids = self.capsa_cli("ps", "-aq", check=False).stdout.split()
        if ids:
            self.capsa_cli("rm", "-f", *ids, check=False)
        self.capsa_cli("volume", "prune", "-f", "-a", check=False)
        self.stop_capsa()
        self.capsa_cli("network", "prune", "-f", check=False)
        run = self.base / "cr"  # the monitor host's socket, awake or asleep (.asleep)
        deadline = time.monotonic() + 30
        while list(run.glob("monitor-host.sock*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        left += self.pm.close()
        for pid, cmd in _processes_naming(str(self.base)):
            left.append(f"process {pid} {cmd[:120]}")
            os.kill(pid, signal.SIGKILL)
        with open("/proc/self/mountinfo") as f:
            points = [ln.split()[4] for ln in f if ln.split()[4].startswith(str(self.base))]
        left += [f"mount {p}" for p in points]
        for p in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", p], check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        if left:
            print("cleanup had to remove:\n  " + "\n  ".join(left), file=sys.stderr)


def _wait_ping(side: Side, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{side.name}'s service exited {proc.returncode}")
        try:
            if side.request("GET", "/_ping", timeout=5).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{side.name}'s service did not answer /_ping in {timeout}s")


def _processes_naming(marker: str) -> list[tuple[int, str]]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                raw = Path("/proc", entry, "cmdline").read_bytes()
            except OSError:
                continue
            cmd = raw.replace(b"\0", b" ").decode(errors="replace")
            if marker in cmd:
                out.append((int(entry), cmd))
    return out


# -- output ------------------------------------------------------------------------------------


def command_line() -> str:
    """How this run was started, to print beside its table."""
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table (as docs/benchmarks.md writes them)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- timing ------------------------------------------------------------------------------------


def interleaved(work: dict[str, Any], runs: int, warmup: int = 2) -> dict[str, list[float]]:
    """``work``: side name -> function; each called ``warmup + runs`` times, the sides
    alternating and which goes first alternating by round; seconds of the timed runs."""
    names = list(work)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + runs):
        order = names if i % 2 == 0 else names[::-1]
        for n in order:
            t = timed(work[n])
            if i >= warmup:
                out[n].append(t)
    return out


def p90_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))] * 1000


def ratio_rows(label: str, times: dict[str, list[float]]) -> list[object]:
    """``label | capsa median (p90) | podman median (p90) | ratio`` from interleaved times."""
    c, p = median_ms(times["capsa"]), median_ms(times["podman"])
    return [
        label,
        f"{c:.1f} ms ({p90_ms(times['capsa']):.1f})",
        f"{p:.1f} ms ({p90_ms(times['podman']):.1f})",
        f"**{c / p:.2f}**",
    ]


RATIO_HEADER = ["measure", "capsa median (p90)", "podman median (p90)", "ratio capsa/podman"]


def report(title: str, header: list[str], rows: list[list[object]], extra: str = "") -> None:
    print(f"\n{title}\n")
    print(table(header, rows))
    if extra:
        print(f"\n{extra}")
    print(f"\ncommand: {command_line()}")
    print(f"at: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
