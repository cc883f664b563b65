"""stats/top/update/port/events/info: the calculations and formatting, no kernel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from capsa.api import wire_stats, wire_system
from capsa.cli import monitoring
from capsa.engine.containers import stats, update
from capsa.engine.containers.types import ContainerRecord, ContainerSpec, Resources, State
from capsa.engine.network.types import PortMapping
from capsa.engine.system import info
from capsa.errors import Internal, InvalidArgument
from capsa.syntax.filters import parse_event_filters

GIB = 1 << 30
V1_UNLIMITED = 9223372036854771712


def v1_data(total: int = 0, usage: int = 0, limit: int = V1_UNLIMITED) -> dict[str, Any]:
    """``runc events --stats`` data as the v1 driver reports it."""
    return {
        "cpu": {"usage": {"total": total, "percpu": [total // 2, total - total // 2]}},
        "memory": {
            "cache": 4096,
            "usage": {"limit": limit, "usage": usage, "max": usage, "failcnt": 0},
            "raw": {"cache": 4096, "inactive_file": 100, "total_inactive_file": 8192},
        },
        "pids": {"current": 3, "limit": 0},
        "blkio": {
            "ioServiceBytesRecursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 1000},
                {"major": 8, "minor": 0, "op": "Sync", "value": 5096},
                {"major": 8, "minor": 0, "op": "Total", "value": 5096},
                {"major": 8, "minor": 16, "op": "Read", "value": 1},
            ]
        },
    }


def v2_data(usage: int, limit: int) -> dict[str, Any]:
    return {
        "cpu": {"usage": {"total": 0, "percpu": []}},
        "memory": {
            "usage": {"limit": limit, "usage": usage},
            "raw": {"file": 16384, "inactive_file": 12288, "anon": 4096},
        },
        "pids": {"current": 1},
        "blkio": {
            "ioServiceBytesRecursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 10},
                {"major": 8, "minor": 0, "op": "Write", "value": 20},
            ]
        },
    }


def make_sample(**kw: Any) -> stats.Sample:
    base: dict[str, Any] = {
        "id": "a" * 64,
        "name": "web",
        "read_ns": 1_700_000_000_000_000_000,
        "running": True,
        "online_cpus": 2,
        "host_memory": 8 * GIB,
    }
    base.update(kw)
    return stats.Sample(**base)


# -- calculations ----------------------------------------------------------------------


def test_cpu_percent_like_docker() -> None:
    # 0.5 s of container CPU over 2 s of host CPU time (both cores, 1 s wall) on 2 CPUs
    assert stats.cpu_percent(1_500_000_000, 1_000_000_000, 4 * 10**9, 2 * 10**9, 2) == 50.0
    assert stats.cpu_percent(10, 10, 4, 2, 2) == 0.0  # no cpu delta
    assert stats.cpu_percent(20, 10, 2, 2, 2) == 0.0  # no system delta


def test_memory_usage_v1_subtracts_total_inactive_file() -> None:
    data = v1_data(usage=1 << 20)
    assert stats.memory_usage(data["memory"]) == (1 << 20) - 8192


def test_memory_usage_v2_subtracts_inactive_file() -> None:
    assert stats.memory_usage(v2_data(65536, 0)["memory"]) == 65536 - 12288


def test_memory_usage_keeps_usage_when_inactive_is_larger() -> None:
    memory = {"usage": {"usage": 100}, "raw": {"total_inactive_file": 200}}
    assert stats.memory_usage(memory) == 100
    assert stats.memory_usage({"usage": {"usage": 7}}) == 7


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(V1_UNLIMITED, 8 * GIB), ((1 << 64) - 1, 8 * GIB), (0, 8 * GIB), (64 << 20, 64 << 20)],
)
def test_memory_limit_falls_back_to_host_memory(limit: int, expected: int) -> None:
    assert stats.memory_limit({"usage": {"limit": limit}}, 8 * GIB) == expected


def test_block_io_sums_read_and_write_of_all_devices() -> None:
    assert stats.block_io(v1_data()["blkio"]) == (4097, 1000)
    lower = {"ioServiceBytesRecursive": [{"op": "read", "value": 3}, {"op": "write", "value": 4}]}
    assert stats.block_io(lower) == (3, 4)
    assert stats.block_io({}) == (0, 0)


NET_DEV = "\n".join(
    [
        "Inter-|   Receive                |  Transmit",
        " face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop",
        "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0",
        "  eth0: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0",
        "  eth1:  100  1 0 0 0 0 0 0  200  2 0 0 0 0 0 0",
    ]
)


def test_parse_net_dev_skips_lo() -> None:
    nets = stats.parse_net_dev(NET_DEV)
    assert sorted(nets) == ["eth0", "eth1"]
    assert nets["eth0"] == stats.NetStats(5000, 50, 1, 2, 7000, 70, 3, 4)


def test_host_cpu_ns_sums_seven_fields() -> None:
    text = "cpu  10 1 5 100 2 0 3 7 0 0\ncpu0 5 0 2 50 1 0 1 0 0 0\n"
    assert stats.host_cpu_ns(text, 100) == (10 + 1 + 5 + 100 + 2 + 0 + 3) * 10**7
    with pytest.raises(Internal):
        stats.host_cpu_ns("intr 1\n")


def test_compute_v1_sample_pair() -> None:
    prev = make_sample(data=v1_data(total=10**9), system_cpu=100 * 10**9)
    cur = make_sample(
        data=v1_data(total=2 * 10**9, usage=(32 << 20) + 8192, limit=64 << 20),
        system_cpu=104 * 10**9,
        networks=stats.parse_net_dev(NET_DEV),
    )
    s = stats.compute(cur, prev)
    assert s.cpu_percent == pytest.approx(50.0)
    assert (s.mem_usage, s.mem_limit) == (32 << 20, 64 << 20)
    assert s.mem_percent == pytest.approx(50.0)
    assert (s.net_rx, s.net_tx) == (5100, 7200)
    assert (s.block_read, s.block_write, s.pids) == (4097, 1000, 3)


def test_compute_without_previous_or_not_running() -> None:
    s = stats.compute(make_sample(data=v2_data(65536, (1 << 64) - 1)), None)
    assert s.cpu_percent == 0.0 and s.mem_limit == 8 * GIB and s.mem_usage == 65536 - 12288
    stopped = stats.compute(make_sample(running=False), None)
    assert (stopped.mem_usage, stopped.mem_limit, stopped.pids) == (0, 0, 0)


def test_compute_uses_percpu_count_without_online_cpus() -> None:
    prev = make_sample(data=v1_data(total=0), system_cpu=0, online_cpus=0)
    cur = make_sample(data=v1_data(total=10**9), system_cpu=4 * 10**9, online_cpus=0)
    assert stats.compute(cur, prev).cpu_percent == pytest.approx(50.0)


def test_docker_stats_json_shape() -> None:
    prev = make_sample(data=v1_data(total=10**9), system_cpu=100 * 10**9)
    cur = make_sample(
        data=v1_data(total=2 * 10**9, usage=1 << 20, limit=V1_UNLIMITED),
        system_cpu=104 * 10**9,
        read_ns=prev.read_ns + 10**9,
        networks=stats.parse_net_dev(NET_DEV),
    )
    doc = wire_stats.docker_stats_json(cur, prev)
    assert doc["name"] == "/web" and doc["id"] == "a" * 64
    assert doc["read"] == "2023-11-14T22:13:21.000000000Z"
    assert doc["preread"] == "2023-11-14T22:13:20.000000000Z"
    assert doc["cpu_stats"]["cpu_usage"]["total_usage"] == 2 * 10**9
    assert doc["cpu_stats"]["system_cpu_usage"] == 104 * 10**9
    assert doc["precpu_stats"]["cpu_usage"]["total_usage"] == 10**9
    assert doc["memory_stats"]["limit"] == 8 * GIB
    assert doc["memory_stats"]["stats"]["total_inactive_file"] == 8192
    assert doc["pids_stats"] == {"current": 3}
    assert doc["networks"]["eth0"]["rx_bytes"] == 5000
    assert doc["networks"]["eth0"]["tx_dropped"] == 4
    assert doc["blkio_stats"]["io_service_bytes_recursive"][0]["op"] == "Read"
    first = wire_stats.docker_stats_json(cur, None)
    assert first["preread"] == "0001-01-01T00:00:00Z"
    assert first["precpu_stats"]["cpu_usage"]["total_usage"] == 0


# -- top -------------------------------------------------------------------------------

PS_EF = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         200       1  0 10:01 ?        00:00:00 sleep 1000
root         201     200  0 10:01 ?        00:00:00 sh -c echo hi there
"""


def test_parse_ps_keeps_container_pids_and_joins_commands() -> None:
    result = stats.parse_ps(PS_EF, [200, 201])
    assert result.titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert [p[1] for p in result.processes] == ["200", "201"]
    assert result.processes[1][-1] == "sh -c echo hi there"


def test_parse_ps_thread_lines_follow_their_process() -> None:
    text = (
        "PID TTY STAT TIME COMMAND\n200 ? - 0:00 sleep\n- - S 0:00 -\n"
        "300 ? - 0:00 x\n- - S 0:00 -\n"
    )
    result = stats.parse_ps(text, [200])
    assert [p[0] for p in result.processes] == ["200", "-"]
    with pytest.raises(Internal):
        stats.parse_ps("USER COMMAND\nroot x\n", [1])


def test_validate_ps_args() -> None:
    stats.validate_ps_args(["-o", "pid=PID,comm"])
    with pytest.raises(InvalidArgument, match='specifying "comm=PID" is not allowed'):
        stats.validate_ps_args(["-o", "comm=PID"])


# -- update ----------------------------------------------------------------------------


def spec(**resources: Any) -> ContainerSpec:
    return ContainerSpec(image="busybox", resources=Resources(**resources))


def test_apply_changes_only_touches_given_fields() -> None:
    old = spec(memory=64 << 20, cpu_shares=512)
    new = update.apply_changes(old, update.ResourceUpdate(memory=128 << 20, pids_limit=0))
    assert new.resources.memory == 128 << 20 and new.resources.cpu_shares == 512
    assert new.resources.pids_limit == -1  # 0 means unlimited, as in docker update
    assert old.resources.memory == 64 << 20  # the original is untouched
    res = update.cgroup_resources(new)
    assert res.devices is None  # device rules are never rewritten on update
    assert res.memory is not None and res.memory.limit == 128 << 20
    assert res.memory.swap == 256 << 20


def test_apply_changes_conflicts() -> None:
    with pytest.raises(InvalidArgument, match="memoryswap"):
        update.apply_changes(
            spec(memory=64 << 20, memory_swap=100 << 20), update.ResourceUpdate(memory=200 << 20)
        )
    with pytest.raises(InvalidArgument, match="Nano CPUs"):
        update.apply_changes(spec(cpu_quota=50000), update.ResourceUpdate(nano_cpus=10**9))
    with pytest.raises(InvalidArgument, match="blkio weight"):
        update.apply_changes(spec(), update.ResourceUpdate(blkio_weight=5))
    auto = ContainerSpec(image="busybox", auto_remove=True)
    with pytest.raises(InvalidArgument, match="autoremove"):
        update.apply_changes(auto, update.ResourceUpdate(restart="always"))
    with pytest.raises(InvalidArgument):
        update.apply_changes(spec(), update.ResourceUpdate(restart="sometimes"))


def test_resource_update_empty() -> None:
    assert update.ResourceUpdate().empty()
    assert not update.ResourceUpdate(restart="always").empty()


# -- events ----------------------------------------------------------------------------


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def event(kind: str, action: str, actor: str, **attrs: str) -> dict[str, Any]:
    return {
        "Type": kind,
        "Action": action,
        "status": action,
        "id": actor,
        "Actor": {"ID": actor, "Attributes": attrs},
        "scope": "local",
        "time": 1795883640,
        "timeNano": 1795883640393227473,
    }


def test_format_event_like_docker(utc: None) -> None:
    e = event("container", "start", "abc123", name="web", image="busybox:latest")
    assert monitoring.format_event(e) == (
        "2026-11-28T16:34:00.393227473Z container start abc123 (image=busybox:latest, name=web)"
    )
    assert monitoring.format_event(event("image", "pull", "busybox:latest")) == (
        "2026-11-28T16:34:00.393227473Z image pull busybox:latest"
    )


def test_format_event_local_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "CET-1")
    time.tzset()
    try:
        line = monitoring.format_event(event("volume", "create", "v1"))
        assert line.startswith("2026-11-28T17:34:00.393227473+01:00 volume create v1")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_event_template_fields() -> None:
    fields = monitoring._EventFields(event("container", "die", "abc", name="web"))
    from capsa.cli.template import render

    text = render("{{.ID}} {{.Status}} {{.Type}} {{.Actor.Attributes.name}}", fields)
    assert text == "abc die container web"


EVENTS = [
    event("container", "create", "c1" * 32, name="web", image="busybox:latest", app="shop"),
    event("container", "start", "c1" * 32, name="web", image="busybox:latest"),
    event("container", "die", "d2" * 32, name="db", image="postgres:16", exitCode="0"),
    event("image", "pull", "busybox:latest", name="busybox:latest"),
    event("volume", "create", "data"),
    event("container", "health_status: healthy", "d2" * 32, name="db"),
]


def matching(*items: str) -> list[str]:
    match = info.event_matcher(parse_event_filters(list(items)))
    return [f"{e['Type']}:{e['Action']}:{e['Actor']['ID'][:2]}" for e in EVENTS if match(e)]


def test_event_filters() -> None:
    assert len(matching()) == len(EVENTS)
    assert matching("type=volume") == ["volume:create:da"]
    assert matching("type=container", "event=die") == ["container:die:d2"]
    assert matching("event=create", "event=die") == [
        "container:create:c1",
        "container:die:d2",
        "volume:create:da",
    ]
    assert matching("container=web") == ["container:create:c1", "container:start:c1"]
    assert matching("container=d2d2") == ["container:die:d2", "container:health_status: healthy:d2"]
    assert matching("image=busybox") == [
        "container:create:c1",
        "container:start:c1",
        "image:pull:bu",
    ]
    assert matching("label=app=shop") == ["container:create:c1"]
    assert matching("label=app=other") == []
    assert matching("event=health_status") == ["container:health_status: healthy:d2"]


# -- CLI formatting --------------------------------------------------------------------


def test_bytes_size_like_docker() -> None:
    assert monitoring.bytes_size(0) == "0B"
    assert monitoring.bytes_size(491520 + 512) == "480.5KiB"
    assert monitoring.bytes_size(64 << 20) == "64MiB"
    assert monitoring.bytes_size(int(23.54 * GIB)) == "23.54GiB"


def test_stats_row() -> None:
    s = stats.ContainerStats(
        id="f" * 64,
        name="web",
        cpu_percent=12.345,
        mem_usage=1 << 20,
        mem_limit=64 << 20,
        mem_percent=1.5625,
        net_rx=1234,
        net_tx=0,
        block_read=4096,
        block_write=1_500_000,
        pids=2,
        running=True,
    )
    row = monitoring.stats_row(s, "web", no_trunc=False)
    assert row == {
        "Container": "web",
        "Name": "web",
        "ID": "f" * 12,
        "CPUPerc": "12.35%",
        "MemUsage": "1MiB / 64MiB",
        "MemPerc": "1.56%",
        "NetIO": "1.23kB / 0B",
        "BlockIO": "4.1kB / 1.5MB",
        "PIDs": "2",
    }
    assert monitoring.stats_row(s, "web", no_trunc=True)["ID"] == "f" * 64


def test_stats_default_table_headers() -> None:
    from capsa.cli.template import format_rows

    row = monitoring.stats_row(stats.ContainerStats(id="0" * 64, name="x"), "x", False)
    text = format_rows("", [row], monitoring.STATS_HEADERS, default=monitoring.STATS_FORMAT)
    header = text.splitlines()[0].split()
    assert (
        " ".join(header) == "CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O BLOCK I/O PIDS"
    )


def record_with_ports(state: State = State.RUNNING) -> ContainerRecord:
    s = ContainerSpec(image="busybox")
    s.ports = [
        PortMapping(8080, 80, "tcp", ""),
        PortMapping(8080, 80, "tcp", "::"),
        PortMapping(5353, 53, "udp", "127.0.0.1"),
        PortMapping(9000, 9, "tcp", "0.0.0.0"),
    ]
    return ContainerRecord(
        id="1" * 64, name="web", image_id="", image_name="", created="", spec=s, state=state
    )


def test_port_lines() -> None:
    rec = record_with_ports()
    assert monitoring.port_lines(rec, None) == [
        "9/tcp -> 0.0.0.0:9000",
        "53/udp -> 127.0.0.1:5353",
        "80/tcp -> 0.0.0.0:8080",
        "80/tcp -> [::]:8080",
    ]
    assert monitoring.port_lines(rec, "80") == ["0.0.0.0:8080", "[::]:8080"]
    assert monitoring.port_lines(rec, "53/udp") == ["127.0.0.1:5353"]
    with pytest.raises(InvalidArgument, match="no public port '53' published for web"):
        monitoring.port_lines(rec, "53")
    with pytest.raises(InvalidArgument, match=r"invalid port \(abc\)"):
        monitoring.port_lines(rec, "abc")
    assert monitoring.port_lines(record_with_ports(State.EXITED), None) == []


def test_docker_info_fields() -> None:
    data = info.SystemInfo(id="x", name="host", containers=3, running=1, stopped=2, ncpu=2)
    doc = wire_system.docker_info(data)
    for key in ("ID", "Containers", "ContainersRunning", "ServerVersion", "Driver", "NCPU"):
        assert key in doc
    assert doc["CgroupVersion"] == "1" and doc["Driver"] == "overlay"
    lines = monitoring.info_lines(data)
    assert " Containers: 3" in lines and "  Running: 1" in lines
