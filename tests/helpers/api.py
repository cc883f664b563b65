"""``capsa system service`` on a private socket, for tests of the Docker Engine API.

Fixtures (bind them in a test module as ``api = tests.helpers.api.api``, beside the
``capsa_cli`` ones):

- ``api_module`` (module): the service on the roots of ``capsa_module`` (one state: what
  the CLI makes, the API sees), its socket outside the roots. At teardown the service
  must exit 0 on SIGTERM and remove its socket.
- ``api`` (function): the same service, with the ``capsa`` fixture's cleanup and leak
  checks after the test.

``ApiService`` offers ``request`` (raw HTTP over the socket), ``docker`` (the docker CLI
pointed at the socket) and ``client`` (docker-py).
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.capsa_cli import CAPSA, CapsaCli

DOCKER = shutil.which("docker")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


def unix_request(
    sock: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Reply:
    """One HTTP request to the service at unix socket ``sock``; ``body``: bytes as
    they are, anything else as JSON."""
    conn = _UnixConnection(sock, timeout)
    try:
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else jsonlib.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return Reply(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


class ApiService:
    def __init__(self, cli: CapsaCli, sock: Path, config_dir: Path) -> None:
        self.cli = cli
        self.socket = sock
        self.url = f"unix://{sock}"
        self.config_dir = config_dir
        self.proc: subprocess.Popen[bytes] | None = None

    # -- the service -------------------------------------------------------------
    def start(self) -> None:
        self.proc = subprocess.Popen(
            [CAPSA, "system", "service", "--socket", str(self.socket)],
            env=self.cli.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the service exited {self.proc.returncode}: {self._stderr()}")
            try:
                if self.request("GET", "/_ping").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail("the service did not answer /_ping within 20s")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the service did not exit within 20s of SIGTERM")
        err = self._stderr()
        assert code == 0, f"the service exited {code}: {err}"
        assert "Traceback" not in err, err
        assert not self.socket.exists(), "the service left its socket behind"

    def _stderr(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    # -- clients -----------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Reply:
        """One HTTP request; ``body``: bytes as they are, anything else as JSON."""
        return unix_request(str(self.socket), method, path, body, headers, timeout)

    def docker(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this service."""
        if DOCKER is None:
            pytest.skip("needs the docker CLI")
        env = {**os.environ, "DOCKER_HOST": self.url, "DOCKER_CONFIG": str(self.config_dir)}
        env.pop("DOCKER_CONTEXT", None)
        proc = subprocess.run(
            [DOCKER, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def client(self) -> Any:
        """A docker-py client on this service."""
        docker = pytest.importorskip("docker")
        return docker.DockerClient(base_url=self.url, version="auto", timeout=120)


@pytest.fixture(scope="module")
def api_module(
    capsa_module: CapsaCli, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiService]:
    base = tmp_path_factory.mktemp("api")
    config = base / "docker-config"
    config.mkdir()
    service = ApiService(capsa_module, base / "docker.sock", config)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def api(api_module: ApiService, capsa: CapsaCli) -> ApiService:
    """The module's service; the ``capsa`` fixture removes what the test made."""
    return api_module
