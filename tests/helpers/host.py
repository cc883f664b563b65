"""The host's view of processes and routes, for tests that look past capsa's output."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path


def cmdline(pid: int) -> str:
    """The process's command line (its title, for capsa's monitors); "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def ppid(pid: int) -> int:
    """The process's parent; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def free_subnet() -> str:
    """A random 10.200-250.x.0/24 overlapping no route of the host."""
    from pyroute2 import IPRoute

    from capsa.engine.network import pools

    with IPRoute() as ipr:
        routes = [ipaddress.ip_network(r, strict=False) for r in pools.host_routes(ipr)]
    for _ in range(500):
        net = ipaddress.ip_network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(r) for r in routes):
            return str(net)
    raise AssertionError("no free subnet")
