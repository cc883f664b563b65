"""Records shared by the network core, the firewall, DNS and the frontends."""

from __future__ import annotations

from capsa.record import field, record

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "capsa0"
BRIDGE_DRIVER = "bridge"
# docker's -o options understood by the bridge driver
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"

# filter name -> values, as Docker's API sends them: {"label": ["a=b"], "name": ["x"]}
NetworkFilters = dict[str, list[str]]


@record
class Network:
    id: str  # 64 hex
    name: str
    driver: str = BRIDGE_DRIVER
    bridge: str = ""  # host interface: "capsa0" (default), "capsa-<id12>" or -o bridge.name
    subnet: str = ""  # "10.88.0.0/16"
    gateway: str = ""  # "10.88.0.1"
    ip_range: str = ""  # sub-range leases come from ("" = the whole subnet)
    internal: bool = False
    ipv6: bool = False
    subnet6: str = ""
    gateway6: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""  # RFC 3339, UTC
    default: bool = False  # the "bridge" network: no embedded DNS
    mtu: int = 1500

    @property
    def prefix_len(self) -> int:
        return int(self.subnet.split("/")[1]) if "/" in self.subnet else 0

    @property
    def short_id(self) -> str:
        return self.id[:12]


@record
class Endpoint:
    network_id: str
    network_name: str
    container_id: str
    container_name: str
    ifname: str  # inside the container: "eth0", "eth1", ...
    host_ifname: str  # the veth peer on the host: "veth<hex>"
    mac: str
    ip: str  # no prefix
    prefix_len: int
    gateway: str
    ip6: str = ""
    aliases: list[str] = field(default_factory=list)
    dns_names: list[str] = field(default_factory=list)  # name, short id, aliases
    bridge: str = ""  # the network's bridge (for the firewall)
    internal: bool = False
    rate_in_bps: int = 0
    rate_out_bps: int = 0
    pid: int = 0  # the container's init when attached (its netns), 0 if unknown
    id: str = ""  # 64 hex, docker's EndpointID
    requested_ip: str = ""  # the address asked for (--ip, connect --ip): Docker's IPAMConfig


@record
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "tcp"  # "tcp" | "udp"
    host_ip: str = ""  # "" = all addresses


@record
class NetworkCreateOptions:
    name: str
    driver: str = BRIDGE_DRIVER
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    ipv6: bool = False
    subnet6: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    gateway6: str = ""


@record
class AttachRequest:
    container_id: str
    container_name: str
    pid: int
    network: str  # name or id
    aliases: list[str] = field(default_factory=list)
    ip: str = ""
    mac: str = ""
    ports: list[PortMapping] = field(default_factory=list)
    rate_in_bps: int = 0
    rate_out_bps: int = 0
