"""Warm start: while a monitor host serves the run root, commands are forked from it
(``capsa.cli.entry`` -> ``capsa.engine.monitor.warm``) and behave exactly as cold ones: exit
status, stdin/stdout, environment, working directory, umask and signals all carry over."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import CAPSA, IMAGE, CapsaCli
from tests.helpers.host import cmdline, ppid

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root


def _host(capsa: CapsaCli) -> int:
    found: list[int] = []

    def up() -> bool:
        found[:] = [p for p in capsa.monitor_pids() if cmdline(p).startswith("capsa-monitor host")]
        return len(found) == 1

    capsa.wait_for(up, 10, "the monitor host")
    return found[0]


def _forked(host: int, prefix: str) -> list[int]:
    """The host's children running the command ``prefix`` (a warm command's title)."""
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit()
        and ppid(int(e.name)) == host
        and cmdline(int(e.name)).startswith(prefix)
    ]


def _serving(capsa: CapsaCli) -> tuple[str, int]:
    """A running container (it keeps the host up) and the host."""
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    return name, _host(capsa)


def test_a_command_is_forked_from_the_host_unless_capsa_warm_is_0(capsa: CapsaCli) -> None:
    name, host = _serving(capsa)
    follow = capsa.popen("logs", "-f", name)
    capsa.wait_for(lambda: _forked(host, "capsa logs -f"), 10, "logs -f forked from the host")
    (child,) = _forked(host, "capsa logs -f")
    follow.send_signal(signal.SIGTERM)  # relayed: the command dies of it, and so the client
    assert follow.wait(10) == -signal.SIGTERM
    capsa.wait_for(lambda: not cmdline(child), 5, "the forked command to exit")

    cold = subprocess.Popen(
        [CAPSA, "logs", "-f", name],
        env={**capsa.env, "CAPSA_WARM": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        capsa.wait_for(lambda: "capsa" in cmdline(cold.pid), 5, "the cold command")
        assert not _forked(host, "capsa logs -f"), "CAPSA_WARM=0 still forked from the host"
    finally:
        cold.kill()
        cold.wait(10)


def test_status_streams_env_cwd_and_umask_carry_over(capsa: CapsaCli, tmp_path: Path) -> None:
    name, _ = _serving(capsa)
    (tmp_path / "vars.env").write_text("FROM_FILE=file-value\n")
    proc = subprocess.run(
        [
            CAPSA,
            "run",
            "--rm",
            "--network",
            "none",
            "--env-file",
            "vars.env",
            "-e",
            "FROM_ENV",
            "-i",
            IMAGE,
            "sh",
            "-c",
            'cat; echo "$FROM_FILE $FROM_ENV"; echo oops >&2; exit 7',
        ],
        env={**capsa.env, "FROM_ENV": "env-value"},
        cwd=tmp_path,  # --env-file is relative to the command's working directory
        input="from-stdin\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "from-stdin\nfile-value env-value\n"
    assert proc.stderr == "oops\n"

    def tight() -> None:
        os.umask(0o077)

    exported = subprocess.run(
        [CAPSA, "export", "-o", "out.tar", name],
        env=capsa.env,
        cwd=tmp_path,
        preexec_fn=tight,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "out.tar").stat().st_mode & 0o777 == 0o600


def _asleep(host: int) -> bool:
    """The host sleeps: its program is the sleeper, a sealed memfd, not the interpreter."""
    try:
        return os.readlink(f"/proc/{host}/exe").startswith("/memfd:")
    except OSError:
        return False


def test_a_command_does_not_wait_for_a_sleeping_host_but_wakes_it(capsa: CapsaCli) -> None:
    """Asleep, the host hides its socket's name: a command runs cold at once, and wakes
    the host (with the command line imported) for the next, which is forked from it."""
    name, host = _serving(capsa)
    capsa.wait_for(lambda: _asleep(host), 30, "the host to go to sleep")
    awake = capsa.runroot / "monitor-host.sock"
    assert not awake.exists() and Path(f"{awake}.asleep").exists()
    assert name in capsa.run("ps").stdout
    capsa.wait_for(lambda: awake.exists() and not _asleep(host), 10, "the host to wake up")
    follow = capsa.popen("logs", "-f", name)
    try:
        capsa.wait_for(lambda: _forked(host, "capsa logs -f"), 10, "the next command forked")
    finally:
        follow.kill()
        follow.wait(10)


def test_a_killed_client_takes_its_command_along(capsa: CapsaCli) -> None:
    name, host = _serving(capsa)
    follow = capsa.popen("logs", "-f", name)
    capsa.wait_for(lambda: _forked(host, "capsa logs -f"), 10, "logs -f forked from the host")
    (child,) = _forked(host, "capsa logs -f")
    follow.kill()
    follow.wait(10)
    capsa.wait_for(lambda: not cmdline(child), 5, "the orphaned command to be killed")
    assert capsa.status(name) == "running"


@pytest.mark.parametrize("warm", ["1", "0"])
def test_sig_proxy_passes_signals_to_the_container(capsa: CapsaCli, warm: str) -> None:
    _serving(capsa)
    env = {**capsa.env, "CAPSA_WARM": warm}
    script = "trap 'echo got-term; exit 5' TERM; echo ready; while true; do sleep 0.1; done"
    proc = subprocess.Popen(
        [CAPSA, "run", "--rm", "--network", "none", IMAGE, "sh", "-c", script],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)  # client -> (forked command) -> container
    out, _ = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (5, "got-term\n")

    name = capsa.name()
    proc = subprocess.Popen(
        [
            CAPSA,
            "run",
            "--no-sig-proxy",
            "--name",
            name,
            "--network",
            "none",
            "--init",
            IMAGE,
            "sh",
            "-c",
            "echo ready; sleep 300",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    capsa.full_id(name)  # removed at cleanup
    proc.send_signal(signal.SIGTERM)  # ours alone: the container keeps running
    assert proc.wait(20) == -signal.SIGTERM
    assert capsa.status(name) == "running"
