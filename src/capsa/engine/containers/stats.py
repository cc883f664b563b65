"""Container resource usage: ``stats`` numbers and ``top`` process lists.

A ``Sample`` is one reading of a container (the runtime's ``events --stats`` data,
the host's CPU time and the container's network counters) taken at one moment;
``compute`` turns two samples into the figures ``docker stats`` prints, with the
docker CLI's formulas (``capsa.api.wire_stats`` lays a sample out as Docker's
``GET /containers/{id}/stats``). ``top`` runs the host's ``ps`` and keeps the
container's processes, as dockerd does.
"""

from __future__ import annotations

import os
import time

from capsa.errors import CapsaError, Conflict, Internal, InvalidArgument
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.service_context import ServiceContext

NET_FIELDS = ("bytes", "packets", "errors", "dropped")


@record
class NetStats:
    """One interface's counters from /proc/<pid>/net/dev."""

    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@record
class Sample:
    id: str
    name: str
    read_ns: int  # wall clock of the reading
    running: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # runc "events --stats" data
    system_cpu: int = 0  # host CPU time in ns (/proc/stat), as dockerd reports it
    online_cpus: int = 0
    host_memory: int = 0
    networks: dict[str, NetStats] | None = None  # None: no network namespace of its own


@record
class ContainerStats:
    id: str
    name: str
    cpu_percent: float = 0.0
    mem_usage: int = 0
    mem_limit: int = 0
    mem_percent: float = 0.0
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0
    pids: int = 0
    running: bool = False


@record
class TopResult:
    titles: list[str]
    processes: list[list[str]]


# -- pure calculations (the docker CLI's formulas) -----------------------------------


def cpu_percent(
    cpu_total: int, prev_cpu_total: int, system: int, prev_system: int, online_cpus: int
) -> float:
    cpu_delta = cpu_total - prev_cpu_total
    system_delta = system - prev_system
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online_cpus * 100.0
    return 0.0


def memory_usage(memory: dict[str, Any]) -> int:
    """Usage without the inactive page cache: total_inactive_file (v1), inactive_file (v2)."""
    usage = int((memory.get("usage") or {}).get("usage", 0))
    raw = memory.get("raw") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in raw:
            return usage - raw[key] if raw[key] < usage else usage
    return usage


def memory_limit(memory: dict[str, Any], host_memory: int) -> int:
    """The cgroup's limit, or the host's memory when there is none (as dockerd does)."""
    limit = int((memory.get("usage") or {}).get("limit", 0))
    if host_memory > 0 and (limit == 0 or limit > host_memory):
        return host_memory
    return limit


def block_io(blkio: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in blkio.get("ioServiceBytesRecursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value", 0))
        elif op == "write":
            write += int(entry.get("value", 0))
    return read, write


def parse_net_dev(text: str) -> dict[str, NetStats]:
    """/proc/net/dev without ``lo``."""
    out: dict[str, NetStats] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        values = rest.split()
        name = name.strip()
        if not sep or name == "lo" or len(values) < 12:
            continue
        rx = [int(values[i]) for i in (0, 1, 2, 3)]
        tx = [int(values[i]) for i in (8, 9, 10, 11)]
        kw = {f"rx_{k}": v for k, v in zip(NET_FIELDS, rx, strict=True)}
        kw.update({f"tx_{k}": v for k, v in zip(NET_FIELDS, tx, strict=True)})
        out[name] = NetStats(**kw)
    return out


def host_cpu_ns(proc_stat: str, clock_ticks: int = 100) -> int:
    """dockerd's system_cpu_usage: the first seven fields of the ``cpu`` line, in ns."""
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            ticks = sum(int(v) for v in parts[1:8])
            return ticks * 1_000_000_000 // clock_ticks
    raise Internal("invalid /proc/stat: no cpu line")


def compute(current: Sample, previous: Sample | None) -> ContainerStats:
    """``docker stats``' figures; CPU % needs ``previous`` (else 0)."""
    out = ContainerStats(id=current.id, name=current.name, running=current.running)
    if not current.running:
        return out
    data = current.data
    if previous is not None and previous.running:
        out.cpu_percent = cpu_percent(
            _cpu_total(data),
            _cpu_total(previous.data),
            current.system_cpu,
            previous.system_cpu,
            current.online_cpus or len(_percpu(data)),
        )
    memory = data.get("memory") or {}
    out.mem_usage = memory_usage(memory)
    out.mem_limit = memory_limit(memory, current.host_memory)
    if out.mem_limit:
        out.mem_percent = out.mem_usage / out.mem_limit * 100.0
    for net in (current.networks or {}).values():
        out.net_rx += net.rx_bytes
        out.net_tx += net.tx_bytes
    out.block_read, out.block_write = block_io(data.get("blkio") or {})
    out.pids = int((data.get("pids") or {}).get("current", 0))
    return out


def _cpu_total(data: dict[str, Any]) -> int:
    return int(((data.get("cpu") or {}).get("usage") or {}).get("total", 0))


def _percpu(data: dict[str, Any]) -> list[int]:
    return list(((data.get("cpu") or {}).get("usage") or {}).get("percpu") or [])


# -- reading the kernel ------------------------------------------------------------


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def host_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def container_networks(pid: int) -> dict[str, NetStats] | None:
    """Counters of the network namespace ``pid`` is in; None if it is the host's."""
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return None
        return parse_net_dev(_read(f"/proc/{pid}/net/dev"))
    except OSError:
        return None


def sample(ctx: ServiceContext, rec: ContainerRecord) -> Sample:
    """Read one container now; a container that is not running reads as zeros."""
    from capsa.engine.containers.types import State

    out = Sample(
        id=rec.id,
        name=rec.name,
        read_ns=time.time_ns(),
        system_cpu=host_cpu_ns(_read("/proc/stat"), os.sysconf("SC_CLK_TCK")),
        online_cpus=os.sysconf("SC_NPROCESSORS_ONLN"),
        host_memory=host_memory(),
    )
    if rec.state not in (State.RUNNING, State.PAUSED):
        return out
    try:
        out.data = ctx.backend(rec.spec.runtime).stats(rec.id).get("data") or {}
    except CapsaError:  # it stopped meanwhile
        return out
    out.running = True
    if rec.pid > 0:
        out.networks = container_networks(rec.pid)
    return out


# -- top -----------------------------------------------------------------------------


def validate_ps_args(args: list[str]) -> None:
    """dockerd's check: only ``pid=`` may rename the PID column."""
    import re

    text = " " + " ".join(args)
    for key, value in re.findall(r"\s+([^\s]*)=\s*(PID[^\s]*)", text):
        if key != "pid":
            raise InvalidArgument(f'specifying "{key}={value}" is not allowed')


def parse_ps(output: str, pids: list[int]) -> TopResult:
    """Keep ``ps`` lines of ``pids`` (and the thread lines under them, ``ps m``)."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise Internal("couldn't find PID field in ps output")
    index, wanted, keep = titles.index("PID"), set(pids), False
    result = TopResult(titles=titles, processes=[])
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if fields[index] == "-":
            if keep:
                result.processes.append(_merge(fields, len(titles)))
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise Internal(f"unexpected pid '{fields[index]}'") from None
        keep = pid in wanted
        if keep:
            result.processes.append(_merge(fields, len(titles)))
    return result


def _merge(fields: list[str], width: int) -> list[str]:
    """Join the overhanging fields (a command with spaces) into the last column."""
    return [*fields[: width - 1], " ".join(fields[width - 1 :])]


def top(ctx: ServiceContext, rec: ContainerRecord, ps_args: list[str] | None = None) -> TopResult:
    import subprocess

    from capsa.engine.containers.types import State

    if rec.state not in (State.RUNNING, State.PAUSED):
        raise Conflict(f"container {rec.id} is not running")
    args = ps_args or ["-ef"]
    validate_ps_args(args)
    pids = ctx.backend(rec.spec.runtime).pids(rec.id)
    quick = ["-q", ",".join(str(p) for p in pids)] if pids else []
    run = subprocess.run(["ps", *args, *quick], capture_output=True, text=True, check=False)
    if run.returncode != 0 and quick:  # some options (such as f) do not mix with -q
        run = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        message = (run.stderr.strip().splitlines() or ["failed"])[-1]
        raise InvalidArgument(f"ps: {message}")
    return parse_ps(run.stdout, pids)
