"""HTTP plumbing of the registry client: endpoints, the aiohttp session, auth, redirects.

``endpoints`` lists where a repository can be reached: for pulls its mirrors in
order, then the origin; for pushes the origin only. ``RegistryHttp.send`` makes one
request with the challenge flow (anonymous first, answer a 401, retry once) and
follows redirects itself so that the ``Authorization`` header never leaves the
registry host (blob storage redirects carry their own signature).
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from capsa.errors import PermissionDenied
from capsa.record import record
from capsa.store.registry.auth import Authenticator
from capsa.store.registry.errors import error_for, unreachable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Protocol

    import aiohttp

    from capsa.config import Settings

    class CredentialSource(Protocol):
        def get(self, host: str) -> tuple[str, str] | None: ...


DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10


@record(frozen=True)
class Endpoint:
    url: str  # scheme://host[:port][/prefix], no trailing slash
    host: str  # host[:port]: token cache key
    cred_key: str  # whose credentials apply ("docker.io", a mirror's host)
    mirror: bool = False


def _origin(settings: Settings, domain: str) -> Endpoint:
    host = settings.registry(domain).location or domain
    if host == DOCKER_HUB:
        host = DOCKER_HUB_API
    scheme = "http" if settings.is_insecure(host) or settings.is_insecure(domain) else "https"
    return Endpoint(url=f"{scheme}://{host}", host=host, cred_key=domain)


def _mirror(settings: Settings, url: str) -> Endpoint:
    if "://" not in url:
        scheme = "http" if settings.is_insecure(url.split("/", 1)[0]) else "https"
        url = f"{scheme}://{url}"
    host = urlsplit(url).netloc
    return Endpoint(url=url.rstrip("/"), host=host, cred_key=host, mirror=True)


def endpoints(settings: Settings, domain: str, *, push: bool = False) -> list[Endpoint]:
    """Mirrors (pull only, in order) then the origin."""
    origin = _origin(settings, domain)
    if push:
        return [origin]
    return [_mirror(settings, m) for m in settings.registry(domain).mirrors] + [origin]


class RegistryHttp:
    """One aiohttp session shared by a client's requests; created on first use."""

    def __init__(self, settings: Settings, credentials: CredentialSource | None) -> None:
        self.settings = settings
        self.credentials = credentials
        self.auth = Authenticator(self._lookup)
        self._session: aiohttp.ClientSession | None = None

    def _lookup(self, key: str) -> tuple[str, str] | None:
        return self.credentials.get(key) if self.credentials else None

    def session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=120)
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        ep: Endpoint,
        path: str,
        *,
        scopes: list[str],
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        what: str = "request",
    ) -> aiohttp.ClientResponse:
        """One request to ``ep`` (``path`` absolute or relative to ep.url), authorized.

        Returns the final response, whatever its status; the caller releases it.
        A 401 that the challenge flow cannot fix raises PermissionDenied.
        """
        url = path if "://" in path else ep.url + path
        hdrs = dict(headers or {})
        resp = await self._follow(method, ep, url, hdrs, data, scopes)
        if resp.status != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        body = await resp.read()
        resp.release()
        self.auth.forget(ep.host, scopes)
        value = await self.auth.answer(self.session(), ep.host, ep.cred_key, challenge, scopes)
        if value is None:
            raise error_for(401, body, ep.host, what, what)
        resp = await self._follow(method, ep, url, hdrs, data, scopes)
        if resp.status == 401:
            body = await resp.read()
            resp.release()
            err = error_for(401, body, ep.host, what, what)
            raise PermissionDenied(err.message)
        return resp

    async def _follow(
        self,
        method: str,
        ep: Endpoint,
        url: str,
        headers: dict[str, str],
        data: bytes | None,
        scopes: list[str],
    ) -> aiohttp.ClientResponse:
        import aiohttp

        for _ in range(_MAX_REDIRECTS):
            hdrs = dict(headers)
            same_host = urlsplit(url).netloc == ep.host
            token = self.auth.cached(ep.host, scopes) if same_host else None
            if token:
                hdrs["Authorization"] = token
            try:
                resp = await self.session().request(
                    method, url, headers=hdrs, data=data, allow_redirects=False
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                raise unreachable(urlsplit(url).netloc or ep.host, e) from None
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECTS or not location:
                return resp
            resp.release()
            url = urljoin(url, location)
            if resp.status == 303:
                method, data = "GET", None
        raise unreachable(ep.host, RuntimeError("too many redirects"))
