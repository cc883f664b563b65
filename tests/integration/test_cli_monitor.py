"""Per-container monitors: containers outlive the CLI, ps survives a killed monitor,
restart policies with back-off, healthchecks and --health-on-failure, --rm."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

FAST_HEALTH = ("--health-interval", "0.2s", "--health-timeout", "2s")


def _health(capsa: CapsaCli, name: str) -> dict[str, Any]:
    health = capsa.inspect(name)["State"].get("Health")
    assert health is not None, "inspect shows no State.Health"
    assert isinstance(health, dict)
    return health


def _restart_count(capsa: CapsaCli, name: str) -> int:
    return int(capsa.fmt(name, "{{.RestartCount}}"))


# -- survival ----------------------------------------------------------------------------


def test_container_survives_killed_cli(capsa: CapsaCli) -> None:
    name = capsa.name()
    cli = capsa.popen("run", "--name", name, "--init", IMAGE, "sh", "-c", "echo up; sleep 300")
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == "up\n"
        capsa.full_id(name)
        cli.send_signal(signal.SIGKILL)
        cli.wait(10)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    time.sleep(0.3)
    assert capsa.status(name) == "running"
    assert name in capsa.run("ps", "--format", "{{.Names}}").stdout.split()
    assert capsa.run("exec", name, "echo", "alive").stdout == "alive\n"
    capsa.run("stop", "-t", "5", name)
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "143"


def test_detached_container_outlives_cli(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    monitor = capsa.monitor_pid(capsa.full_id(name))
    assert os.getsid(monitor) == monitor, "the monitor is not in its own session"
    assert capsa.status(name) == "running"


def test_ps_right_after_monitor_sigkill_running(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init")
    os.kill(capsa.monitor_pid(cid), signal.SIGKILL)
    time.sleep(0.3)
    proc = capsa.run("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert f"{name} running" in proc.stdout.splitlines()
    assert capsa.status(name) == "running"
    assert capsa.run("exec", name, "true").returncode == 0
    capsa.run("stop", "-t", "5", name)
    assert capsa.status(name) == "exited"


def test_ps_right_after_monitor_sigkill_exited(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, cmd=("sh", "-c", "sleep 1; exit 4"))
    os.kill(capsa.monitor_pid(cid), signal.SIGKILL)
    capsa.wait_status(name, "exited", timeout=15)
    line = capsa.run("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
    assert line.startswith("Exited"), line
    assert not capsa.inspect(name)["State"]["Running"]
    capsa.run("rm", name)


# -- restart policies ---------------------------------------------------------------------------


def test_on_failure_counts_and_stops(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--restart", "on-failure:2", cmd=("sh", "-c", "exit 3"))
    capsa.wait_for(
        lambda: _restart_count(capsa, name) == 2 and capsa.status(name) == "exited",
        timeout=20,
        what="two restarts then exited",
    )
    time.sleep(1)
    assert _restart_count(capsa, name) == 2
    assert capsa.status(name) == "exited"
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "3"


def test_on_failure_does_not_restart_success(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--restart", "on-failure", cmd=("true",))
    capsa.wait_status(name, "exited")
    time.sleep(0.5)
    assert _restart_count(capsa, name) == 0
    assert capsa.status(name) == "exited"


def test_no_policy_does_not_restart(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, cmd=("sh", "-c", "exit 1"))
    capsa.wait_status(name, "exited")
    time.sleep(0.5)
    assert _restart_count(capsa, name) == 0


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_always_restarts_until_stopped(capsa: CapsaCli, policy: str) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--restart", policy, cmd=("sh", "-c", "sleep 0.2; exit 0"))
    capsa.wait_for(lambda: _restart_count(capsa, name) >= 2, timeout=20, what="two restarts")
    capsa.run("stop", "-t", "1", name)
    assert capsa.status(name) == "exited"
    count = _restart_count(capsa, name)
    time.sleep(1.5)
    assert capsa.status(name) == "exited", f"{policy}: restarted after an explicit stop"
    assert _restart_count(capsa, name) == count
    capsa.run("start", name)
    assert capsa.status(name) in ("running", "restarting")


def test_restart_back_off_grows(capsa: CapsaCli) -> None:
    """Docker waits 100 ms, then doubles the delay each time: a container failing at once
    is restarted about five times in four seconds, not dozens of times."""
    name = capsa.name()
    capsa.detached("--name", name, "--restart", "always", cmd=("sh", "-c", "exit 1"))
    time.sleep(4)
    count = _restart_count(capsa, name)
    capsa.run("stop", "-t", "1", name)
    assert 2 <= count <= 9, f"{count} restarts in 4 s: the back-off does not grow"
    status = capsa.run("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}")
    assert status.stdout.startswith("Exited")


def test_rm_conflicts_with_restart(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", "--restart", "always", IMAGE, "true", check=False)
    assert proc.returncode == 125
    assert "restart" in proc.stderr and "rm" in proc.stderr
    assert capsa.run("ps", "-aq").stdout == ""


# -- --rm -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["sleep 0.2", "exit 3"])
def test_rm_removes_after_exit(capsa: CapsaCli, script: str) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--rm", cmd=("sh", "-c", script))
    capsa.wait_for(
        lambda: capsa.run("ps", "-aq", "--no-trunc").stdout.strip() == "",
        timeout=15,
        what="--rm to remove the container",
    )
    assert not (capsa.root / "containers" / cid).exists()


def test_rm_attached_returns_code_and_removes(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", IMAGE, "sh", "-c", "exit 6", check=False)
    assert proc.returncode == 6
    assert capsa.run("ps", "-aq").stdout == ""


# -- healthchecks -------------------------------------------------------------------------------


def test_healthy(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init", "--health-cmd", "echo ok", *FAST_HEALTH)
    capsa.wait_for(lambda: _health(capsa, name)["Status"] == "healthy", what="healthy")
    health = _health(capsa, name)
    assert health["FailingStreak"] == 0
    assert health["Log"] and health["Log"][-1]["ExitCode"] == 0
    assert "ok" in health["Log"][-1]["Output"]
    assert "(healthy)" in capsa.run("ps", "--filter", f"name={name}").stdout
    assert capsa.fmt(name, "{{.State.Health.Status}}") == "healthy"
    assert capsa.inspect(name)["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "echo ok"]
    filtered = capsa.run("ps", "--filter", "health=healthy", "--format", "{{.Names}}")
    assert filtered.stdout.split() == [name]


def test_unhealthy(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached(
        "--name",
        name,
        "--init",
        "--health-cmd",
        "echo bad; exit 1",
        "--health-retries",
        "2",
        *FAST_HEALTH,
    )
    capsa.wait_for(lambda: _health(capsa, name)["Status"] == "unhealthy", what="unhealthy")
    health = _health(capsa, name)
    assert health["FailingStreak"] >= 2
    assert health["Log"][-1]["ExitCode"] == 1 and "bad" in health["Log"][-1]["Output"]
    assert "(unhealthy)" in capsa.run("ps", "--filter", f"name={name}").stdout
    time.sleep(0.5)
    assert capsa.status(name) == "running", "--health-on-failure none must leave it running"


def test_health_starting_during_start_period(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached(
        "--name",
        name,
        "--init",
        "--health-cmd",
        "false",
        "--health-interval",
        "30s",
        "--health-start-period",
        "60s",
    )
    assert _health(capsa, name)["Status"] == "starting"
    assert "health: starting" in capsa.run("ps", "--filter", f"name={name}").stdout


def test_health_on_failure_restart(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached(
        "--name",
        name,
        "--init",
        "--health-cmd",
        "false",
        "--health-retries",
        "1",
        "--health-on-failure",
        "restart",
        *FAST_HEALTH,
    )
    first = capsa.pid(name)
    capsa.wait_for(
        lambda: capsa.status(name) == "running" and capsa.pid(name) not in (0, first),
        timeout=20,
        what="an unhealthy container restarted",
    )
    assert _restart_count(capsa, name) >= 1


@pytest.mark.parametrize(("action", "code"), [("kill", "137"), ("stop", "143")])
def test_health_on_failure_kill_and_stop(capsa: CapsaCli, action: str, code: str) -> None:
    name = capsa.name()
    capsa.detached(
        "--name",
        name,
        "--init",
        "--health-cmd",
        "false",
        "--health-retries",
        "1",
        "--health-on-failure",
        action,
        *FAST_HEALTH,
    )
    capsa.wait_status(name, "exited", timeout=20)
    assert capsa.fmt(name, "{{.State.ExitCode}}") == code
    time.sleep(0.5)
    assert capsa.status(name) == "exited"


def test_bad_health_on_failure_value(capsa: CapsaCli) -> None:
    proc = capsa.run(
        "run",
        "--rm",
        "--health-cmd",
        "true",
        "--health-on-failure",
        "explode",
        IMAGE,
        "true",
        check=False,
    )
    assert proc.returncode == 125 and "explode" in proc.stderr
    assert capsa.run("ps", "-aq").stdout == ""
