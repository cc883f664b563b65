"""Challenge parsing, registry error mapping and endpoint selection."""

from __future__ import annotations

import json

from capsa.config import RegistryConfig, Settings
from capsa.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from capsa.store.registry.auth import _parse_token, parse_challenges
from capsa.store.registry.client import endpoints
from capsa.store.registry.errors import error_for, parse_errors


def test_bearer_challenge() -> None:
    (c,) = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",'
        'service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull",
    }


def test_several_challenges_and_odd_spacing() -> None:
    got = parse_challenges(
        'Basic realm="Registry Realm", BEARER  realm = "https://a/t" ,'
        ' scope="repository:a:pull,push", error=insufficient_scope'
    )
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[0].params == {"realm": "Registry Realm"}
    assert got[1].params["scope"] == "repository:a:pull,push"
    assert got[1].params["error"] == "insufficient_scope"
    (esc,) = parse_challenges(r'Basic realm="a \"quoted\" realm"')
    assert esc.params["realm"] == 'a "quoted" realm'
    assert parse_challenges("") == []


def test_token_body() -> None:
    assert _parse_token(b'{"token": "abc", "expires_in": 300}', "r") == ("Bearer abc", 295)
    assert _parse_token(b'{"access_token": "x"}', "r")[0] == "Bearer x"


def test_error_mapping() -> None:
    def body(code: str) -> bytes:
        return json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()

    assert parse_errors(body("DENIED")) == [("DENIED", "denied")]
    assert parse_errors(b"<html>") == []
    nf = error_for(404, body("MANIFEST_UNKNOWN"), "h", "pull of x", "manifest for x not found")
    assert isinstance(nf, NotFound) and str(nf) == "manifest for x not found"
    assert isinstance(error_for(404, b"", "h", "w", "gone"), NotFound)
    assert isinstance(error_for(401, body("NAME_UNKNOWN"), "h", "w", "n"), NotFound)
    assert isinstance(error_for(403, body("DENIED"), "h", "w", "n"), PermissionDenied)
    assert isinstance(error_for(401, b"", "h", "w", "n"), PermissionDenied)
    err = error_for(503, b"", "h:1", "pull of x", "n")
    assert isinstance(err, Unavailable) and "status 503" in str(err)
    assert isinstance(error_for(400, body("MANIFEST_INVALID"), "h", "w", "n"), InvalidArgument)


def test_endpoints() -> None:
    settings = Settings(
        registries={
            "docker.io": RegistryConfig(mirrors=["http://127.0.0.1:5000", "mirror.example.com/"]),
            "corp.io": RegistryConfig(location="corp-mirror.io:8443"),
            "plain.io": RegistryConfig(insecure=True),
        }
    )
    hub = endpoints(settings, "docker.io")
    assert [e.url for e in hub] == [
        "http://127.0.0.1:5000",
        "https://mirror.example.com",
        "https://registry-1.docker.io",
    ]
    assert [e.mirror for e in hub] == [True, True, False]
    assert hub[-1].cred_key == "docker.io"
    assert [e.url for e in endpoints(settings, "docker.io", push=True)] == [
        "https://registry-1.docker.io"
    ]
    assert endpoints(settings, "corp.io")[0].url == "https://corp-mirror.io:8443"
    assert endpoints(settings, "plain.io")[0].url == "http://plain.io"
    assert endpoints(settings, "localhost:5000")[0].url == "http://localhost:5000"
    assert endpoints(settings, "quay.io")[0].url == "https://quay.io"
