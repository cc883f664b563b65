"""The monitor host: after a few seconds a container's supervision moves from its own
monitor to one host process per run root, which then relays its output, records its
exit, applies its restart policy and exits itself when it supervises nothing. The
monitor becomes the container's shim (the init's parent, a page of machine code); an
idle host goes to sleep and wakes for output, exits, attaches and commands."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import IMAGE, CapsaCli
from tests.helpers.host import cmdline, free_subnet, ppid

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root


def _hosts(capsa: CapsaCli) -> list[int]:
    return [pid for pid in capsa.monitor_pids() if cmdline(pid).startswith("capsa-monitor host")]


def _keepers(capsa: CapsaCli) -> list[int]:
    return [p for p in capsa.monitor_pids() if cmdline(p).startswith("capsa-monitor databases")]


def _shim(capsa: CapsaCli, name: str) -> int:
    """The parent of the container's init if it is a shim (0 if not)."""
    parent = ppid(capsa.pid(name))
    return parent if cmdline(parent).startswith("capsa-monitor shim") else 0


def _asleep(pid: int) -> bool:
    """The host is the sleeper, not an interpreter: its program is a sealed memfd."""
    try:
        return os.readlink(f"/proc/{pid}/exe").startswith("/memfd:")
    except OSError:
        return False


def _handed_over(capsa: CapsaCli, *names: str) -> int:
    """Wait until one host serves the run root and every named container's init is the
    child of its shim (a monitor that handed over to the host); the host's pid."""
    found: list[int] = []

    def ready() -> bool:
        hosts = _hosts(capsa)
        found[:] = hosts
        return len(hosts) == 1 and all(_shim(capsa, n) for n in names)

    capsa.wait_for(ready, timeout=15, what="the monitor host to adopt the containers")
    return found[0]


def test_one_host_adopts_every_running_container(capsa: CapsaCli) -> None:
    names = [capsa.name() for _ in range(3)]
    for name in names:
        capsa.detached("--name", name, "--init")
    host = _handed_over(capsa, *names)
    assert os.getsid(host) == host, "the host is not in its own session"
    shims = {_shim(capsa, n) for n in names}
    helpers = {host, *_keepers(capsa), *shims}
    left = [p for p in capsa.monitor_pids() if p not in helpers]
    assert not left, f"per-container monitors still running: {left}"
    for shim in shims:  # the monitor became the shim: a sealed memfd, no interpreter
        assert ppid(shim) == host and os.readlink(f"/proc/{shim}/exe").startswith("/memfd:")
    for name in names:
        assert capsa.status(name) == "running"
        assert capsa.run("exec", name, "true").returncode == 0


def test_logs_flow_and_exit_is_recorded_after_handover(capsa: CapsaCli) -> None:
    name = capsa.name()
    script = "i=0; while [ $i -lt 6 ]; do echo line$i; i=$((i+1)); sleep 1; done; exit 3"
    capsa.detached("--name", name, cmd=("sh", "-c", script))
    _handed_over(capsa, name)
    capsa.wait_status(name, "exited", timeout=20)
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "3"
    lines = capsa.run("logs", name).stdout.split()
    assert lines == [f"line{i}" for i in range(6)]


def test_attached_client_gets_output_and_exit_code_after_handover(capsa: CapsaCli) -> None:
    name = capsa.name()
    script = "sleep 5; echo late; exit 7"
    proc = capsa.run("run", "--name", name, IMAGE, "sh", "-c", script, timeout=30, check=False)
    assert proc.returncode == 7
    assert proc.stdout.strip() == "late"


def test_restart_policy_applies_after_handover(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--restart", "on-failure:1", cmd=("sh", "-c", "sleep 4; exit 1"))
    capsa.wait_for(lambda: capsa.fmt(name, "{{.RestartCount}}") == "1", 30, "one restart")
    capsa.wait_status(name, "exited", timeout=30)
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "1"


def test_stop_after_handover_records_signal_and_host_exits(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name)
    host = _handed_over(capsa, name)
    capsa.run("stop", "-t", "1", name)
    assert capsa.status(name) == "exited"
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "137"
    capsa.wait_for(lambda: not cmdline(host), 10, "the idle host to exit")


def test_host_keeps_the_databases_open_while_it_serves(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    host = _handed_over(capsa, name)
    capsa.run("ps", "-a")
    (keeper,) = _keepers(capsa)  # a child of the host that never forks
    assert ppid(keeper) == host
    db = str(capsa.root / "containers.db")
    assert db in capsa_cli._fd_links(keeper), "the keeper does not hold the database"
    wal = capsa.root / "containers.db-wal"
    assert wal.exists(), "a command's close checkpointed the database"
    capsa.run("stop", "-t", "1", name)
    capsa.wait_for(lambda: not cmdline(host) and not cmdline(keeper), 10, "both exit")
    assert not wal.exists(), "the keeper's last close did not checkpoint"


def test_killed_host_loses_no_container(capsa: CapsaCli) -> None:
    """The shim keeps the container; the next command starts a host that adopts it."""
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    host = _handed_over(capsa, name)
    shim = _shim(capsa, name)
    os.kill(host, signal.SIGKILL)
    capsa.wait_for(lambda: not cmdline(host) or "defunct" in cmdline(host), 10, "the kill")
    assert capsa.status(name) == "running"  # and a new host for the shim
    capsa.wait_for(lambda: len(_hosts(capsa)) == 1, 10, "a new host")
    assert _hosts(capsa) != [host] and _shim(capsa, name) == shim
    assert capsa.run("exec", name, "true").returncode == 0
    other = capsa.name()
    capsa.detached("--name", other, "--init")  # the new host serves new containers
    assert capsa.status(other) == "running"
    capsa.run("stop", "-t", "5", name, other)
    assert capsa.status(name) == "exited" and capsa.fmt(name, "{{.State.ExitCode}}") == "143"
    assert capsa.status(other) == "exited"


def test_an_idle_host_sleeps_and_wakes_for_output_an_attach_and_the_exit(
    capsa: CapsaCli, tmp_path: Path
) -> None:
    """Asleep, the host is a page of machine code; the container's output wakes it (the
    line is logged), so does an ``attach``, and the exit (recorded with its code)."""
    name = capsa.name()
    wait = "until [ -e /x/{0} ]; do sleep 0.1; done"
    script = f"echo first; {wait.format('more')}; echo second; {wait.format('end')}; exit 5"
    os.chmod(tmp_path, 0o755)
    cid = capsa.detached("--name", name, "-v", f"{tmp_path}:/x", cmd=("sh", "-c", script))
    host = _handed_over(capsa, name)
    log = capsa.root / "containers" / cid / "json.log"
    capsa.wait_for(lambda: _asleep(host), 30, "the host to go to sleep")
    (tmp_path / "more").touch()  # no capsa command: the output itself must wake it
    capsa.wait_for(lambda: "second" in log.read_text(), 10, "the host to log the output")
    assert _hosts(capsa) == [host], "not the same host"
    capsa.wait_for(lambda: _asleep(host), 30, "the host to go back to sleep")
    from capsa.engine.containers.attach import connect_unix

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        connect_unix(client, str(capsa.runroot / "containers" / cid / "attach.sock"))
        capsa.wait_for(lambda: not _asleep(host), 10, "an attach to wake the host")
    capsa.wait_for(lambda: _asleep(host), 30, "the host to sleep once the client left")
    (tmp_path / "end").touch()
    capsa.wait_status(name, "exited", timeout=20)
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "5"
    assert capsa.run("logs", name).stdout.split() == ["first", "second"]


def test_a_monitor_spawned_on_its_own_hands_over_to_the_run_roots_host(capsa: CapsaCli) -> None:
    """A threaded caller (an API server) spawns ``python -m capsa.engine.monitor.setup`` rather
    than fork: its monitor still hands the container over to a host, and becomes its shim."""
    name = capsa.name()
    cid = capsa.run("create", "--name", name, "--init", IMAGE, "sleep", "300").stdout.split()[-1]
    capsa.ids.add(cid)
    from capsa.engine.monitor.args import MonitorArgs, Roots, dumps

    roots = Roots(root=str(capsa.root), runroot=str(capsa.runroot))
    args = dumps(MonitorArgs(roots=roots, id=cid, name=name))
    log = capsa.runroot / "containers" / cid / "monitor.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "capsa.engine.monitor.setup", args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    host = _handed_over(capsa, name)
    assert ppid(_shim(capsa, name)) != host  # the host did not fork it
    capsa.run("stop", "-t", "5", name)
    assert capsa.status(name) == "exited" and capsa.fmt(name, "{{.State.ExitCode}}") == "143"


def test_lingering_host_serves_the_next_container_then_exits(capsa: CapsaCli) -> None:
    env = {**capsa.env, "CAPSA_MONITOR_LINGER": "3"}
    first = subprocess.run(
        capsa.argv("run", "--rm", IMAGE, "true"), env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    (host,) = _hosts(capsa)  # still up, with nothing to supervise
    second = subprocess.run(
        capsa.argv("run", "--rm", IMAGE, "true"), env=env, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    assert _hosts(capsa) == [host], "the second container did not use the lingering host"
    capsa.wait_for(lambda: not cmdline(host), 10, "the host to exit after lingering")


def test_lingering_host_keeps_an_idle_network_up_until_it_exits(capsa: CapsaCli) -> None:
    bridge = f"capsa-test-{secrets.token_hex(2)}"
    net = capsa.name()
    option = f"com.docker.network.bridge.name={bridge}"
    capsa.run("network", "create", "--subnet", free_subnet(), "-o", option, net)
    try:
        env = {**capsa.env, "CAPSA_MONITOR_LINGER": "3"}
        for _ in range(2):  # the second run finds the network up
            proc = subprocess.run(
                capsa.argv("run", "--rm", "--network", net, IMAGE, "true"),
                env=env,
                capture_output=True,
                text=True,
            )
            assert proc.returncode == 0, proc.stderr
            assert Path("/sys/class/net", bridge).is_dir(), "the lingering host let it go"
        (host,) = _hosts(capsa)
        capsa.wait_for(lambda: not cmdline(host), 15, "the host to exit after lingering")
        assert not Path("/sys/class/net", bridge).exists(), "the exiting host left the bridge"
        ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
        assert bridge not in ruleset.stdout
    finally:
        capsa.run("network", "rm", net, check=False)


def test_a_host_older_than_capsas_code_starts_monitors_with_the_new_code(
    capsa: CapsaCli,
) -> None:
    """An upgrade under a running host: the next container's monitor runs what is on
    disk now (a fresh interpreter), not the code the host imported at its start."""
    first = capsa.name()
    capsa.detached("--name", first, "--init")
    _handed_over(capsa, first)
    import capsa.engine.containers.specgen as changed  # imported by every host

    path = Path(changed.__file__)
    stat = path.stat()
    try:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        second = capsa.name()
        cid = capsa.detached("--name", second, "--init")
        assert capsa.status(second) == "running"
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    log = (capsa.runroot / "containers" / cid / "monitor.log").read_text()
    assert "capsa changed since the host started" in log
    capsa.run("rm", "-f", first, second)
