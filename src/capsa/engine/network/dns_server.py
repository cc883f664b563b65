"""The embedded DNS server of one user network: ``python -m ... dns_server CONFIG``.

Listens on UDP and TCP (the network's gateway address, port 53), answers A/AAAA (and
PTR) for the names in the network's registry file, rotating the addresses of a name
shared by several containers, and forwards everything else to the host's resolvers.
Names are matched case-insensitively, with or without the network domain; unknown
names inside the domain get NXDOMAIN. The registry is re-read when its file changes.

Started detached by ``capsa.engine.network.dns``: sockets are bound first (errors go
to the starter), then the process forks, the parent writes the child's pid to the pid
file and exits; the child serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import sys

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from capsa.engine.network.dns_upstream import Upstreams, exchange
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IP_FREEBIND = 15  # bind the gateway address even before the bridge has it


@record
class ServerConfig:
    registry: str  # the network's records (written by capsa.engine.network.dns)
    listen: list[list[Any]] = field(default_factory=list)  # [[ip, port], ...]
    domain: str = "dns.capsa"
    upstreams: list[list[Any]] = field(default_factory=list)  # [] = the host's resolvers
    pidfile: str = ""
    log: str = ""
    timeout: float = 2.0
    ttl: int = 10

    @classmethod
    def load(cls, path: str) -> ServerConfig:
        with open(path) as f:
            data: dict[str, Any] = json.load(f)
        return cls(**data)
