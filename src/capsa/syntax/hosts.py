"""Docker's host addresses (``-H``, ``DOCKER_HOST``): ``unix:///path``, ``tcp://host:port``."""

from __future__ import annotations

from capsa.errors import InvalidArgument
from capsa.record import record

DEFAULT_TCP_PORT = 2375
DEFAULT_TLS_PORT = 2376


@record
class HostAddress:
    scheme: str  # "unix" or "tcp"
    path: str = ""  # unix
    host: str = ""  # tcp
    port: int = 0

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        import ipaddress

        if self.scheme == "unix" or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_host(text: str, tls: bool = False) -> HostAddress:
    """``unix:///run/x.sock``, ``tcp://127.0.0.1:2375``, ``tcp://[::1]`` (Docker's
    default port: 2375, or 2376 with TLS)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise InvalidArgument(f"invalid host {text!r}: expected unix:// or tcp://")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise InvalidArgument(f"invalid host {text!r}: the socket path must be absolute")
        return HostAddress("unix", path=rest)
    if scheme != "tcp":
        raise InvalidArgument(f"invalid host {text!r}: unsupported scheme {scheme!r}")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not host:
        raise InvalidArgument(f"invalid host {text!r}: no address")
    port = DEFAULT_TLS_PORT if tls else DEFAULT_TCP_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidArgument(f"invalid host {text!r}: bad port {port_text!r}")
        port = int(port_text)
    return HostAddress("tcp", host=host, port=port)
