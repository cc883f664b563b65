"""stats, top, update, port, events, info and system prune through the CLI (root)."""
# ruff: noqa: F811  (pytest fixtures imported from tests.helpers.capsa_cli)

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import (  # noqa: F401  (fixtures)
    IMAGE,
    CapsaCli,
    busybox_tarball,
    capsa,
    capsa_module,
)

pytestmark = pytest.mark.root

MIB = 1 << 20


@pytest.fixture(scope="module", autouse=True)
def monitoring_commands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run ``capsa`` with the monitoring commands registered, until cli/main.py does it
    itself (then this entry point changes nothing)."""
    entry = tmp_path_factory.mktemp("entry") / "capsa"
    entry.write_text(
        f"#!{sys.executable}\n"
        "from capsa.cli import main, monitoring\n"
        "if 'stats' not in main.cli.commands:\n"
        "    monitoring.register(main.cli)\n"
        "main.main()\n"
    )
    entry.chmod(entry.stat().st_mode | stat.S_IXUSR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(capsa_cli, "CAPSA", str(entry))
        yield


def _stats(capsa: CapsaCli, *args: str) -> list[dict[str, str]]:
    out = capsa.run("stats", "--no-stream", "--format", "json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# -- stats -------------------------------------------------------------------------------


def test_stats_no_stream_shows_limit_and_pids(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init", "-m", "64m")
    (row,) = _stats(capsa, name)
    assert row["Name"] == name and row["ID"] == cid[:12] and row["Container"] == name
    assert row["MemUsage"].endswith(" / 64MiB")
    assert int(row["PIDs"]) >= 2  # the init and sleep
    assert row["CPUPerc"].endswith("%") and row["NetIO"] == "0B / 0B"
    table = capsa.run("stats", "--no-stream", name).stdout.splitlines()
    header = "CONTAINER ID   NAME   CPU %   MEM USAGE / LIMIT   MEM %   NET I/O   BLOCK I/O   PIDS"
    assert table[0].split() == header.split()
    assert table[1].startswith(cid[:12]) and "64MiB" in table[1]


def test_stats_all_includes_stopped_as_zeros(capsa: CapsaCli) -> None:
    running, created = capsa.name(), capsa.name()
    capsa.detached("--name", running, "--init")
    capsa.run("create", "--name", created, IMAGE)
    names = {row["Name"]: row for row in _stats(capsa)}
    assert running in names and created not in names
    rows = {row["Name"]: row for row in _stats(capsa, "-a")}
    assert rows[created]["MemUsage"] == "0B / 0B" and rows[created]["PIDs"] == "0"
    assert rows[running]["PIDs"] != "0"
    missing = capsa.run("stats", "--no-stream", "capsa-test-nonexistent", check=False)
    assert missing.returncode == 1 and "capsa-test-nonexistent" in missing.stderr


def test_stats_stream_redraws(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    proc = capsa.popen("stats", "--format", "{{.Name}} {{.PIDs}}", name)
    try:
        lines = _read_lines(proc, 2, timeout=20)
    finally:
        proc.terminate()
        proc.wait(10)
    assert all(line.startswith(name + " ") for line in lines)


# -- top -------------------------------------------------------------------------------


def test_top_lists_the_container_processes(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, cmd=("sleep", "301"))
    pid = capsa.pid(name)
    lines = capsa.run("top", name).stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(lines) == 2
    assert lines[1].split()[1] == str(pid) and lines[1].rstrip().endswith("sleep 301")
    custom = capsa.run("top", name, "-o", "pid,comm").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and custom[1].split() == [str(pid), "sleep"]
    capsa.run("kill", name)
    capsa.wait_status(name, "exited")
    stopped = capsa.run("top", name, check=False)
    assert stopped.returncode == 1 and "not running" in stopped.stderr


# -- update ----------------------------------------------------------------------------


def test_update_memory_of_running_container_is_kept_after_restart(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init", "-m", "64m")
    limit = "memory.limit_in_bytes"
    assert capsa.cgroup_value(cid, "memory", limit) == str(64 * MIB)
    out = capsa.run("update", "--memory", "128m", "--pids-limit", "40", name).stdout
    assert out.strip() == name
    assert capsa.cgroup_value(cid, "memory", limit) == str(128 * MIB)
    assert capsa.cgroup_value(cid, "pids", "pids.max") == "40"
    capsa.run("restart", "-t", "5", name)
    assert capsa.status(name) == "running"
    assert capsa.cgroup_value(cid, "memory", limit) == str(128 * MIB)
    assert capsa.cgroup_value(cid, "pids", "pids.max") == "40"
    assert capsa.fmt(name, "{{.HostConfig.Memory}}") == str(128 * MIB)


def test_update_stopped_container_applies_at_start(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.run("create", "--name", name, "--init", IMAGE, "sleep", "300").stdout.strip()
    capsa.run("update", "-m", "96m", "--cpus", "0.5", "--restart", "on-failure:3", name)
    assert capsa.fmt(name, "{{.HostConfig.RestartPolicy.Name}}") == "on-failure"
    capsa.run("start", name)
    assert capsa.cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(96 * MIB)
    assert capsa.cgroup_value(cid, "cpu", "cpu.cfs_quota_us") == "50000"


def test_update_errors(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("create", "--name", name, IMAGE)
    none = capsa.run("update", name, check=False)
    assert none.returncode == 1 and "one or more flags" in none.stderr
    bad = capsa.run("update", "--cpus", "1", "--cpu-quota", "5000", name, check=False)
    assert bad.returncode == 1 and "Nano CPUs" in bad.stderr
    missing = capsa.run("update", "-m", "64m", "capsa-test-nonexistent", check=False)
    assert missing.returncode == 1 and "capsa-test-nonexistent" in missing.stderr


# -- port ------------------------------------------------------------------------------


def test_port_reads_published_ports(capsa: CapsaCli) -> None:
    from capsa.config import Settings
    from capsa.engine.service_context import ServiceContext

    name = capsa.name()
    capsa.detached("--name", name, "--init")
    ctx = ServiceContext(Settings(root=str(capsa.root), runroot=str(capsa.runroot)))
    try:
        rec = ctx.store.find(name)
        from capsa.engine.network.types import PortMapping

        rec.spec.ports = [
            PortMapping(host_port=8080, container_port=80, protocol="tcp", host_ip="0.0.0.0"),
            PortMapping(host_port=5353, container_port=53, protocol="udp", host_ip="127.0.0.1"),
        ]
        ctx.store.update_spec(rec.id, rec.spec)
    finally:
        ctx.close()
    assert capsa.run("port", name).stdout.splitlines() == [
        "53/udp -> 127.0.0.1:5353",
        "80/tcp -> 0.0.0.0:8080",
    ]
    assert capsa.run("port", name, "80/tcp").stdout == "0.0.0.0:8080\n"
    missing = capsa.run("port", name, "443", check=False)
    assert missing.returncode == 1 and "no public port '443'" in missing.stderr.lower()


# -- events ----------------------------------------------------------------------------


def test_events_show_the_lifecycle(capsa: CapsaCli) -> None:
    since = f"{time.time() - 1:.3f}"
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init")
    capsa.run("stop", "-t", "5", name)
    capsa.run("rm", name)
    until = f"{time.time() + 1:.3f}"
    lines = capsa.run("events", "--since", since, "--until", until).stdout.splitlines()
    ours = [line for line in lines if f" {cid} " in line]
    actions = [line.split()[2] for line in ours]
    for action in ("create", "start", "die", "destroy"):
        assert action in actions, lines
    assert actions.index("create") < actions.index("start") < actions.index("destroy")
    assert f"name={name}" in ours[0] and ours[0].split()[1] == "container"
    only = capsa.run(
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        f"container={name}",
        "--filter",
        "event=die",
        "--format",
        "{{.ID}} {{.Status}}",
    ).stdout
    assert only == f"{cid} die\n"


def test_events_follow(capsa: CapsaCli) -> None:
    name = capsa.name()
    since = f"{time.time():.3f}"
    proc = capsa.popen(
        "events", "--since", since, "-f", f"container={name}", "--format", "{{.Action}}"
    )
    try:
        capsa.run("create", "--name", name, IMAGE)
        assert _read_lines(proc, 1, timeout=20) == ["create"]
    finally:
        proc.terminate()
        proc.wait(10)


def _read_lines(proc: subprocess.Popen[str], count: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    fd, buf, lines = proc.stdout.fileno(), b"", list[str]()
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"got only {lines} from {proc.args!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                pytest.fail(f"{proc.args!r} ended after {lines}")
            buf += chunk
            *done, buf = buf.split(b"\n")
            lines += [d.decode() for d in done if d.strip()]
    return lines[:count]


# -- info ------------------------------------------------------------------------------


def test_info(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    text = capsa.run("info").stdout
    for expected in (
        "Server Version:",
        "Storage Driver: overlay",
        "Logging Driver: json-file",
        "Cgroup Driver: cgroupfs",
        "Default Runtime: capsa",
        f"Docker Root Dir: {capsa.root}",
        "  seccomp",
        "   Profile: builtin",
    ):
        assert expected in text
    assert "  Running: 1" in text
    doc = json.loads(capsa.run("info", "--format", "{{json .}}").stdout)
    assert doc["ContainersRunning"] == 1 and doc["Images"] >= 1
    assert doc["DockerRootDir"] == str(capsa.root) and doc["Driver"] == "overlay"
    assert doc["CgroupVersion"] in ("1", "2")
    assert doc["ID"] == json.loads(capsa.run("system", "info", "-f", "json").stdout)["ID"]
    assert capsa.run("info", "-f", "{{.ServerVersion}}").stdout.strip() == doc["ServerVersion"]


# -- system prune ----------------------------------------------------------------------


def _leftovers(capsa: CapsaCli, cid: str) -> list[str]:
    out = [m for m in capsa.mounts() if cid in m]
    out += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/capsa-{cid}")]
    out += [f"monitor {pid}" for pid, cmd in capsa_cli._processes() if cid in cmd]
    return out


def test_system_prune_leaves_nothing(capsa: CapsaCli, busybox_tarball: Path) -> None:
    keep, done, fresh = capsa.name(), capsa.name(), capsa.name()
    kept = capsa.detached("--name", keep, "--init")
    exited = capsa.detached("--name", done, "-v", "/scratch", cmd=("true",))
    created = capsa.run("create", "--name", fresh, IMAGE).stdout.strip()
    capsa.wait_status(done, "exited")
    volume = capsa.inspect(done)["Mounts"][0]["Name"]
    extra = "capsa-test/extra:latest"
    capsa.run("import", "-c", 'CMD ["/bin/true"]', str(busybox_tarball), extra)
    out = capsa.run("system", "prune", "-f", "--volumes").stdout
    assert out.startswith("Deleted Containers:\n")
    assert exited in out and created in out and kept not in out
    assert f"Deleted Volumes:\n{volume}\n" in out
    assert out.rstrip().splitlines()[-1].startswith("Total reclaimed space: ")
    assert capsa.run("ps", "-aq", "--no-trunc").stdout.split() == [kept]
    assert capsa.run("volume", "ls", "-q").stdout.split() == []
    for cid in (exited, created):
        assert _leftovers(capsa, cid) == []
    assert not list((capsa.root / "overlay-rw").glob(f"{exited}*"))
    assert capsa.status(keep) == "running"
    images = capsa.run("images", "--format", "{{.Repository}}").stdout.split()
    assert "capsa-test/extra" in images  # tagged: only -a removes it
    out_all = capsa.run("system", "prune", "-a", "-f").stdout
    assert "untagged: capsa-test/extra:latest" in out_all
    images = capsa.run("images", "--format", "{{.Repository}}").stdout.split()
    assert images == ["capsa-test/busybox"]  # used by the running container
