"""Registry authentication: ``WWW-Authenticate`` challenges, bearer tokens, basic auth.

The client first asks anonymously; a 401 carries challenges. ``Bearer realm=...,
service=...,scope=...`` is answered with a token from the realm (fetched with basic
credentials when we have some, anonymously otherwise), ``Basic`` with the
credentials themselves. Tokens are cached per (host, scopes) until they expire.
"""

from __future__ import annotations

import base64
import json
import re
import time

from capsa.errors import PermissionDenied, Unavailable
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    import aiohttp

    Lookup = Callable[[str], "tuple[str, str] | None"]

_TOKEN = re.compile(r"\s*([!#$%&'*+.^_`|~\w-]+)")
_PARAM = re.compile(r"""\s*([!#$%&'*+.^_`|~\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?""")
_ESCAPE = re.compile(r"\\(.)")
_MIN_TTL = 60  # seconds a token lives when the server does not say


@record
class Challenge:
    scheme: str  # lower-case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)  # keys lower-case


def parse_challenges(header: str) -> list[Challenge]:
    """All challenges of one ``WWW-Authenticate`` header value, in order."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = _TOKEN.match(header, pos)
        if m is None:
            pos += 1  # separators between challenges
            continue
        challenge = Challenge(m.group(1).lower())
        pos = m.end()
        while (p := _PARAM.match(header, pos)) is not None:
            key, quoted, bare = p.groups()
            challenge.params[key.lower()] = (
                _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
            )
            pos = p.end()
        out.append(challenge)
    return out


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def scope_key(scopes: list[str]) -> str:
    return " ".join(sorted(set(scopes)))


class Authenticator:
    """Answers challenges for one client; caches tokens per (host, scopes)."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}

    def cached(self, host: str, scopes: list[str]) -> str | None:
        """An ``Authorization`` value still valid for ``host`` and ``scopes``."""
        for key in ((host, scope_key(scopes)), (host, "")):
            hit = self._cache.get(key)
            if hit and hit[1] > time.monotonic():
                return hit[0]
        return None

    async def answer(
        self,
        session: aiohttp.ClientSession,
        host: str,
        cred_key: str,
        header: str,
        scopes: list[str],
    ) -> str | None:
        """The ``Authorization`` value answering ``header``; None if we cannot."""
        challenges = {c.scheme: c for c in parse_challenges(header)}
        creds = self._lookup(cred_key)
        if "bearer" in challenges:
            params = challenges["bearer"].params
            value, ttl = await fetch_token(session, host, params, scopes, creds)
            self._cache[(host, scope_key(scopes))] = (value, time.monotonic() + ttl)
            return value
        if "basic" in challenges and creds:
            value = basic_header(*creds)
            self._cache[(host, "")] = (value, float("inf"))
            return value
        return None

    def forget(self, host: str, scopes: list[str]) -> None:
        self._cache.pop((host, scope_key(scopes)), None)
        self._cache.pop((host, ""), None)


async def fetch_token(
    session: aiohttp.ClientSession,
    host: str,
    params: dict[str, str],
    scopes: list[str],
    creds: tuple[str, str] | None,
) -> tuple[str, float]:
    """GET the realm for a token; return (``Bearer <token>``, seconds it stays valid)."""
    import aiohttp

    realm = params.get("realm")
    if not realm:
        raise PermissionDenied(f"registry {host} sent a bearer challenge without a realm")
    query: list[tuple[str, str]] = []
    if params.get("service"):
        query.append(("service", params["service"]))
    for scope in scopes or ([params["scope"]] if params.get("scope") else []):
        query.append(("scope", scope))
    headers = {"Authorization": basic_header(*creds)} if creds else {}
    try:
        async with session.get(realm, params=query, headers=headers) as resp:
            if resp.status in (401, 403):
                raise PermissionDenied(f"authentication to {host} failed: unauthorized")
            if resp.status != 200:
                raise Unavailable(f"token server {realm} answered status {resp.status}")
            body = await resp.read()
    except aiohttp.ClientError as e:
        raise Unavailable(f"cannot reach token server {realm}: {e}") from None
    return _parse_token(body, realm)


def _parse_token(body: bytes, realm: str) -> tuple[str, float]:
    try:
        data = json.loads(body)
        token = data.get("token") or data.get("access_token")
        expires = float(data.get("expires_in") or _MIN_TTL)
    except (ValueError, AttributeError, TypeError):
        token, expires = None, 0.0
    if not isinstance(token, str) or not token:
        raise Unavailable(f"token server {realm} sent no token")
    # renew a little early; never trust a lifetime below the spec's minimum
    return f"Bearer {token}", max(expires, _MIN_TTL) - 5
