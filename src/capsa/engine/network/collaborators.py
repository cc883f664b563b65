"""What the network service needs besides links and records: a firewall and a name
server, handed to it (``NetworkService(firewall=..., dns=...)``) rather than looked up,
so that a missing one is an error, never a silently skipped step, and unit tests pass
fakes. The real ones: ``firewall.NftFirewall`` and ``dns.EmbeddedDns``. Only type
checkers import this module."""

from __future__ import annotations

from typing import Protocol

from capsa.engine.network.types import Endpoint, Network, PortMapping


class Firewall(Protocol):
    def ensure_base(self) -> None:
        """The table and its base chains; forwarding on. Idempotent."""

    def add_network(self, net: Network) -> None:
        """NAT, forwarding and isolation of ``net`` (its bridge exists). Idempotent."""

    def remove_network(self, net: Network) -> None:
        """Undo ``add_network``; missing pieces are fine."""

    def publish(self, ep: Endpoint, ports: list[PortMapping]) -> None:
        """DNAT ``ports`` to the endpoint, replacing what it published before."""

    def unpublish(self, ep: Endpoint) -> None:
        """Remove the endpoint's published ports; none is fine."""


class Dns(Protocol):
    domain: str  # the search domain containers of user networks get

    def start(self, net: Network) -> None:
        """The network's server, unless it runs; returns once it answers."""

    def stop(self, net: Network) -> None:
        """End the network's server and remove its files."""

    def register(self, net: Network, ep: Endpoint) -> None:
        """Make the endpoint's names resolvable on ``net``."""

    def unregister(self, net: Network, container_id: str) -> None:
        """Forget the container's names on ``net``."""
