"""Container lifecycle through the CLI: create/start/stop/restart/kill/rm/pause/rename/wait,
Docker's exit codes and one-line errors, ps and inspect."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import CAPSA, IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

TRAP_USR1 = 'trap "echo got-usr1" USR1; echo ready; while :; do sleep 0.1; done'


def _assert_nothing_created(capsa: CapsaCli) -> None:
    assert capsa.run("ps", "-aq").stdout == "", "a failed command left a container behind"
    left = [p for p in Path("/sys/fs/cgroup/memory").iterdir() if p.name.startswith("capsa-")]
    known = capsa.all_ids()
    assert not [p for p in left if p.name[len("capsa-") :] in known]


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    assert len(errors) == 1, f"expected one error line: {stderr!r}"
    assert "Traceback" not in stderr
    return errors[0]


# -- the lifecycle ----------------------------------------------------------------------


def test_create_start_stop_restart_rm(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.run("create", "--name", name, "--init", IMAGE, "sleep", "300").stdout.strip()
    assert len(cid) == 64
    assert capsa.status(name) == "created"
    assert capsa.run("start", name).stdout.strip() == name
    assert capsa.status(name) == "running"
    first_start = capsa.fmt(name, "{{.State.StartedAt}}")
    capsa.run("start", name)  # starting a running container is a no-op
    assert capsa.run("stop", "-t", "5", name).stdout.strip() == name
    assert capsa.status(name) == "exited"
    assert capsa.fmt(name, "{{.State.FinishedAt}}") != "0001-01-01T00:00:00Z"
    capsa.run("stop", name)  # stopping a stopped container is fine too
    capsa.run("restart", "-t", "5", name)
    assert capsa.status(name) == "running"
    assert capsa.fmt(name, "{{.State.StartedAt}}") != first_start
    busy = capsa.run("rm", name, check=False)
    assert busy.returncode == 1 and name in busy.stderr
    assert "stop" in busy.stderr.lower() or "running" in busy.stderr.lower()
    assert capsa.run("rm", "-f", name).stdout.strip() == name
    missing = capsa.run("inspect", name, check=False)
    assert missing.returncode == 1 and name in missing.stderr
    assert not capsa.cgroup(cid, "memory").exists()


def test_default_network_is_bridge(capsa: CapsaCli) -> None:
    """The other tests run with --network none (faster); this one keeps capsa's default."""
    capsa.network = None
    try:
        name = capsa.name()
        capsa.detached("--name", name, "--init")
        assert capsa.inspect(name)["HostConfig"]["NetworkMode"] == "bridge"
        links = capsa.run("exec", name, "ls", "/sys/class/net").stdout.split()
        assert "lo" in links and "eth0" in links
        capsa.run("stop", "-t", "5", name)
        capsa.run("start", name)
        assert capsa.status(name) == "running"
    finally:
        capsa.network = "none"


def test_restart_running_container(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    pid = capsa.pid(name)
    capsa.run("restart", "-t", "5", name)
    assert capsa.status(name) == "running"
    assert capsa.pid(name) != pid


def test_stop_timeout_then_sigkill(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name)  # sleep as PID 1 ignores SIGTERM
    began = time.monotonic()
    capsa.run("stop", "-t", "1", name)
    assert time.monotonic() - began < 8
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "137"


def test_kill_with_signal(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, cmd=("sh", "-c", TRAP_USR1))
    capsa.wait_for(lambda: "ready" in capsa.run("logs", name).stdout, what="ready")
    capsa.run("kill", "-s", "USR1", name)
    capsa.wait_for(lambda: "got-usr1" in capsa.run("logs", name).stdout, what="the trap")
    assert capsa.status(name) == "running"
    capsa.run("kill", "--signal", "SIGKILL", name)
    capsa.wait_status(name, "exited")
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "137"
    not_running = capsa.run("kill", name, check=False)
    assert not_running.returncode == 1 and "not running" in not_running.stderr
    bad = capsa.run("kill", "-s", "NOPE", name, check=False)
    assert bad.returncode != 0 and "NOPE" in bad.stderr


def test_kill_default_is_sigkill(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    capsa.run("kill", name)
    assert capsa.run("wait", name).stdout.strip() == "137"


def test_pause_unpause(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init")
    freezer = capsa.cgroup(cid, "freezer") / "freezer.state"
    capsa.run("pause", name)
    assert capsa.status(name) == "paused"
    assert capsa.inspect(name)["State"]["Paused"] is True
    assert freezer.read_text().strip() == "FROZEN"
    assert "(Paused)" in capsa.run("ps", "--filter", f"name={name}").stdout
    again = capsa.run("pause", name, check=False)
    assert again.returncode == 1 and "paused" in again.stderr
    capsa.run("unpause", name)
    assert capsa.status(name) == "running"
    assert freezer.read_text().strip() == "THAWED"
    stopped = capsa.run("unpause", name, check=False)
    assert stopped.returncode == 1


def test_rename(capsa: CapsaCli) -> None:
    old, new, other = capsa.name(), capsa.name(), capsa.name()
    capsa.run("create", "--name", old, IMAGE)
    capsa.run("create", "--name", other, IMAGE)
    capsa.run("rename", old, new)
    assert capsa.inspect(new)["Name"] == f"/{new}"
    assert capsa.run("inspect", old, check=False).returncode == 1
    taken = capsa.run("rename", new, other, check=False)
    assert taken.returncode != 0 and other in taken.stderr
    assert capsa.inspect(new)["Name"] == f"/{new}"


def test_wait_prints_exit_codes(capsa: CapsaCli) -> None:
    a, b = capsa.name(), capsa.name()
    capsa.detached("--name", a, cmd=("sh", "-c", "sleep 0.3; exit 9"))
    capsa.detached("--name", b, cmd=("true",))
    assert capsa.run("wait", a, b).stdout.split() == ["9", "0"]
    missing = capsa.run("wait", "capsa-test-nosuch", check=False)
    assert missing.returncode == 1 and "capsa-test-nosuch" in missing.stderr


# -- exit codes and errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("sh", "-c", "exit 3"), 3),
        (("true",), 0),
        (("capsa-test-nosuchcmd",), 127),
        (("/capsa-test/no/such/path",), 127),
        (("/etc/passwd",), 126),  # exists, not executable
        (("/tmp",), 126),  # a directory
    ],
)
def test_exit_codes(capsa: CapsaCli, argv: tuple[str, ...], code: int) -> None:
    proc = capsa.run("run", "--rm", IMAGE, *argv, check=False)
    assert proc.returncode == code, proc.stderr
    if code >= 126:
        assert argv[0] in proc.stderr
        _one_line_error(proc.stderr)
    _assert_nothing_created(capsa)


def test_killed_by_signal_is_128_plus_n(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", "--init", IMAGE, "sh", "-c", "kill -USR1 $$", check=False)
    assert proc.returncode == 128 + 10, proc.stderr
    proc = capsa.run("run", "--rm", "--init", IMAGE, "sh", "-c", "kill -9 $$", check=False)
    assert proc.returncode == 137, proc.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ("-m", "lots"),
        ("--cpus", "many"),
        ("--restart", "sometimes"),
        ("--ulimit", "nofile=abc"),
        ("--pid", "capsa-test-nosuchmode"),
        ("--tmpfs", "relative/path"),
        ("-v", "a:b:c:d"),
        ("--mount", "type=nope,dst=/x"),
        ("--security-opt", "capsa-test-bogus"),
        ("--capsa-test-unknown-flag",),
        ("--health-interval", "soon"),
        ("--stop-signal", "SIGNOPE"),
        ("--shm-size", "-1"),
        ("--network", "capsa-test-nosuchnet"),
        ("--volumes-from", "capsa-test-nosuchcontainer"),
    ],
)
def test_bad_flag_value_is_125(capsa: CapsaCli, flags: tuple[str, ...]) -> None:
    proc = capsa.run("run", "--rm", *flags, IMAGE, "true", check=False)
    assert proc.returncode == 125, f"{flags}: {proc.returncode} {proc.stderr}"
    line = _one_line_error(proc.stderr)
    assert len(line) < 300
    _assert_nothing_created(capsa)


def test_name_conflict(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init")
    proc = capsa.run("run", "-d", "--name", name, IMAGE, "true", check=False)
    assert proc.returncode == 125
    line = _one_line_error(proc.stderr)
    assert name in line and "already in use" in line
    assert capsa.run("ps", "-aq", "--no-trunc").stdout.split() == [cid]
    bad_name = capsa.run("create", "--name", "no/slashes", IMAGE, check=False)
    assert bad_name.returncode == 125
    assert capsa.run("ps", "-aq", "--no-trunc").stdout.split() == [cid]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_run_pulls_missing_image(capsa: CapsaCli) -> None:
    ref = f"127.0.0.1:{_closed_port()}/capsa-test/missing:latest"
    proc = capsa.run("run", "--rm", ref, "true", check=False, timeout=60)
    assert proc.returncode == 125
    assert ref in proc.stderr or "capsa-test/missing" in proc.stderr
    assert "Unable to find image" in proc.stderr
    _assert_nothing_created(capsa)
    never = capsa.run("run", "--rm", "--pull", "never", ref, "true", check=False)
    assert never.returncode == 125 and "capsa-test/missing" in never.stderr


def test_no_such_container_errors(capsa: CapsaCli) -> None:
    for verb in ("start", "stop", "kill", "rm", "pause", "restart", "logs", "inspect"):
        proc = capsa.run(verb, "capsa-test-ghost", check=False)
        assert proc.returncode == 1, f"{verb}: {proc.returncode}"
        assert "capsa-test-ghost" in proc.stderr, f"{verb}: {proc.stderr}"
        assert "Traceback" not in proc.stderr


def test_long_runroot(busybox_tarball: Path, tmp_path: Path) -> None:
    """A run root deeper than a unix socket path allows must still work."""
    deep = tmp_path / ("d" * 40) / ("e" * 40)
    cli = CapsaCli(deep / "root", deep / "run")
    try:
        cli.run("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tarball), IMAGE)
        proc = cli.run("run", "--rm", IMAGE, "echo", "deep", check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "deep\n"
    finally:
        problems = cli.cleanup()
    assert not problems, problems


# -- ps -------------------------------------------------------------------------------------


def _ps_names(capsa: CapsaCli, *args: str) -> list[str]:
    return capsa.run("ps", *args, "--format", "{{.Names}}").stdout.split()


def test_ps_flags_and_filters(capsa: CapsaCli) -> None:
    web, db, fresh = capsa.name(), capsa.name(), capsa.name()
    capsa.detached("--name", web, "--init", "-l", "app=web")
    capsa.run("run", "--name", db, "-l", "app=db", IMAGE, "sh", "-c", "exit 3", check=False)
    capsa.run("create", "--name", fresh, IMAGE)
    assert _ps_names(capsa) == [web]
    assert _ps_names(capsa, "-a") == [fresh, db, web]  # newest first
    assert _ps_names(capsa, "-n", "2") == [fresh, db]
    assert _ps_names(capsa, "-l") == [fresh]
    short = capsa.run("ps", "-aq").stdout.split()
    assert len(short) == 3 and all(len(i) == 12 for i in short)
    full = capsa.run("ps", "-aq", "--no-trunc").stdout.split()
    assert [f[:12] for f in full] == short and all(len(i) == 64 for i in full)
    assert _ps_names(capsa, "-a", "--filter", "status=exited") == [db]
    assert _ps_names(capsa, "-a", "--filter", "status=created") == [fresh]
    assert _ps_names(capsa, "-a", "--filter", "status=running") == [web]
    assert _ps_names(capsa, "-a", "--filter", f"name={web}") == [web]
    assert _ps_names(capsa, "-a", "--filter", "label=app=web") == [web]
    assert _ps_names(capsa, "-a", "--filter", "label=app") == [db, web]
    assert _ps_names(capsa, "-a", "--filter", "exited=3") == [db]
    assert _ps_names(capsa, "-a", "--filter", "exited=0") == []
    assert _ps_names(capsa, "-a", "--filter", f"ancestor={IMAGE}") == [fresh, db, web]
    assert _ps_names(capsa, "-a", "-f", "status=exited", "-f", "status=created") == [fresh, db]
    bad = capsa.run("ps", "--filter", "colour=blue", check=False)
    assert bad.returncode != 0 and "colour" in bad.stderr


def test_ps_table_size_and_formats(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init", "-l", "k=v")
    capsa.run("exec", name, "sh", "-c", "head -c 20000 /dev/zero > /root/blob")
    table = capsa.run("ps").stdout.splitlines()
    header = table[0].split()
    assert header[:2] == ["CONTAINER", "ID"] and header[-1] == "NAMES"
    (row,) = [line for line in table[1:] if name in line]
    assert row.startswith(cid[:12]) and IMAGE in row and "Up " in row
    sized = capsa.run("ps", "-s").stdout.splitlines()
    assert sized[0].split()[-1] == "SIZE"
    assert "kB" in sized[1] or "MB" in sized[1], sized[1]
    doc = json.loads(capsa.run("ps", "--format", "json").stdout.splitlines()[0])
    assert doc["Names"] == name and doc["ID"] == cid[:12] and doc["State"] == "running"
    assert doc["Image"] == IMAGE and doc["Labels"] == "k=v"
    out = capsa.run("ps", "--format", "table {{.Names}}\t{{.State}}").stdout.splitlines()
    assert out[0].split() == ["NAMES", "STATE"]
    assert out[1].split() == [name, "running"]
    line = capsa.run("ps", "--no-trunc", "--format", "{{.ID}}:{{.Status}}").stdout.strip()
    assert line.startswith(f"{cid}:Up ")
    assert capsa.run("ps", "--format", '{{.Label "k"}}').stdout.strip() == "v"


# -- inspect --------------------------------------------------------------------------------


def test_inspect_shape_and_templates(capsa: CapsaCli, tmp_path: Path) -> None:
    name = capsa.name()
    cid = capsa.detached(
        "--name",
        name,
        "--init",
        "-m",
        "64m",
        "-e",
        "A=1",
        "-v",
        f"{tmp_path}:/data:ro",
        "--restart",
        "on-failure:3",
    )
    doc = capsa.inspect(name)
    for key in (
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "Name",
        "RestartCount",
        "HostConfig",
        "Mounts",
        "Config",
        "NetworkSettings",
        "LogPath",
    ):
        assert key in doc, key
    assert doc["Id"] == cid and doc["Name"] == f"/{name}"
    assert doc["Image"].startswith("sha256:")
    state = doc["State"]
    assert state["Status"] == "running" and state["Running"] is True
    assert state["Pid"] > 0 and state["StartedAt"].endswith("Z")
    assert doc["Config"]["Cmd"] == ["sleep", "300"] and doc["Config"]["Image"] == IMAGE
    assert "A=1" in doc["Config"]["Env"]
    assert doc["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert doc["HostConfig"]["Binds"] == [f"{tmp_path}:/data:ro"]
    (mount,) = doc["Mounts"]
    assert mount["Type"] == "bind" and mount["Source"] == str(tmp_path)
    assert mount["Destination"] == "/data" and mount["RW"] is False
    assert capsa.fmt(name, "{{.State.Status}} {{.HostConfig.Memory}}") == "running 67108864"
    assert json.loads(capsa.fmt(name, "{{json .Config.Cmd}}")) == ["sleep", "300"]
    assert capsa.fmt(name, "{{range .Mounts}}{{.Destination}}{{end}}") == "/data"
    assert capsa.fmt(name, "{{.Name}}") == f"/{name}"
    two = capsa.json("inspect", name, name)
    assert len(two) == 2
    created = capsa.run("create", IMAGE).stdout.strip()
    assert capsa.inspect(created)["State"]["Status"] == "created"
    assert capsa.inspect(created)["State"]["Pid"] == 0


def test_stop_with_a_signal(capsa: CapsaCli) -> None:
    """``stop -s SIG`` sends SIG instead of the container's stop signal."""
    name = capsa.name()
    capsa.run(
        "run", "-d", "--name", name, IMAGE,
        "sh", "-c", "trap 'echo got-usr1; exit 3' USR1; while true; do sleep 0.1; done",
    )  # fmt: skip
    capsa.run("stop", "-s", "USR1", "-t", "10", name)
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "3"
    assert capsa.run("logs", name).stdout == "got-usr1\n"
    bad = capsa.run("stop", "-s", "NOPE", name, check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_run_i_pipes_megabytes_both_ways(capsa: CapsaCli, tmp_path: Path) -> None:
    """Input and output flow at once: neither the CLI nor the monitor blocks writing
    the one while the other waits for it to read (cat echoes 20 MB)."""
    data = tmp_path / "in.bin"
    data.write_bytes(os.urandom(20 * 1024 * 1024))
    with data.open("rb") as src:
        proc = subprocess.run(
            [CAPSA, "run", "-i", "--rm", "--network", "none", IMAGE, "cat"],
            stdin=src, capture_output=True, env=capsa.env, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data.read_bytes()
