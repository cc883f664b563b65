"""Credentials file (docker config.json) round trips, and login against a fake registry."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.registry import FakeRegistry

from capsa.config import Settings
from capsa.errors import InvalidArgument, PermissionDenied
from capsa.store.credentials import DOCKER_HUB_KEY, Credentials, login


def test_round_trip_keeps_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "credsStore": "desktop",
                "proxies": {"default": {}},
                "auths": {"other.io": {"auth": "eDp5"}},
            }
        )
    )
    creds = Credentials(str(path))
    creds.set("127.0.0.1:5000", "capsa", "s3:cret")
    assert creds.get("127.0.0.1:5000") == ("capsa", "s3:cret")
    data = json.loads(path.read_text())
    assert data["credsStore"] == "desktop" and data["proxies"] == {"default": {}}
    assert data["auths"]["other.io"] == {"auth": "eDp5"}
    raw = base64.b64decode(data["auths"]["127.0.0.1:5000"]["auth"]).decode()
    assert raw == "capsa:s3:cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert creds.remove("127.0.0.1:5000") is True
    assert creds.remove("127.0.0.1:5000") is False
    assert creds.get("127.0.0.1:5000") is None
    assert json.loads(path.read_text())["credsStore"] == "desktop"


def test_docker_hub_key_and_url_keys(tmp_path: Path) -> None:
    creds = Credentials(str(tmp_path / "config.json"))
    creds.set("docker.io", "me", "pw")
    assert list(json.loads((tmp_path / "config.json").read_text())["auths"]) == [DOCKER_HUB_KEY]
    assert creds.get("docker.io") == creds.get("index.docker.io") == ("me", "pw")
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://reg.example.com/v1/": {"auth": base64.b64encode(b"a:b").decode()},
                    "plain.io": {"username": "u", "password": "p"},
                }
            }
        )
    )
    assert creds.get("reg.example.com") == ("a", "b")
    assert creds.get("plain.io") == ("u", "p")
    creds.set("reg.example.com", "c", "d")  # replaces the URL-keyed entry
    assert list(json.loads((tmp_path / "config.json").read_text())["auths"]) == [
        "plain.io",
        "reg.example.com",
    ]


def test_missing_and_bad_files(tmp_path: Path) -> None:
    assert Credentials(str(tmp_path / "none.json")).get("x.io") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(InvalidArgument, match="invalid JSON"):
        Credentials(str(bad)).get("x.io")
    with pytest.raises(InvalidArgument, match="must not contain"):
        Credentials(str(tmp_path / "c.json")).set("x.io", "a:b", "c")


@pytest.mark.asyncio
@pytest.mark.parametrize("auth", ["basic", "bearer"])
async def test_login(aiohttp_server: Any, tmp_path: Path, auth: str) -> None:
    server = await aiohttp_server(FakeRegistry(auth=auth).app())
    host = f"127.0.0.1:{server.port}"
    settings = Settings(root=str(tmp_path), auth_file=str(tmp_path / "auth.json"))
    with pytest.raises(PermissionDenied, match=f"login to {host} failed: unauthorized"):
        await login(settings, host, "capsa", "wrong")
    assert Credentials(settings.auth_file).get(host) is None
    await login(settings, host, "capsa", "secret")
    assert Credentials(settings.auth_file).get(host) == ("capsa", "secret")
