"""``-p``/``--publish`` port specs and ``--add-host`` entries."""

from __future__ import annotations

from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.network.types import PortMapping


def parse_publish(text: str) -> list[PortMapping]:
    """docker's -p: [ip:][hostPort[-end]:]containerPort[-end][/proto], one mapping a port
    (``host_port`` 0: chosen at create)."""
    from capsa.engine.network.types import PortMapping

    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    parts = spec.rsplit(":", 2) if not spec.startswith("[") else _split_v6(spec)
    host_ip, host, container = "", "", parts[-1]
    if len(parts) == 2:
        host = parts[0]
    elif len(parts) == 3:
        host_ip, host = parts[0], parts[1]
    cports = _range(container, text)
    hports = _range(host, text) if host else [0] * len(cports)
    if len(hports) == 1 and len(cports) > 1 and host:
        raise InvalidArgument(f"invalid ranges specified for container and host ports: {text}")
    if len(hports) != len(cports):
        raise InvalidArgument(f"invalid ranges specified for container and host ports: {text}")
    return [
        PortMapping(host_port=h, container_port=c, protocol=proto, host_ip=host_ip)
        for h, c in zip(hports, cports, strict=True)
    ]


def _split_v6(spec: str) -> list[str]:
    ip, _, rest = spec[1:].partition("]")
    return [ip, *rest.lstrip(":").split(":", 1)]


def _range(text: str, whole: str) -> list[int]:
    start, dash, end = text.partition("-")
    try:
        a = int(start)
        b = int(end) if dash else a
    except ValueError:
        raise InvalidArgument(f'invalid port specification: "{whole}"') from None
    if not (0 < a <= 65535 and 0 < b <= 65535 and a <= b):
        raise InvalidArgument(f'invalid port specification: "{whole}"')
    return list(range(a, b + 1))


def parse_extra_host(text: str) -> str:
    """``--add-host HOST:IP`` (or ``HOST=IP``) as ``HOST:IP``."""
    host = text.replace("=", ":", 1) if "=" in text else text
    if ":" not in host:
        raise InvalidArgument(
            f'invalid argument "{host}" for "--add-host" flag: bad format for add-host'
        )
    return host
