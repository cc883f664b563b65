"""Registry credentials in Docker's ``config.json`` format, and ``login``.

``{"auths": {"<host>": {"auth": base64("user:password")}}}``; Docker Hub lives under
``https://index.docker.io/v1/`` as the docker CLI writes it. Every other key of the
file (``credsStore``, ``proxies``, ``HttpHeaders``...) is kept as it was. The file is
replaced atomically with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from capsa.errors import InvalidArgument, PermissionDenied
from capsa.linux.atomicfile import write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.config import Settings

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_KEY)


def auth_key(host: str) -> str:
    """The ``auths`` key for a registry host (Docker Hub's legacy URL for docker.io)."""
    return DOCKER_HUB_KEY if host in _HUB_ALIASES else host


def _normalize(key: str) -> str:
    """``https://host/v1/`` -> ``host`` (keys written by older clients carry a URL)."""
    if key == DOCKER_HUB_KEY:
        return key
    bare = key.split("://", 1)[-1]
    return auth_key(bare.split("/", 1)[0])


class Credentials:
    """The ``auths`` of one config file; read on each call, so edits by others show."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise InvalidArgument(f"{self.path}: invalid JSON: {e}") from None
        if not isinstance(data, dict):
            raise InvalidArgument(f"{self.path}: expected a JSON object")
        return data

    def _find(self, auths: dict[str, Any], host: str) -> str | None:
        want = auth_key(host)
        for key in auths:
            if _normalize(key) == want:
                return key
        return None

    def get(self, host: str) -> tuple[str, str] | None:
        auths = self._load().get("auths") or {}
        key = self._find(auths, host) if isinstance(auths, dict) else None
        entry = auths.get(key) if key else None
        if not isinstance(entry, dict):
            return None
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
        try:
            user, sep, password = base64.b64decode(entry.get("auth") or "").decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(f"{self.path}: bad auth entry for {host}") from None
        return (user, password) if sep and user else None

    def set(self, host: str, user: str, password: str) -> None:
        if ":" in user:
            raise InvalidArgument(f"invalid user name {user!r}: must not contain ':'")
        data = self._load()
        auths = data.setdefault("auths", {})
        old = self._find(auths, host)
        if old is not None:
            del auths[old]
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        auths[auth_key(host)] = {"auth": token}
        self._save(data)

    def remove(self, host: str) -> bool:
        """Forget ``host``; False if there was nothing to forget."""
        data = self._load()
        auths = data.get("auths") or {}
        key = self._find(auths, host) if isinstance(auths, dict) else None
        if key is None:
            return False
        del auths[key]
        self._save(data)
        return True

    def _save(self, data: dict[str, Any]) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, mode=0o700, exist_ok=True)
        write_atomic(self.path, (json.dumps(data, indent="\t") + "\n").encode(), 0o600)
        os.chmod(self.path, 0o600)


class _Fixed:
    """One host's credentials, as ``login`` checks them before saving."""

    def __init__(self, host: str, user: str, password: str) -> None:
        self.key = auth_key(host)
        self.creds = (user, password)

    def get(self, host: str) -> tuple[str, str] | None:
        return self.creds if auth_key(host) == self.key else None


async def login(settings: Settings, host: str, user: str, password: str, save: bool = True) -> None:
    """Check the credentials against ``host``'s ``/v2/``; store them when they work.

    Raises PermissionDenied("login to HOST failed: unauthorized") when refused.
    """
    from capsa.store.registry.client import RegistryHttp, endpoints

    ep = endpoints(settings, host, push=True)[0]
    http = RegistryHttp(settings, _Fixed(host, user, password))
    try:
        resp = await http.send("GET", ep, "/v2/", scopes=[], what=f"login to {host}")
        status = resp.status
        resp.release()
    except PermissionDenied:
        status = 401
    finally:
        await http.close()
    if status == 401:
        raise PermissionDenied(f"login to {host} failed: unauthorized")
    if status >= 400:
        raise PermissionDenied(f"login to {host} failed: status {status}")
    if save and settings.auth_file:
        Credentials(settings.auth_file).set(host, user, password)
