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
    out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                         capture_output=True, text=True).stdout
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
            "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")},
                        "delete": {"enabled": True}},
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
            self._proc = subprocess.Popen([REGISTRY_BIN, "serve", str(conf)], stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
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


def push_layout(reg: LocalRegistry, layout_dir: str | Path, ref: str, fmt: str = "oci",
                creds: str | None = None, tag: str = "latest") -> None:
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
