"""The monitor host: after a few seconds a container's supervision moves from its own
monitor to one host process per run root, which then relays its output, records its
exit, applies its restart policy and exits itself when it supervises nothing."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
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


def _guardians(capsa: CapsaCli) -> list[int]:
    return [p for p in capsa.monitor_pids() if cmdline(p).startswith("capsa-monitor guardian")]


def _handed_over(capsa: CapsaCli, *names: str) -> int:
    """Wait until one host is the parent of every named container's init; its pid."""
    found: list[int] = []

    def ready() -> bool:
        hosts = _hosts(capsa)
        found[:] = hosts
        return len(hosts) == 1 and all(ppid(capsa.pid(n)) == hosts[0] for n in names)

    capsa.wait_for(ready, timeout=15, what="the monitor host to adopt the containers")
    return found[0]


def test_one_host_adopts_every_running_container(capsa: CapsaCli) -> None:
    names = [capsa.name() for _ in range(3)]
    for name in names:
        capsa.detached("--name", name, "--init")
    host = _handed_over(capsa, *names)
    assert os.getsid(host) == host, "the host is not in its own session"
    helpers = {host, *_keepers(capsa), *_guardians(capsa)}
    left = [p for p in capsa.monitor_pids() if p not in helpers]
    assert not left, f"per-container monitors still running: {left}"
    assert _guardians(capsa) == [ppid(host)], "the host has no guardian for its parent"
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
    (guardian,) = _guardians(capsa)  # the host's parent holds them, never forking after
    assert ppid(host) == guardian and not _keepers(capsa)
    capsa.run("ps", "-a")
    db = str(capsa.root / "containers.db")
    assert db in capsa_cli._fd_links(guardian), "the guardian does not hold the database"
    wal = capsa.root / "containers.db-wal"
    assert wal.exists(), "a command's close checkpointed the database"
    capsa.run("stop", "-t", "1", name)
    capsa.wait_for(lambda: not cmdline(host) and not cmdline(guardian), 10, "both exit")
    assert not wal.exists(), "the guardian's last close did not checkpoint"


def test_killed_host_loses_no_container(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    host = _handed_over(capsa, name)
    (guardian,) = _guardians(capsa)
    os.kill(host, signal.SIGKILL)
    capsa.wait_for(lambda: _hosts(capsa) == [guardian], 10, "the guardian to become the host")
    assert ppid(capsa.pid(name)) == guardian
    assert capsa.status(name) == "running"
    assert capsa.run("exec", name, "true").returncode == 0
    other = capsa.name()
    capsa.detached("--name", other, "--init")  # the new host serves new containers
    assert capsa.status(other) == "running"
    capsa.run("stop", "-t", "5", name, other)
    assert capsa.status(name) == "exited" and capsa.fmt(name, "{{.State.ExitCode}}") == "143"
    assert capsa.status(other) == "exited"


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
    import capsa.engine.specgen as changed  # imported by every host

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
