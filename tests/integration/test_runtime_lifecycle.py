"""OCI runtime lifecycle: create/start/state/kill/delete/list/run, through the CLI."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers import wait_for
from tests.helpers.bundle import BundleFactory, sh
from tests.helpers.runtime import Runtime

pytestmark = pytest.mark.root

# PID 1 ignores SIGTERM unless it has a handler: trap it so that stopping is quick.
LOOP = 'trap "exit 0" TERM; while :; do sleep 0.05; done'


def _cgroups_of(factory: BundleFactory, bundle: Path) -> list[Path]:
    """The bundle's cgroup directories (its cgroupsPath is /<token>/<bundle name>)."""
    return list(Path("/sys/fs/cgroup").glob(f"*/{factory.token}/{bundle.name}"))


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_create_waits_for_start(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(sh("echo ran > /tmp/marker"))
    cid = runtime.new_id()
    runtime.run("create", "--bundle", str(b), cid)
    state = runtime.state(cid)
    assert state["status"] == "created"
    assert state["id"] == cid
    assert state["pid"] > 0
    assert Path(state["bundle"]).resolve() == b.resolve()
    time.sleep(0.2)
    assert not (b / "rootfs/tmp/marker").exists()
    runtime.run("start", cid)
    runtime.wait_status(cid, "stopped")
    assert (b / "rootfs/tmp/marker").read_text() == "ran\n"
    runtime.run("delete", cid)
    assert runtime.status(cid) is None


def test_status_transitions(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = runtime.new_id()
    runtime.run("create", "--bundle", str(bundle(sh(LOOP))), cid)
    assert runtime.status(cid) == "created"
    runtime.run("start", cid)
    assert runtime.status(cid) == "running"
    runtime.run("pause", cid)
    assert runtime.status(cid) == "paused"
    runtime.run("resume", cid)
    assert runtime.status(cid) == "running"
    runtime.run("kill", cid, "TERM")
    runtime.wait_status(cid, "stopped")
    runtime.run("delete", cid)
    assert runtime.status(cid) is None


def test_start_twice_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = runtime.new_id()
    runtime.run("create", "--bundle", str(bundle(sh(LOOP))), cid)
    runtime.run("start", cid)
    assert runtime.run("start", cid, check=False).returncode != 0
    assert runtime.status(cid) == "running"


def test_kill_sends_the_named_signal(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = runtime.new_id()
    # No handler: PID 1 of the namespace ignores TERM but not KILL.
    runtime.run("run", "-d", "--bundle", str(bundle(["sleep", "100"])), cid)
    runtime.run("kill", cid, "TERM")
    time.sleep(0.2)
    assert runtime.status(cid) == "running"
    runtime.run("kill", cid, "KILL")
    runtime.wait_status(cid, "stopped")


def test_kill_by_number_and_default_term(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(sh('trap "echo got-usr1 >> /tmp/log" USR1; ' + LOOP))
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(b), cid)
    runtime.run("kill", cid, str(int(signal.SIGUSR1)))
    wait_for(lambda: (b / "rootfs/tmp/log").exists(), what="USR1 handled")
    runtime.run("kill", cid)
    runtime.wait_status(cid, "stopped")


def test_kill_all(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(sh("sleep 100 & sleep 100 & echo up > /tmp/up; wait"))
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(b), cid)
    wait_for(lambda: (b / "rootfs/tmp/up").exists(), what="children started")
    runtime.run("kill", "--all", cid, "KILL")
    runtime.wait_status(cid, "stopped")


def test_delete_running_without_force_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(bundle(sh(LOOP))), cid)
    proc = runtime.run("delete", cid, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip()
    assert runtime.status(cid) == "running"


def test_delete_force_leaves_nothing(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "100"])
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(b), cid)
    pid = runtime.state(cid)["pid"]
    assert _cgroups_of(bundle, b), "no cgroup was made for the container"
    runtime.run("delete", "--force", cid)
    assert runtime.status(cid) is None
    assert not (runtime.root / cid).exists()
    wait_for(lambda: _gone(pid), what=f"pid {pid} to exit")
    assert _cgroups_of(bundle, b) == []


def test_delete_unknown_container_fails(runtime: Runtime) -> None:
    proc = runtime.run("delete", runtime.new_id(), check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip()


def test_list(runtime: Runtime, bundle: BundleFactory) -> None:
    running, created = runtime.new_id(), runtime.new_id()
    b1, b2 = bundle(sh(LOOP)), bundle(sh(LOOP))
    runtime.run("run", "-d", "--bundle", str(b1), running)
    runtime.run("create", "--bundle", str(b2), created)
    table = runtime.run("list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[running][2] == "running"
    assert rows[created][2] == "created"
    listed = {c["id"]: c for c in json.loads(runtime.run("list", "--format", "json").stdout)}
    assert set(listed) == {running, created}
    assert listed[running]["status"] == "running"
    assert listed[created]["status"] == "created"
    assert Path(listed[running]["bundle"]).resolve() == b1.resolve()
    assert listed[running]["pid"] == runtime.state(running)["pid"]


def test_list_empty_root(runtime: Runtime) -> None:
    proc = runtime.run("list", "--format", "json")
    assert json.loads(proc.stdout or "null") in (None, [])


@pytest.mark.parametrize("code", [0, 3, 42])
def test_run_returns_exit_code(runtime: Runtime, bundle: BundleFactory, code: int) -> None:
    cid = runtime.new_id()
    proc = runtime.run("run", "--bundle", str(bundle(sh(f"exit {code}"))), cid, check=False)
    assert proc.returncode == code, proc.stderr
    assert runtime.status(cid) is None  # run deletes the container when it exits


def test_run_killed_by_signal_returns_128_plus_n(
    runtime: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    cid = runtime.new_id()
    proc = runtime.spawn("run", "--bundle", str(bundle(["sleep", "100"])), cid)
    runtime.wait_status(cid, "running")
    runtime.run("kill", cid, "KILL")
    assert proc.wait(timeout=10) == 128 + signal.SIGKILL


def test_run_foreground_relays_output(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(sh("echo to-out; echo to-err >&2; cat"))
    proc = runtime.run("run", "--bundle", str(b), runtime.new_id(), input="from-stdin\n")
    assert proc.stdout == "to-out\nfrom-stdin\n"
    assert "to-err" in proc.stderr


def test_run_detached(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(bundle(sh(LOOP))), cid)
    assert runtime.status(cid) == "running"
    runtime.run("kill", cid, "TERM")
    runtime.wait_status(cid, "stopped")
    runtime.run("delete", cid)


def test_bundle_defaults_to_current_directory(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(sh("exit 5"))
    proc = runtime.run("run", runtime.new_id(), cwd=b, check=False)
    assert proc.returncode == 5, proc.stderr


def _read_until_eof(fd: int, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return data
            data += chunk
    raise AssertionError(f"no EOF after {timeout}s; read {data!r}")


def test_create_passes_its_stdio_to_the_container(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(sh("echo hello from the container"))
    cid = runtime.new_id()
    r, w = os.pipe()
    try:
        proc = runtime.spawn("create", "--bundle", str(b), cid, stdout=w)
        os.close(w)
        w = -1
        assert proc.wait(timeout=30) == 0
        runtime.run("start", cid)
        assert _read_until_eof(r, timeout=10) == b"hello from the container\n"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_pid_file(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    created, detached = runtime.new_id(), runtime.new_id()
    pid1, pid2 = tmp_path / "create.pid", tmp_path / "run.pid"
    runtime.run("create", "--pid-file", str(pid1), "--bundle", str(bundle(sh(LOOP))), created)
    runtime.run("run", "-d", "--pid-file", str(pid2), "--bundle", str(bundle(sh(LOOP))), detached)
    assert int(pid1.read_text()) == runtime.state(created)["pid"]
    assert int(pid2.read_text()) == runtime.state(detached)["pid"]


def test_duplicate_id_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = runtime.new_id()
    runtime.run("create", "--bundle", str(bundle(sh(LOOP))), cid)
    proc = runtime.run("create", "--bundle", str(bundle(sh(LOOP))), cid, check=False)
    assert proc.returncode != 0
    assert runtime.status(cid) == "created"


def _break_root(b: Path) -> None:
    config = json.loads((b / "config.json").read_text())
    config["root"]["path"] = "no-such-rootfs"
    (b / "config.json").write_text(json.dumps(config))


def _break_json(b: Path) -> None:
    (b / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')


def _bad_namespace(b: Path) -> None:
    config = json.loads((b / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "bogus"})
    (b / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("breakage", [_break_root, _break_json, _bad_namespace])
def test_bad_config_fails_cleanly(
    runtime: Runtime, bundle: BundleFactory, breakage: Callable[[Path], None]
) -> None:
    b = bundle(["true"])
    breakage(b)
    cid = runtime.new_id()
    proc = runtime.run("create", "--bundle", str(b), cid, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert runtime.status(cid) is None
    assert not (runtime.root / cid).exists()
    assert _cgroups_of(bundle, b) == []


def test_state_of_unknown_container_fails(runtime: Runtime) -> None:
    proc = runtime.run("state", runtime.new_id(), check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip()


def test_ps_lists_container_processes(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(sh("sleep 100 & echo up > /tmp/up; " + LOOP))
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(b), cid)
    wait_for(lambda: (b / "rootfs/tmp/up").exists(), what="child started")
    pids = json.loads(runtime.run("ps", "--format", "json", cid).stdout)
    init = runtime.state(cid)["pid"]
    assert init in pids
    assert len(pids) >= 2  # the shell and its sleep 100


def test_features(runtime: Runtime) -> None:
    features = json.loads(runtime.run("features").stdout)
    assert features["ociVersionMin"].startswith("1.")
    assert {"prestart", "poststop"} <= set(features["hooks"])
    assert {"bind", "ro", "nosuid"} <= set(features["mountOptions"])
    namespaces = set(features["linux"]["namespaces"])
    assert {"pid", "network", "ipc", "uts", "mount", "user", "cgroup"} <= namespaces
