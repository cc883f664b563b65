"""The API server's frame: ping, version negotiation, errors, the socket, events."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from tests.helpers import api as api_helpers
from tests.helpers import capsa_cli
from tests.helpers.api import ApiService
from tests.helpers.capsa_cli import CAPSA, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa
api_module = api_helpers.api_module
api = api_helpers.api


def test_ping_and_versions(api: ApiService) -> None:
    reply = api.request("GET", "/_ping")
    assert reply.status == 200 and reply.body == b"OK"
    assert reply.headers["API-Version"] == "1.50"
    head = api.request("HEAD", "/_ping")
    assert head.status == 200 and head.body == b""
    doc = api.request("GET", "/v1.41/version").json()
    assert doc["ApiVersion"] == "1.50" and doc["MinAPIVersion"] == "1.24"
    assert doc["Os"] == "linux"


def test_version_out_of_range_and_unknown_paths(api: ApiService) -> None:
    reply = api.request("GET", "/v1.99/info")
    assert reply.status == 400
    assert "too new" in reply.json()["message"]
    assert api.request("GET", "/v1.12/info").status == 400
    for path in ("/nope", "/v1.41/nope", "/containers/x/nope"):
        reply = api.request("GET", path)
        assert reply.status == 404, path
        assert set(reply.json()) == {"message"}


def test_socket_mode(api: ApiService) -> None:
    mode = stat.S_IMODE(os.stat(api.socket).st_mode)
    assert mode == 0o660


def test_info_counts_what_the_cli_made(api: ApiService, capsa: CapsaCli) -> None:
    before = api.request("GET", "/info").json()
    name = capsa.name()
    capsa.run("create", "--name", name, capsa.image, "true")
    after = api.request("GET", "/info").json()
    assert after["Containers"] == before["Containers"] + 1
    assert after["ContainersStopped"] == before["ContainersStopped"] + 1
    assert api.docker("info", "--format", "{{.Containers}}").stdout.strip() == str(
        after["Containers"]
    )


def test_events_stream_and_filters(api: ApiService, capsa: CapsaCli) -> None:
    """``/events`` streams what happens after the request; ``until`` ends it."""
    import http.client

    name = capsa.name()
    since = time.time()
    got: list[dict[str, object]] = []

    def read() -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(api.socket))
        conn = http.client.HTTPConnection("localhost")
        conn.sock = sock
        filters = quote(json.dumps({"container": [name]}))
        conn.request("GET", f"/events?filters={filters}")
        resp = conn.getresponse()
        for line in resp:
            got.append(json.loads(line))
            if got[-1].get("Action") == "destroy":
                break
        conn.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    capsa.run("create", "--name", name, capsa.image, "true")
    capsa.run("rm", name)
    reader.join(20)
    assert [e["Action"] for e in got] == ["create", "destroy"]
    assert all(e["Actor"]["Attributes"]["name"] == name for e in got)  # type: ignore[index]
    # a bounded query ends by itself
    until = time.time()
    reply = api.request("GET", f"/events?since={since}&until={until}")
    actions = [json.loads(line)["Action"] for line in reply.body.splitlines()]
    assert "create" in actions and "destroy" in actions
    bad = api.request("GET", "/events?filters=notjson")
    assert bad.status == 400 and "filter" in bad.json()["message"]


def test_socket_activation_and_idle_exit(capsa: CapsaCli, tmp_path: Path) -> None:
    """systemd's protocol (LISTEN_FDS): the service serves the socket it is handed, and
    with ``--timeout`` exits once idle (capsa.socket / capsa.service)."""
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("needs systemd-socket-activate")
    sock = tmp_path / "activated.sock"
    proc = subprocess.Popen(
        [activate, "-l", str(sock), CAPSA, "system", "service", "--timeout", "1"],
        env=capsa.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
            time.sleep(0.05)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(20)
        conn.connect(str(sock))
        conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
        conn.close()
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"OK")
        assert proc.wait(timeout=20) == 0  # idle for a second: it exits by itself
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_system_df_lists_images_containers_and_volumes(api: ApiService, capsa: CapsaCli) -> None:
    name, volume = capsa.name(), capsa.name()
    capsa.run("volume", "create", volume)
    capsa.run(
        "run", "--name", name, "-v", f"{volume}:/data", capsa.image,
        "sh", "-c", "head -c 3000 /dev/urandom >/data/f; head -c 5000 /dev/urandom >/g",
    )  # fmt: skip
    doc = api.request("GET", "/system/df").json()
    assert set(doc) >= {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    mine = [c for c in doc["Containers"] if c["Names"] == [f"/{name}"]]
    assert len(mine) == 1 and mine[0]["SizeRw"] >= 5000
    vols = {v["Name"]: v for v in doc["Volumes"]}
    usage = vols[volume]["UsageData"]
    assert usage["Size"] >= 3000 and usage["RefCount"] == 1
    assert any(capsa.image in i["RepoTags"] for i in doc["Images"])
    rows = api.docker("system", "df", "--format", "{{.Type}}").stdout.splitlines()
    assert rows == ["Images", "Containers", "Local Volumes", "Build Cache"]
    capsa.run("rm", name)
    capsa.run("volume", "rm", volume)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tcp_only_on_loopback_unless_tls(capsa: CapsaCli, tmp_path: Path) -> None:
    import ssl
    import urllib.request

    refused = capsa.run("system", "service", "tcp://0.0.0.0:2375", check=False)
    assert refused.returncode == 1
    assert "without TLS" in refused.stderr and "Traceback" not in refused.stderr
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl for the TLS case")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    plain, secure = _free_port(), _free_port()
    proc = subprocess.Popen(
        [CAPSA, "system", "service", "--timeout", "60", "-H", f"tcp://127.0.0.1:{plain}"],
        env=capsa.env, stderr=subprocess.PIPE,
    )  # fmt: skip
    tls = subprocess.Popen(
        [CAPSA, "system", "service", "--tlscert", str(cert), "--tlskey", str(key),
         "-H", f"tcp://0.0.0.0:{secure}"],
        env=capsa.env, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(cert))
        for url, ctx in ((f"http://127.0.0.1:{plain}/_ping", None),
                         (f"https://127.0.0.1:{secure}/_ping", context)):  # fmt: skip
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(url, context=ctx, timeout=5) as reply:
                        assert reply.read() == b"OK"
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"no answer at {url}"
                    time.sleep(0.1)
        with pytest.raises(OSError):  # plain HTTP is not served on the TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{secure}/_ping", timeout=5).read()
    finally:
        for p in (proc, tls):
            p.terminate()
            assert p.wait(timeout=20) == 0


def test_the_service_reaps_what_it_spawned(api: ApiService, capsa: CapsaCli) -> None:
    """The monitors and exec watchers the service spawns do not stay its zombies."""
    assert api.proc is not None
    name = capsa.name()
    api.docker("run", "--rm", "--network", "none", capsa.image, "true")
    api.docker("run", "-d", "--name", name, "--network", "none", capsa.image, "sleep", "300")
    api.docker("exec", name, "true")
    api.docker("rm", "-f", name)

    def zombies() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if fields[0] == "Z" and int(fields[1]) == api.proc.pid:  # type: ignore[union-attr]
                found.append(int(entry))
        return found

    deadline = time.monotonic() + 10
    while zombies():
        assert time.monotonic() < deadline, f"zombies of the service: {zombies()}"
        time.sleep(0.2)
