"""exec: a new process in a running container's namespaces and cgroup."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.helpers.bundle import BundleFactory, sh
from tests.helpers.probe import parse_probe
from tests.helpers.runtime import Runtime

pytestmark = pytest.mark.root

IDLE = 'trap "exit 0" TERM; while :; do sleep 0.05; done'


@pytest.fixture
def running(runtime: Runtime, bundle: BundleFactory) -> str:
    """A running idle container's id."""
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(bundle(sh(IDLE))), cid)
    return cid


def test_exec_args(runtime: Runtime, running: str) -> None:
    proc = runtime.run("exec", running, "/bin/echo", "hello", "world")
    assert proc.stdout == "hello world\n"


def test_exec_joins_the_namespaces(runtime: Runtime, running: str) -> None:
    init = runtime.state(running)["pid"]
    probe = parse_probe(runtime.run("exec", running, "/probe", "namespaces", "ids").stdout)
    for kind in ("pid", "net", "ipc", "uts", "mnt"):
        assert probe.namespace(kind) == os.readlink(f"/proc/{init}/ns/{kind}")
    assert probe.number("pid") > 1
    assert probe.get("hostname") == "runc"


def test_exec_joins_the_cgroup(runtime: Runtime, running: str) -> None:
    init = runtime.state(running)["pid"]
    proc = runtime.run("exec", running, "cat", "/proc/self/cgroup")
    assert sorted(proc.stdout.splitlines()) == sorted(
        Path(f"/proc/{init}/cgroup").read_text().splitlines()
    )


def test_exec_cwd_env_user(runtime: Runtime, running: str) -> None:
    out = runtime.run(
        "exec",
        "--cwd",
        "/tmp",
        "--env",
        "FOO=bar",
        "--user",
        "1000:1000",
        running,
        "/probe",
        "ids",
        "status",
        "environment",
    ).stdout
    probe = parse_probe(out)
    assert probe.get("cwd") == "/tmp"
    assert probe.env["FOO"] == "bar"
    assert (probe.uid, probe.gid) == (1000, 1000)
    assert probe.cap("eff") == 0


def test_exec_inherits_process_env_and_caps(runtime: Runtime, running: str) -> None:
    probe = parse_probe(runtime.run("exec", running, "/probe", "status", "environment").stdout)
    assert probe.env["PATH"].startswith("/usr/local/sbin")
    assert probe.get("nonewprivs") == "1"


def test_exec_process_file(runtime: Runtime, running: str, tmp_path: Path) -> None:
    process = {
        "args": ["/probe", "ids", "status", "environment"],
        "cwd": "/home/user",
        "env": ["PATH=/bin", "FROM_FILE=yes"],
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [10]},
        "terminal": False,
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    probe = parse_probe(runtime.run("exec", "--process", str(path), running).stdout)
    assert probe.get("cwd") == "/home/user"
    assert probe.env["FROM_FILE"] == "yes"
    assert (probe.uid, probe.gid) == (1000, 1000)
    assert 10 in probe.groups


def test_exec_detached_with_pid_file(runtime: Runtime, running: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "exec.pid"
    runtime.run("exec", "-d", "--pid-file", str(pid_file), running, "sleep", "30")
    pid = int(pid_file.read_text())
    init = runtime.state(running)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0030\x00"


@pytest.mark.parametrize("code", [0, 7])
def test_exec_exit_code(runtime: Runtime, running: str, code: int) -> None:
    proc = runtime.run("exec", running, "sh", "-c", f"exit {code}", check=False)
    assert proc.returncode == code, proc.stderr


def test_exec_missing_binary_fails(runtime: Runtime, running: str) -> None:
    proc = runtime.run("exec", running, "/no/such/binary", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip()
    assert runtime.status(running) == "running"


def test_exec_stdin(runtime: Runtime, running: str) -> None:
    proc = runtime.run("exec", running, "cat", input="piped in\n")
    assert proc.stdout == "piped in\n"


def test_exec_into_paused_fails(runtime: Runtime, running: str) -> None:
    runtime.run("pause", running)
    proc = runtime.run("exec", running, "true", check=False, timeout=10)
    assert proc.returncode != 0
    assert proc.stderr.strip()
    runtime.run("resume", running)


def test_exec_into_stopped_fails(runtime: Runtime, running: str) -> None:
    runtime.run("kill", running, "KILL")
    runtime.wait_status(running, "stopped")
    proc = runtime.run("exec", running, "true", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip()


def test_exec_into_unknown_fails(runtime: Runtime) -> None:
    proc = runtime.run("exec", runtime.new_id(), "true", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip()
