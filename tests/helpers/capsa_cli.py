"""The ``capsa`` command line driven as a user would: private roots, a busybox image, cleanup.

Fixtures (import them into a test module, or list this module in ``pytest_plugins``):

- ``busybox_tarball`` (session): the busybox rootfs (with /probe) as a tar file.
- ``capsa_module`` (module): private CAPSA_ROOT/CAPSA_RUNROOT with ``capsa-test/busybox:latest``
  imported once (``capsa import -c 'CMD ["/bin/sh"]'``).
- ``capsa`` (function): a :class:`CapsaCli` on the module's roots. At teardown it force-removes
  every container and fails the test if mounts under the roots, monitor processes or
  ``capsa-<id>`` cgroups of its containers remain.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import unique_name
from tests.helpers.probe import Probe, parse_probe

IMAGE = "capsa-test/busybox:latest"
CAPSA = str(Path(sys.executable).parent / "capsa")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CLEANUP_GRACE = 6.0


class CapsaCli:
    """``capsa`` with private roots; every call checks that no traceback escaped."""

    image = IMAGE

    def __init__(self, root: Path, runroot: Path, network: str | None = "none") -> None:
        """``network``: the ``--network`` given to ``run``/``create`` that name none (the
        bridge costs a veth and nftables rules per container; tests of the default network
        set it to None)."""
        self.network = network
        self.root = root
        self.runroot = runroot
        self.env = {
            **os.environ,
            "CAPSA_ROOT": str(root),
            "CAPSA_RUNROOT": str(runroot),
        }
        self.env.pop("CAPSA_CONFIG", None)
        self.ids: set[str] = set()

    # -- running commands --------------------------------------------------------

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """``capsa *args``; with ``check`` fail the test unless it exits 0."""
        try:
            proc = subprocess.run(
                [CAPSA, *self._defaults(args)],
                input=input,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"capsa {' '.join(args)} still runs after {timeout}s: {e.stderr!r}")
        assert "Traceback" not in proc.stderr, f"capsa {' '.join(args)}:\n{proc.stderr}"
        if check and proc.returncode != 0:
            pytest.fail(
                f"capsa {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        self._remember(args, proc.stdout)
        return proc

    def _remember(self, args: tuple[str, ...], stdout: str) -> None:
        lines = stdout.strip().splitlines()
        if args[:1] in (("create",), ("run",)) and lines and _is_id(lines[-1]):
            self.ids.add(lines[-1])

    def argv(self, *args: str) -> list[str]:
        """The full command line, roots given as flags (for a pty child without our env)."""
        roots = ["--root", str(self.root), "--runroot", str(self.runroot)]
        return [CAPSA, *roots, *self._defaults(args)]

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """``capsa *args`` in the background (text pipes unless given)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen([CAPSA, *self._defaults(args)], env=self.env, text=True, **kwargs)

    def _defaults(self, args: tuple[str, ...]) -> tuple[str, ...]:
        if not self.network or args[:1] not in (("run",), ("create",)):
            return args
        if any(a.startswith(("--network", "--net")) for a in args):
            return args
        return (args[0], "--network", self.network, *args[1:])

    def json(self, *args: str) -> Any:
        return jsonlib.loads(self.run(*args).stdout)

    def inspect(self, name: str) -> dict[str, Any]:
        (doc,) = self.json("inspect", "--type", "container", name)
        assert isinstance(doc, dict)
        return doc

    def fmt(self, name: str, template: str) -> str:
        return self.run("inspect", "-f", template, name).stdout.strip()

    def status(self, name: str) -> str:
        return self.fmt(name, "{{.State.Status}}")

    def full_id(self, name: str) -> str:
        cid = self.fmt(name, "{{.Id}}")
        self.ids.add(cid)
        return cid

    def pid(self, name: str) -> int:
        return int(self.fmt(name, "{{.State.Pid}}"))

    def sh(self, script: str, *flags: str) -> subprocess.CompletedProcess[str]:
        """``run --rm FLAGS IMAGE sh -c SCRIPT`` (not checked)."""
        return self.run("run", "--rm", *flags, IMAGE, "sh", "-c", script, check=False)

    def probe(self, *flags: str, sections: tuple[str, ...] = ()) -> Probe:
        """``/probe`` in a throw-away container started with ``flags``."""
        proc = self.run("run", "--rm", *flags, IMAGE, "/probe", *sections)
        return parse_probe(proc.stdout)

    def detached(self, *flags: str, cmd: tuple[str, ...] = ("sleep", "300")) -> str:
        """``run -d FLAGS IMAGE CMD``; the full id. Use ``--init`` for quick stops."""
        cid = self.run("run", "-d", *flags, IMAGE, *cmd).stdout.strip().splitlines()[-1]
        self.ids.add(cid)
        return cid

    def name(self) -> str:
        return unique_name()

    # -- waiting and the host's view -----------------------------------------------

    def wait_for(self, predicate: Any, timeout: float = 15, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
            time.sleep(0.05)

    def wait_status(self, name: str, status: str, timeout: float = 15) -> None:
        self.wait_for(lambda: self.status(name) == status, timeout, f"{name} {status}")

    def cgroup(self, cid: str, controller: str) -> Path:
        """The host directory of the container's v1 cgroup for ``controller``."""
        return CGROUP_ROOT / controller / f"capsa-{cid}"

    def cgroup_value(self, cid: str, controller: str, file: str) -> str:
        return (self.cgroup(cid, controller) / file).read_text().strip()

    def monitor_pids(self) -> list[int]:
        """Monitor processes serving this module's roots."""
        return [pid for pid, _ in self._monitors()]

    def monitor_pid(self, cid: str) -> int:
        """The monitor of container ``cid`` (it holds the container's log files open)."""
        found = [pid for pid, links in self._monitors() if any(cid in link for link in links)]
        assert found, f"no monitor for {cid}"
        return found[0]

    def _monitors(self) -> list[tuple[int, list[str]]]:
        out = []
        for pid, cmd in _processes():
            if cmd.startswith("capsa-monitor") or "capsa.engine.monitor.setup" in cmd:
                links = _fd_links(pid)
                if self._ours(cmd) or any(self._ours(link) for link in links):
                    out.append((pid, links))
        return out

    def _ours(self, text: str) -> bool:
        return str(self.root) in text or str(self.runroot) in text

    # -- cleanup ---------------------------------------------------------------------

    def all_ids(self) -> set[str]:
        proc = self.run("ps", "-aq", "--no-trunc", check=False)
        ids = set(proc.stdout.split()) | self.ids
        with contextlib.suppress(OSError):
            ids |= set(os.listdir(self.root / "containers"))
        return ids

    def cleanup(self) -> list[str]:
        """Force-remove every container; what remained (and was then removed by force)."""
        live = self.run("ps", "-aq", "--no-trunc", check=False).stdout.split()
        ids = set(live) | self.ids
        with contextlib.suppress(OSError):
            ids |= set(os.listdir(self.root / "containers"))
        problems: list[str] = []
        if live:
            proc = self.run("rm", "-f", "-v", *live, check=False)
            if proc.returncode:
                problems.append(f"rm -f failed: {proc.stderr.strip()}")
        deadline = time.monotonic() + CLEANUP_GRACE
        while True:
            left = self.leftovers(ids)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if left:
            problems += left
            _force_remove(left, self)
        still = self.run("ps", "-aq", "--no-trunc", check=False).stdout.split() if live else []
        if still:  # records whose processes were just killed: keep the next test clean
            problems.append(f"still listed after rm -f: {' '.join(c[:12] for c in still)}")
            self.run("rm", "-f", "-v", *still, check=False)
        self.ids.clear()
        if problems:  # what the monitor host said helps to tell why
            with contextlib.suppress(OSError):
                log = (self.runroot / "monitor-host.log").read_text().splitlines()
                problems += [f"monitor host: {line}" for line in log[-10:]]
        return problems

    def leftovers(self, ids: set[str]) -> list[str]:
        out = [f"mount {m}" for m in self.mounts()]
        monitors = set(self.monitor_pids())
        for pid, cmd in _processes():
            if pid in monitors or self._ours(cmd) or self._ours(_readlink(f"/proc/{pid}/root")):
                out.append(f"process {pid} {cmd[:160]}")
        for cid in ids:
            out += [f"cgroup {p}" for p in CGROUP_ROOT.glob(f"*/capsa-{cid}")]
        return out

    def mounts(self) -> list[str]:
        points = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith((str(self.root), str(self.runroot))):
                points.append(point)
        return points


def _is_id(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _fd_links(pid: int) -> list[str]:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    return [_readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]


def _processes() -> Iterator[tuple[int, str]]:
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        with contextlib.suppress(OSError):
            raw = Path("/proc", entry, "cmdline").read_bytes()
            yield int(entry), raw.replace(b"\0", b" ").decode(errors="replace")


def _force_remove(left: list[str], cli: CapsaCli) -> None:
    """Last resort after a failed cleanup, so one broken test does not break the next."""
    from capsa.linux.syscalls import MNT_DETACH, umount2

    for item in left:
        kind, _, rest = item.partition(" ")
        with contextlib.suppress(OSError, ValueError):
            if kind == "process":
                os.kill(int(rest.split()[0]), signal.SIGKILL)
    time.sleep(0.2)
    for point in sorted(cli.mounts(), key=len, reverse=True):
        with contextlib.suppress(OSError):
            umount2(point, MNT_DETACH)
    for item in left:
        kind, _, rest = item.partition(" ")
        if kind == "cgroup":
            _remove_cgroup(Path(rest))


def _remove_cgroup(path: Path) -> None:
    with contextlib.suppress(OSError):
        if (path / "freezer.state").exists():
            (path / "freezer.state").write_text("THAWED")
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 3
    while path.exists() and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            path.rmdir()
        time.sleep(0.05)


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def busybox_tarball(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox rootfs (with /probe) packed as a tar file, made once."""
    out = tmp_path_factory.mktemp("busybox-tar") / "busybox.tar"
    with tarfile.open(out, "w") as tar:
        for entry in sorted(os.listdir(busybox_rootfs)):
            tar.add(busybox_rootfs / entry, arcname=entry)
    return out


@pytest.fixture(scope="module")
def capsa_module(busybox_tarball: Path) -> Iterator[CapsaCli]:
    """Private roots for one test module, with ``capsa-test/busybox:latest`` imported.

    A short base under /tmp: a container's attach socket lives below the run root and a
    unix socket path has at most 107 bytes."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="ct", dir="/tmp"))
    cli = CapsaCli(base / "root", base / "r")
    cli.run("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tarball), IMAGE, timeout=120)
    yield cli
    problems = cli.cleanup()
    if not cli.mounts():
        shutil.rmtree(base, ignore_errors=True)
    assert not problems, "module cleanup left:\n  " + "\n  ".join(problems)


@pytest.fixture
def capsa(capsa_module: CapsaCli) -> Iterator[CapsaCli]:
    """The module's ``capsa``; fails the test if its containers leave anything behind."""
    yield capsa_module
    problems = capsa_module.cleanup()
    if problems:
        pytest.fail("capsa left behind:\n  " + "\n  ".join(problems))
