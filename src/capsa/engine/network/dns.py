"""Embedded DNS of user networks: the per-network registry and its server process.

``settings.runroot/dns/<network id>.json`` holds the network's names::

    {"domain": "dns.capsa",
     "containers": {"<container id>": {"names": ["web", "3f2a...", "api"],
                                       "ip": "10.89.0.2", "ip6": ""}}}

The engine writes it (``register``/``unregister``, under a lock, replaced atomically);
the server (``dns_server``) re-reads it when it changes. ``start_dns`` runs one server per
network on the gateway address, port 53; ``stop_dns`` ends it and removes its files.
This module imports no DNS library: the monitor calls it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import time

from capsa.errors import InvalidArgument, Unavailable
from capsa.linux.atomicfile import write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from capsa.config import Settings
    from capsa.engine.network.types import Endpoint, Network

DOMAIN = "dns.capsa"  # the search domain containers get in resolv.conf
DNS_PORT = 53
SERVER_MODULE = "capsa.engine.network.dns_server"
RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"


def dns_dir(settings: Settings) -> str:
    return os.path.join(settings.runroot, "dns")


def _path(settings: Settings, network_id: str, suffix: str) -> str:
    return os.path.join(dns_dir(settings), f"{network_id}{suffix}")


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class DnsRegistry:
    """The names of one network: container id -> names and addresses."""

    def __init__(self, settings: Settings, network_id: str, domain: str = DOMAIN) -> None:
        self.path = _path(settings, network_id, ".json")
        self.domain = domain

    def load(self) -> dict[str, dict[str, Any]]:
        return read_entries(self.path)

    def register(self, container_id: str, names: list[str], ip: str, ip6: str = "") -> None:
        entry = {"names": _unique(names), "ip": ip, "ip6": ip6}
        self._update(lambda entries: entries.__setitem__(container_id, entry))

    def unregister(self, container_id: str) -> None:
        self._update(lambda entries: entries.pop(container_id, None))

    def ensure(self) -> None:
        """Create the (empty) file if missing."""
        self._update(lambda entries: None)

    def delete(self) -> None:
        for path in (self.path, self.path + ".lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _update(self, change: Any) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        with _locked(self.path + ".lock"):
            entries = self.load()
            change(entries)
            data = {"domain": self.domain, "containers": entries}
            write_atomic(self.path, json.dumps(data, indent=1).encode(), 0o644)


def read_entries(path: str) -> dict[str, dict[str, Any]]:
    """Container id -> {"names", "ip", "ip6"} from a registry file ({} if missing)."""
    try:
        with open(path) as f:
            containers: dict[str, dict[str, Any]] = json.load(f).get("containers", {})
            return containers
    except FileNotFoundError:
        return {}


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        if name and name.lower() not in seen:
            seen[name.lower()] = None
    return list(seen)


class Records:
    """The server's view of a registry file, reloaded when the file changes."""

    def __init__(self, path: str, domain: str = DOMAIN) -> None:
        self.path, self.domain = path, domain.strip(".").lower()
        self._stamp: tuple[int, int, int] | None = None
        self._names: dict[str, tuple[list[str], list[str]]] = {}
        self._reverse: dict[str, str] = {}
        self._turn: dict[str, int] = {}

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._names, self._reverse = None, {}, {}
            return
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            self._index(read_entries(self.path))

    def _index(self, entries: dict[str, dict[str, Any]]) -> None:
        names: dict[str, tuple[list[str], list[str]]] = {}
        reverse: dict[str, str] = {}
        for container_id in sorted(entries):
            entry = entries[container_id]
            for name in entry.get("names", []):
                v4, v6 = names.setdefault(name.lower(), ([], []))
                v4 += [entry["ip"]] if entry.get("ip") else []
                v6 += [entry["ip6"]] if entry.get("ip6") else []
            primary = next(iter(entry.get("names", [])), "")
            for ip in (entry.get("ip"), entry.get("ip6")):
                if ip and primary:
                    reverse.setdefault(ip, f"{primary.lower()}.{self.domain}")
        self._names, self._reverse = names, reverse

    def normalize(self, name: str) -> str:
        name = name.strip(".").lower()
        return name.removesuffix("." + self.domain)

    def in_domain(self, name: str) -> bool:
        name = name.strip(".").lower()
        return name == self.domain or name.endswith("." + self.domain)

    def lookup(self, name: str) -> tuple[list[str], list[str]] | None:
        """(IPv4, IPv6) addresses of ``name``, rotated one step per call; None if unknown."""
        key = self.normalize(name)
        found = self._names.get(key)
        if found is None:
            return None
        turn = self._turn.get(key, 0)
        self._turn[key] = turn + 1
        return _rotate(found[0], turn), _rotate(found[1], turn)

    def reverse(self, ip: str) -> str | None:
        return self._reverse.get(ip)


def _rotate(items: list[str], turn: int) -> list[str]:
    if not items:
        return []
    k = turn % len(items)
    return items[k:] + items[:k]


# -- upstream resolvers ------------------------------------------------------------


def nameservers(path: str) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf file ([] if missing)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            found.append(words[1])
    return found


def host_nameservers(
    resolv_conf: str = RESOLV_CONF, systemd_conf: str = SYSTEMD_RESOLV_CONF
) -> list[str]:
    """The host's real resolvers: resolv.conf's, or systemd-resolved's upstreams when
    resolv.conf only names a local stub (127.0.0.x, ::1). Also for containers'
    resolv.conf on the default bridge."""
    servers = nameservers(resolv_conf)
    if servers and all(_is_loopback(s) for s in servers):
        return nameservers(systemd_conf) or servers
    return servers


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


class Upstreams:
    """Where the server forwards: fixed servers, or the host's (re-read on change)."""

    def __init__(self, fixed: list[tuple[str, int]], exclude: set[str]) -> None:
        self.fixed, self.exclude = fixed, exclude
        self._stamp: tuple[float, ...] = ()
        self._servers: list[tuple[str, int]] = []

    def servers(self) -> list[tuple[str, int]]:
        if self.fixed:
            return self.fixed
        stamp = tuple(_mtime(p) for p in (RESOLV_CONF, SYSTEMD_RESOLV_CONF))
        if stamp != self._stamp:
            self._stamp = stamp
            found = host_nameservers()
            self._servers = [(s, DNS_PORT) for s in found if s not in self.exclude]
        return self._servers


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


# -- engine API --------------------------------------------------------------------


def register(settings: Settings, network: Network, ep: Endpoint) -> None:
    """Make the endpoint's names (``dns_names``, else its name and aliases) resolvable."""
    names = ep.dns_names or [ep.container_name, *ep.aliases]
    DnsRegistry(settings, network.id).register(ep.container_id, names, ep.ip, ep.ip6)


def unregister(settings: Settings, network: Network, container_id: str) -> None:
    DnsRegistry(settings, network.id).unregister(container_id)


def dns_server_for(network: Network) -> tuple[str, int]:
    """Where containers of ``network`` send queries (their resolv.conf nameserver)."""
    return network.gateway, DNS_PORT


def running_pid(settings: Settings, network_id: str) -> int:
    """The pid of the network's server if it runs, else 0."""
    pidfile = _path(settings, network_id, ".pid")
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            zombie = f.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except (OSError, ValueError):
        return 0
    config = _path(settings, network_id, ".conf.json").encode()
    return pid if SERVER_MODULE.encode() in cmdline and config in cmdline and not zombie else 0


def start_dns(
    settings: Settings,
    network: Network,
    *,
    listen: tuple[str, int] | None = None,
    upstreams: list[tuple[str, int]] | None = None,
    timeout: float = 10.0,
) -> tuple[str, int]:
    """Run the network's DNS server unless it runs already; return once it answers.

    ``listen`` defaults to the gateway, port 53; ``upstreams`` to the host's resolvers.
    """
    address = listen or dns_server_for(network)
    if not address[0]:
        raise InvalidArgument(f"network {network.name} has no gateway for its dns server")
    os.makedirs(dns_dir(settings), mode=0o700, exist_ok=True)
    with _locked(_path(settings, network.id, ".pid.lock")):
        if running_pid(settings, network.id):
            return address
        DnsRegistry(settings, network.id).ensure()
        config = _write_config(settings, network, address, upstreams or [])
        _spawn(config, network.name, timeout)
        _wait_answers(address, timeout, network.name)
    return address


def _write_config(
    settings: Settings, network: Network, address: tuple[str, int], upstreams: list[Any]
) -> str:
    path = _path(settings, network.id, ".conf.json")
    config = {
        "registry": _path(settings, network.id, ".json"),
        "listen": [list(address)],
        "domain": DOMAIN,
        "upstreams": [list(u) for u in upstreams],
        "pidfile": _path(settings, network.id, ".pid"),
        "log": _path(settings, network.id, ".log"),
    }
    write_atomic(path, json.dumps(config, indent=1).encode(), 0o600)
    return path


def _spawn(config: str, name: str, timeout: float) -> None:
    """Start the server; it exits (status 0) once its detached child serves."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", SERVER_MODULE, config]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise Unavailable(f"dns server of network {name} did not start") from None
    if proc.returncode != 0:
        reason = (err.decode(errors="replace").strip().splitlines() or ["failed"])[-1]
        raise Unavailable(f"dns server of network {name}: {reason}")


def _wait_answers(address: tuple[str, int], timeout: float, name: str) -> None:
    """Send a probe query until the server answers it."""
    qid = os.getpid() & 0xFFFF
    labels = b"".join(bytes([len(p)]) + p for p in (b"capsa-probe", *DOMAIN.encode().split(b".")))
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + b"\0\1\0\1"
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                sock.sendto(query, address)
                reply = sock.recv(512)
                if reply[:2] == query[:2] and reply[2] & 0x80:
                    return
    raise Unavailable(f"dns server of network {name} does not answer on {address[0]}")


def stop_dns(settings: Settings, network: Network, timeout: float = 5.0) -> None:
    """End the network's server (SIGTERM, then SIGKILL) and remove its files."""
    os.makedirs(dns_dir(settings), mode=0o700, exist_ok=True)
    lock = _path(settings, network.id, ".pid.lock")
    with _locked(lock):
        pid = running_pid(settings, network.id)
        if pid:
            _terminate(pid, timeout)
        for suffix in (".pid", ".conf.json", ".log"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_path(settings, network.id, suffix))
        DnsRegistry(settings, network.id).delete()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def _terminate(pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError as e:
        return e.errno != errno.ENOENT


class EmbeddedDns:
    """The network service's name server (``collaborators.Dns``): one server per user
    network, on its gateway, resolving the names of its containers."""

    domain = DOMAIN

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def start(self, net: Network) -> None:
        start_dns(self.settings, net)

    def stop(self, net: Network) -> None:
        stop_dns(self.settings, net)

    def register(self, net: Network, ep: Endpoint) -> None:
        register(self.settings, net, ep)

    def unregister(self, net: Network, container_id: str) -> None:
        unregister(self.settings, net, container_id)
