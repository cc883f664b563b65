"""podman drives capsa-runtime as its OCI runtime (conmon calls create/start/state/kill/
delete/exec with --pid-file, --console-socket and --detach).

podman runs with private storage (--root/--runroot) and --network none, so the test
leaves nothing in the machine's podman store and no netavark state.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from tests.helpers import requires, unique_name
from tests.helpers.rootfs import build_busybox_rootfs

pytestmark = [pytest.mark.root, pytest.mark.podman]

RUNTIME = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "capsa-runtime"
IMAGE = "localhost/capsa-test-busybox:latest"


class Podman:
    def __init__(self, base: Path) -> None:
        self.argv = [
            "podman",
            "--root",
            str(base / "storage"),
            "--runroot",
            str(base / "run"),
            "--runtime",
            str(RUNTIME),
            "--runtime-flag",  # its state (and seccomp cache) under the test's base too
            f"root={base / 'runtime'}",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--tmpdir",
            str(base / "tmp"),
        ]

    def __call__(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.argv, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="module")
def podman():
    requires("podman", "conmon")
    if not RUNTIME.exists():
        pytest.skip("capsa-runtime is not installed in .venv")
    # short: podman refuses a runroot over 50 characters (pytest's numbered temp
    # directories grow past that)
    base = Path(tempfile.mkdtemp(prefix="cpr", dir="/tmp"))
    had_parent = any(Path("/sys/fs/cgroup").glob("*/libpod_parent"))
    (base / "tmp").mkdir()
    rootfs = build_busybox_rootfs(base / "rootfs", probe=True)
    pm = Podman(base)
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
    imp = subprocess.run(
        [*pm.argv, "import", "--change", 'CMD ["/bin/sh"]', "-", IMAGE],
        input=tar.stdout,
        capture_output=True,
        check=False,
    )
    assert imp.returncode == 0, imp.stderr.decode()
    yield pm
    pm("rm", "-a", "-f", "-t", "0", check=False)
    pm("system", "reset", "-f", check=False)
    _unmount_under(base)
    shutil.rmtree(base, ignore_errors=True)
    if not had_parent:  # podman's cgroupfs parent, created for this test
        for parent in Path("/sys/fs/cgroup").glob("*/libpod_parent"):
            for sub in sorted(parent.glob("**/"), key=lambda p: len(str(p)), reverse=True):
                sub.rmdir()


def _unmount_under(base: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if str(base) in line.split()[4]]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def test_run_rm_echo(podman: Podman) -> None:
    out = podman("run", "--rm", "--network", "none", IMAGE, "echo", "hi")
    assert out.stdout == "hi\n"


def test_run_exit_code_and_isolation(podman: Podman) -> None:
    out = podman(
        "run",
        "--rm",
        "--network",
        "none",
        "--hostname",
        "podcapsa",
        IMAGE,
        "sh",
        "-c",
        "hostname; echo pid=$$; exit 3",
        check=False,
    )
    assert out.returncode == 3, out.stderr
    assert out.stdout.splitlines() == ["podcapsa", "pid=1"]


def test_detached_exec_stop(podman: Podman) -> None:
    name = unique_name()
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    )
    try:
        out = podman("exec", name, "sh", "-c", "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '")
        assert out.stdout.splitlines()[0] == "in-exec"
        assert "while true" in out.stdout
        code = podman("exec", name, "sh", "-c", "exit 7", check=False).returncode
        assert code == 7
        podman("exec", "-d", name, "sleep", "30")
        podman("stop", "-t", "5", name)
        status = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        assert status.stdout.split() == ["exited", "0"]
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def test_interactive_terminal(podman: Podman) -> None:
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(
            podman.argv[0], [*podman.argv, "run", "--rm", "-it", "--network", "none", IMAGE, "sh"]
        )
    out = _talk(fd, b"echo tty=$(tty); exit 5\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert b"tty=/dev/pts/0" in out
    assert os.waitstatus_to_exitcode(status) == 5


def _talk(fd: int, line: bytes, timeout: float = 30) -> bytes:
    """Wait for the shell prompt, type ``line``, read until the terminal closes."""
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            out += data
        if not sent and b"# " in out:
            os.write(fd, line)
            sent = True
    return out
