"""A private Distribution registry on loopback (Debian's ``docker-registry``).

``LocalRegistry`` starts ``docker-registry serve`` with its own config, storage in a
temp dir and a free ``127.0.0.1`` port, optionally behind htpasswd basic auth.
``push_layout`` copies an OCI layout into it with skopeo (as OCI or Docker schema 2).

Fixtures (module scope): ``registry`` (anonymous) and ``auth_registry`` (basic auth,
user ``capsa`` / password ``secret``). Use them by importing them into a test module
or through ``pytest_plugins = ["tests.helpers.registry"]``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REGISTRY_BIN = "docker-registry"
AUTH_USER = "capsa"
AUTH_PASSWORD = "secret"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _htpasswd(user: str, password: str) -> str:
    """A bcrypt htpasswd line (apache2-utils' ``htpasswd -Bbn``)."""
    if shutil.which("htpasswd") is None:
        pytest.skip("needs htpasswd (apt-get install apache2-utils)")
    out = subprocess.run(
        ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
    ).stdout
    return out.strip() + "\n"


class LocalRegistry:
    """One ``docker-registry serve`` process; ``stop()`` kills it and removes its data."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        if shutil.which(REGISTRY_BIN) is None:
            pytest.skip("needs docker-registry (apt-get install docker-registry)")
        self.auth = auth
        self.dir = Path(tempfile.mkdtemp(prefix="capsa-test-registry-"))
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.log = self.dir / "registry.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._start()

    def _config(self) -> dict[str, object]:
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.dir / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host},
        }
        if self.auth:
            path = self.dir / "htpasswd"
            path.write_text(_htpasswd(*self.auth))
            config["auth"] = {"htpasswd": {"realm": "capsa-test", "path": str(path)}}
        return config

    def _start(self) -> None:
        conf = self.dir / "config.yml"
        conf.write_text(json.dumps(self._config()))  # JSON is YAML
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError as e:
                if e.code == 401:  # auth enabled: it is up
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"docker-registry on {self.host} did not answer in {timeout}s")

    @property
    def creds(self) -> str | None:
        """``user:password`` for skopeo, when auth is enabled."""
        return f"{self.auth[0]}:{self.auth[1]}" if self.auth else None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def skopeo(*args: str) -> bytes:
    """Run skopeo; return its stdout (raise with its stderr on failure)."""
    if shutil.which("skopeo") is None:
        pytest.skip("needs skopeo (apt-get install skopeo)")
    proc = subprocess.run(["skopeo", *args], capture_output=True, timeout=120)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"skopeo {' '.join(args)} failed: {err}")
    return proc.stdout


def push_layout(
    reg: LocalRegistry,
    layout_dir: str | Path,
    ref: str,
    fmt: str = "oci",
    creds: str | None = None,
    tag: str = "latest",
) -> None:
    """``skopeo copy oci:<layout>:<tag> docker://<host>/<ref>`` (all platforms)."""
    args = ["copy", "--quiet", "--all", "--dest-tls-verify=false"]
    if fmt == "v2s2":
        args += ["--format", "v2s2"]
    elif fmt != "oci":
        raise ValueError(f"unknown format {fmt!r}")
    creds = creds or reg.creds
    if creds:
        args += ["--dest-creds", creds]
    skopeo(*args, f"oci:{layout_dir}:{tag}", f"docker://{reg.host}/{ref}")


def inspect_raw(reg: LocalRegistry, ref: str, config: bool = False) -> bytes:
    """``skopeo inspect --raw [--config]`` of ``<host>/<ref>`` (the exact bytes served)."""
    args = ["inspect", "--raw", "--tls-verify=false"]
    if config:
        args = ["inspect", "--config", "--raw", "--tls-verify=false"]
    if reg.creds:
        args += ["--creds", reg.creds]
    return skopeo(*args, f"docker://{reg.host}/{ref}")


@pytest.fixture(scope="module")
def registry() -> Iterator[LocalRegistry]:
    """An anonymous registry on a free loopback port, private to the test module."""
    reg = LocalRegistry()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry() -> Iterator[LocalRegistry]:
    """A registry with htpasswd basic auth: user ``capsa``, password ``secret``."""
    reg = LocalRegistry(auth=(AUTH_USER, AUTH_PASSWORD))
    yield reg
    reg.stop()


# --- an in-process fake registry (aiohttp) for unit tests --------------------------


def _sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """A small Distribution API in memory, with switches to misbehave.

    ``auth``: None, "bearer" (token from ``/token``, basic-checked when given) or
    "basic"; ``users`` are accepted credentials. ``ignore_range`` answers 200 to
    Range requests; ``drop_after[digest] = n`` sends n bytes of that blob then drops
    the connection (once); ``corrupt`` serves other bytes for a digest;
    ``blob_redirect`` sends blob GETs to ``<url>/storage/<digest>``.
    """

    def __init__(self, auth: str | None = None) -> None:
        self.auth = auth
        self.users = {AUTH_USER: AUTH_PASSWORD}
        self.blobs: dict[str, bytes] = {}
        self.links: dict[str, set[str]] = {}  # repository -> digests it holds
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.uploads: dict[str, bytearray] = {}
        self.ignore_range = False
        self.drop_after: dict[str, int] = {}
        self.corrupt: dict[str, bytes] = {}
        self.blob_redirect: str | None = None
        self.status: int | None = None  # answer every /v2/ request with this status
        self.tokens_issued: list[str] = []

    # -- content ---------------------------------------------------------------
    def add_blob(self, data: bytes, repo: str = "") -> str:
        digest = _sha256(data)
        self.blobs[digest] = data
        self.links.setdefault(repo, set()).add(digest)
        return digest

    def add_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> str:
        digest = _sha256(raw)
        self.manifests[(repo, ref)] = (raw, media_type)
        self.manifests[(repo, digest)] = (raw, media_type)
        return digest

    def add_image(
        self, repo: str, tag: str, layers: list[bytes], arch: str = "amd64", media_type: str = "oci"
    ) -> str:
        """Store a one-platform image; return its manifest digest."""
        docker = media_type == "v2s2"
        config = json.dumps(
            {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
        layer_type = (
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            if docker
            else "application/vnd.oci.image.layer.v1.tar+gzip"
        )
        doc = {
            "schemaVersion": 2,
            "mediaType": (
                "application/vnd.docker.distribution.manifest.v2+json"
                if docker
                else "application/vnd.oci.image.manifest.v1+json"
            ),
            "config": {
                "mediaType": (
                    "application/vnd.docker.container.image.v1+json"
                    if docker
                    else "application/vnd.oci.image.config.v1+json"
                ),
                "digest": self.add_blob(config, repo),
                "size": len(config),
            },
            "layers": [
                {"mediaType": layer_type, "digest": self.add_blob(d, repo), "size": len(d)}
                for d in layers
            ],
        }
        raw = json.dumps(doc).encode()
        return self.add_manifest(repo, tag, raw, str(doc["mediaType"]))

    # -- server ----------------------------------------------------------------
    def app(self) -> object:
        from aiohttp import web

        async def middleware(request: Any, handler: Any) -> Any:
            return await self._middleware(request, handler)

        app = web.Application(middlewares=[web.middleware(middleware)])
        app.router.add_get("/token", self._token)
        app.router.add_route("*", "/v2/", self._base)
        app.router.add_route("*", "/v2/{repo:.+}/manifests/{ref}", self._manifest)
        app.router.add_route("*", "/v2/{repo:.+}/blobs/uploads/", self._start_upload)
        app.router.add_route("*", "/v2/{repo:.+}/blobs/uploads/{uuid}", self._upload)
        app.router.add_route("*", "/v2/{repo:.+}/blobs/{digest}", self._blob)
        return app

    async def _middleware(self, request: Any, handler: Any) -> Any:
        from aiohttp import web

        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        if request.path.startswith("/v2/"):
            if self.status is not None:
                return web.json_response(
                    {"errors": [{"code": "UNAVAILABLE", "message": "down"}]}, status=self.status
                )
            denied = self._check_auth(request)
            if denied is not None:
                return denied
        return await handler(request)

    def _check_auth(self, request: Any) -> Any:
        from aiohttp import web

        header = request.headers.get("Authorization", "")
        if self.auth == "basic":
            if header in {_basic(u, p) for u, p in self.users.items()}:
                return None
            challenge = 'Basic realm="fake"'
        elif self.auth == "bearer":
            if header.startswith("Bearer ") and header[7:] in self.tokens_issued:
                return None
            base = f"http://{request.host}"
            challenge = f'Bearer realm="{base}/token",service="fake-registry"'
        else:
            return None
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        return web.json_response(body, status=401, headers={"WWW-Authenticate": challenge})

    async def _token(self, request: Any) -> Any:
        from aiohttp import web

        header = request.headers.get("Authorization")
        if header and header not in {_basic(u, p) for u, p in self.users.items()}:
            return web.json_response({"details": "bad credentials"}, status=401)
        token = f"tok{len(self.tokens_issued)}"
        self.tokens_issued.append(token)
        return web.json_response({"token": token, "expires_in": 300})

    async def _base(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({})

    async def _manifest(self, request: Any) -> Any:
        from aiohttp import web

        repo, ref = request.match_info["repo"], request.match_info["ref"]
        if request.method == "PUT":
            raw = await request.read()
            digest = self.add_manifest(repo, ref, raw, request.content_type)
            return web.Response(status=201, headers={"Docker-Content-Digest": digest})
        if (repo, ref) not in self.manifests:
            body = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            return web.json_response(body, status=404)
        raw, mtype = self.manifests[(repo, ref)]
        headers = {"Docker-Content-Digest": _sha256(raw), "Content-Type": mtype}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(raw))})
        return web.Response(body=raw, headers=headers)

    async def _blob(self, request: Any) -> Any:
        from aiohttp import web

        digest = request.match_info["digest"]
        if digest not in self.links.get(request.match_info["repo"], set()):
            body = {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}
            return web.json_response(body, status=404)
        if request.method == "HEAD":
            return web.Response(headers={"Content-Length": str(len(self.blobs[digest]))})
        if self.blob_redirect:
            raise web.HTTPTemporaryRedirect(f"{self.blob_redirect}/storage/{digest}")
        return await self.serve_blob(request, digest)

    async def serve_blob(self, request: Any, digest: str) -> Any:
        """Serve a blob honouring Range (unless ignore_range) and the drop/corrupt switches."""
        from aiohttp import web

        data = self.corrupt.get(digest, self.blobs[digest])
        start, status = 0, 200
        rng = request.headers.get("Range", "")
        if rng.startswith("bytes=") and not self.ignore_range:
            start, status = int(rng[6:].split("-")[0]), 206
        headers = {
            "Content-Length": str(len(data) - start),
            "Content-Type": "application/octet-stream",
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        drop = self.drop_after.pop(digest, None)
        if drop is not None:
            await resp.write(data[start : start + drop])
            request.transport.close()
            return resp
        await resp.write(data[start:])
        await resp.write_eof()
        return resp

    async def _start_upload(self, request: Any) -> Any:
        from aiohttp import web

        repo = request.match_info["repo"]
        mount, source = request.query.get("mount"), request.query.get("from")
        if mount and source and mount in self.links.get(source, set()):
            self.links.setdefault(repo, set()).add(mount)
            return web.Response(status=201, headers={"Location": f"/v2/{repo}/blobs/{mount}"})
        uuid = f"u{len(self.uploads)}"
        self.uploads[uuid] = bytearray()
        return web.Response(
            status=202,
            headers={"Location": f"/v2/{repo}/blobs/uploads/{uuid}?_state=s{uuid}", "Range": "0-0"},
        )

    async def _upload(self, request: Any) -> Any:
        from aiohttp import web

        repo, uuid = request.match_info["repo"], request.match_info["uuid"]
        buf = self.uploads[uuid]
        if request.method == "PATCH":
            start = int(request.headers.get("Content-Range", "0-0").split("-")[0])
            if start != len(buf):
                return web.Response(status=416)
            buf.extend(await request.read())
            return web.Response(
                status=202,
                headers={
                    "Location": f"/v2/{repo}/blobs/uploads/{uuid}?_state=p{len(buf)}",
                    "Range": f"0-{len(buf) - 1}",
                },
            )
        buf.extend(await request.read())
        digest = request.query["digest"]
        if _sha256(bytes(buf)) != digest:
            body = {"errors": [{"code": "DIGEST_INVALID", "message": "digest mismatch"}]}
            return web.json_response(body, status=400)
        self.add_blob(bytes(buf), repo)
        return web.Response(status=201, headers={"Location": f"/v2/{repo}/blobs/{digest}"})


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def storage_app(fake: FakeRegistry) -> object:
    """A second server standing for blob storage (``fake.blob_redirect`` points here)."""
    from aiohttp import web

    async def storage(request: Any) -> Any:
        fake.requests.append((request.method, request.path_qs, dict(request.headers)))
        return await fake.serve_blob(request, request.match_info["digest"])

    app = web.Application()
    app.router.add_get("/storage/{digest}", storage)
    return app
