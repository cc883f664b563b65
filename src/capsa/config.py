"""Typed settings: roots, registries and mirrors, from ``capsa.toml``.

Frontends decide where settings come from (flags, ``CAPSA_ROOT``/``CAPSA_RUNROOT``/
``CAPSA_CONFIG``, the file) and call ``load``; libraries receive a ``Settings`` and
never read the environment themselves.

Example ``/etc/capsa/capsa.toml``::

    root = "/var/lib/capsa"
    runroot = "/run/capsa"

    [registries."docker.io"]
    mirrors = ["http://127.0.0.1:5000"]     # tried in order, then the origin

    [registries."registry.local:5000"]
    insecure = true                          # plain HTTP, no TLS verification
"""

from __future__ import annotations

import os

from capsa.errors import InvalidArgument
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DEFAULT_ROOT = "/var/lib/capsa"
DEFAULT_RUNROOT = "/run/capsa"
DEFAULT_CONFIG = "/etc/capsa/capsa.toml"


@record
class RegistryConfig:
    mirrors: list[str] = field(default_factory=list)
    insecure: bool = False
    # push and pull through a different host (rare); "" = the name itself
    location: str = ""


@record
class Settings:
    root: str = DEFAULT_ROOT
    runroot: str = DEFAULT_RUNROOT
    config_path: str = DEFAULT_CONFIG
    registries: dict[str, RegistryConfig] = field(default_factory=dict)
    # where `capsa login` keeps credentials (docker's config.json format)
    auth_file: str = ""
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 3
    # seconds an idle monitor host stays up (and warm) for the next container
    monitor_linger: float = 5.0

    def registry(self, domain: str) -> RegistryConfig:
        return self.registries.get(domain) or RegistryConfig()

    def is_insecure(self, host: str) -> bool:
        """Plain HTTP allowed: listed as insecure, or on loopback."""
        if self.registry(host).insecure:
            return True
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0][1:]
        return name in ("localhost", "::1") or name.startswith("127.")


def _registries(raw: Any, path: str) -> dict[str, RegistryConfig]:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{path}: [registries] must be a table")
    out = {}
    for name, value in raw.items():
        if not isinstance(value, dict):
            raise InvalidArgument(f"{path}: registries.{name} must be a table")
        mirrors = value.get("mirrors", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
            raise InvalidArgument(f"{path}: registries.{name}.mirrors must be a list of strings")
        unknown = set(value) - {"mirrors", "insecure", "location"}
        if unknown:
            raise InvalidArgument(f"{path}: registries.{name}: unknown key {sorted(unknown)[0]}")
        out[name] = RegistryConfig(
            mirrors=list(mirrors),
            insecure=bool(value.get("insecure")),
            location=str(value.get("location", "")),
        )
    return out


def _read_file(path: str, required: bool) -> dict[str, Any]:
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        if required:
            raise InvalidArgument(f"config file {path} does not exist") from None
        return {}
    import tomllib  # only when there is a file: most commands run without one

    with f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise InvalidArgument(f"{path}: {e}") from None


def _seconds(value: Any, name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds < 0:
        raise InvalidArgument(f"{name} must be a number of seconds >= 0: {value!r}")
    return seconds


def load(
    *,
    root: str | None = None,
    runroot: str | None = None,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from (in order of precedence) arguments, environment, file, defaults."""
    env = env if env is not None else {}
    path = config or env.get("CAPSA_CONFIG") or DEFAULT_CONFIG
    data = _read_file(path, required=bool(config or env.get("CAPSA_CONFIG")))
    known = {
        "root",
        "runroot",
        "registries",
        "auth_file",
        "max_concurrent_downloads",
        "max_concurrent_uploads",
        "monitor_linger",
    }
    unknown = set(data) - known
    if unknown:
        raise InvalidArgument(f"{path}: unknown key {sorted(unknown)[0]}")
    home = env.get("HOME") or os.path.expanduser("~")
    settings = Settings(
        root=root or env.get("CAPSA_ROOT") or str(data.get("root") or DEFAULT_ROOT),
        runroot=runroot or env.get("CAPSA_RUNROOT") or str(data.get("runroot") or DEFAULT_RUNROOT),
        config_path=path,
        registries=_registries(data.get("registries", {}), path),
        auth_file=str(
            data.get("auth_file")
            or env.get("CAPSA_AUTH_FILE")
            or os.path.join(home, ".docker", "config.json")
        ),
        max_concurrent_downloads=int(data.get("max_concurrent_downloads", 3)),
        max_concurrent_uploads=int(data.get("max_concurrent_uploads", 3)),
        monitor_linger=_seconds(
            env.get("CAPSA_MONITOR_LINGER") or data.get("monitor_linger", 5.0), "monitor_linger"
        ),
    )
    for name in ("root", "runroot"):
        if not os.path.isabs(getattr(settings, name)):
            raise InvalidArgument(f"{name} must be an absolute path: {getattr(settings, name)}")
    return settings
