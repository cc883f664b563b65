"""The API's streams: attach (hijacked, half-close), logs, exec, stats, resize, driven
with raw sockets, docker-py and the docker CLI (through a pty for ``-it``)."""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

import pytest
from tests.helpers import api as api_helpers
from tests.helpers import capsa_cli
from tests.helpers.api import DOCKER, ApiService
from tests.helpers.capsa_cli import CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa
api_module = api_helpers.api_module
api = api_helpers.api


def _hijack(api: ApiService, path: str, body: dict[str, Any] | None = None) -> socket.socket:
    """POST ``path`` asking to upgrade; the socket once the 101 headers are read."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    data = json.dumps(body).encode() if body is not None else b""
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"connection closed before the headers: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return out
        out += data


def _demux(data: bytes) -> tuple[bytes, bytes]:
    """Docker's multiplexed frames -> (stdout, stderr)."""
    streams = {1: b"", 2: b""}
    while data:
        kind, size = struct.unpack(">BxxxI", data[:8])
        streams[kind] += data[8 : 8 + size]
        data = data[8 + size :]
    return streams[1], streams[2]


def test_attach_relays_stdin_and_half_close_ends_it(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("run", "-d", "-i", "--name", name, capsa.image, "sh", "-c", "cat; echo done >&2")
    sock = _hijack(api, f"/v1.43/containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1")
    sock.sendall(b"through the api\n")
    sock.shutdown(socket.SHUT_WR)  # the client's stdin ended
    out, err = _demux(_read_all(sock))
    sock.close()
    assert out == b"through the api\n"
    assert err == b"done\n"
    capsa.wait_status(name, "exited")
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "0"


def test_attach_to_a_stopped_container_is_a_conflict(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("run", "--name", name, capsa.image, "true")
    reply = api.request("POST", f"/containers/{name}/attach?logs=0&stream=0&stdout=1")
    assert reply.status == 400
    missing = api.request("POST", "/containers/nosuch-xyz/attach?stream=1&stdout=1")
    assert missing.status == 404
    assert missing.json()["message"] == "No such container: nosuch-xyz"


def test_logs_frames_tail_timestamps_and_follow(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run(
        "run", "-d", "--name", name, capsa.image,
        "sh", "-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; done; sleep 1; echo late",
    )  # fmt: skip
    capsa.wait_for(lambda: "out3" in capsa.run("logs", name).stdout, what="the first lines")
    reply = api.request("GET", f"/containers/{name}/logs?stdout=1&stderr=1")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
    out, err = _demux(reply.body)
    assert out.startswith(b"out1\nout2\nout3\n") and err == b"err1\nerr2\nerr3\n"
    only_err = _demux(api.request("GET", f"/containers/{name}/logs?stderr=1&tail=1").body)
    assert only_err == (b"", b"err3\n")
    stamped = _demux(api.request("GET", f"/containers/{name}/logs?stdout=1&timestamps=1").body)
    first = stamped[0].split(b"\n")[0]
    assert first.endswith(b" out1") and first[:4].isdigit() and b"T" in first
    # follow: the response ends when the container does, with what came late
    followed = api.request("GET", f"/containers/{name}/logs?stdout=1&follow=1", timeout=30)
    assert _demux(followed.body)[0].endswith(b"late\n")
    bad = api.request("GET", f"/containers/{name}/logs")
    assert bad.status == 400


def test_docker_py_logs_stream_and_exec_run(api: ApiService, capsa: CapsaCli) -> None:
    client = api.client()
    name = capsa.name()
    capsa.run("run", "-d", "--name", name, capsa.image, "sh", "-c", "echo ready; sleep 300")
    container = client.containers.get(name)
    capsa.wait_for(lambda: b"ready" in container.logs(), what="ready")
    stream = container.logs(stream=True, follow=True)
    assert next(stream) == b"ready\n"
    stream.close()
    code, out = container.exec_run(["sh", "-c", "echo to-out; echo to-err >&2; exit 4"])
    assert code == 4 and b"to-out" in out and b"to-err" in out
    code, (out, err) = container.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert code == 0 and out == b"o\n" and err == b"e\n"
    result = container.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; done"], stream=True)
    assert b"".join(result.output) == b"1\n2\n3\n"
    code, out = container.exec_run(["tty"], tty=True)
    assert code == 0 and out.startswith(b"/dev/pts/")
    code, out = container.exec_run(["id", "-u"], user="65534")
    assert (code, out.strip()) == (0, b"65534")
    client.close()


def test_exec_detached_then_inspect(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("run", "-d", "--name", name, capsa.image, "sleep", "300")
    made = api.request(
        "POST", f"/containers/{name}/exec", {"Cmd": ["sh", "-c", "touch /tmp/ran; exit 7"]}
    )
    assert made.status == 201, made
    exec_id = made.json()["Id"]
    started = api.request("POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert started.status == 200
    deadline = time.monotonic() + 15
    while (doc := api.request("GET", f"/exec/{exec_id}/json").json())["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert doc["ExitCode"] == 7 and doc["ContainerID"] == capsa.full_id(name)
    assert capsa.run("exec", name, "ls", "/tmp/ran").returncode == 0
    again = api.request("POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert again.status == 409
    assert api.request("GET", "/exec/nosuch/json").status == 404
    stopped = capsa.name()
    capsa.run("create", "--name", stopped, capsa.image, "true")
    refused = api.request("POST", f"/containers/{stopped}/exec", {"Cmd": ["true"]})
    assert refused.status == 409 and "is not running" in refused.json()["message"]
    bad = api.request("POST", f"/containers/{name}/exec", {"Cmd": "true"})
    assert bad.status == 400 and "Cmd" in bad.json()["message"]


def test_exec_attached_stdin_half_close(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("run", "-d", "--name", name, capsa.image, "sleep", "300")
    exec_id = api.request(
        "POST",
        f"/containers/{name}/exec",
        {"Cmd": ["sh", "-c", "wc -c"], "AttachStdin": True, "AttachStdout": True},
    ).json()["Id"]
    sock = _hijack(api, f"/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    sock.sendall(b"x" * 100000)
    sock.shutdown(socket.SHUT_WR)
    out, _ = _demux(_read_all(sock))
    sock.close()
    assert out.strip() == b"100000"


def test_stats_one_shot_and_stream(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("run", "-d", "-m", "64m", "--name", name, capsa.image, "sleep", "300")
    doc = api.request("GET", f"/containers/{name}/stats?stream=false&one-shot=true").json()
    assert doc["name"] == f"/{name}" and doc["id"] == capsa.full_id(name)
    assert doc["memory_stats"]["limit"] == 64 * 1024 * 1024
    assert doc["pids_stats"]["current"] >= 1
    two = api.request("GET", f"/containers/{name}/stats?stream=false").json()
    assert two["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    out = api.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", name)
    assert out.stdout.startswith(f"{name} ") and "64MiB" in out.stdout


def test_resize_reaches_the_container_terminal(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run(
        "run", "-d", "-t", "--name", name, capsa.image,
        "sh", "-c", "while true; do stty size; sleep 0.1; done",
    )  # fmt: skip
    reply = api.request("POST", f"/containers/{name}/resize?h=33&w=77")
    assert reply.status == 200
    capsa.wait_for(lambda: "33 77" in capsa.run("logs", name).stdout, what="the new size")
    gone = api.request("POST", "/containers/nosuch-xyz/resize?h=1&w=1")
    assert gone.status == 404


@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI")
def test_docker_cli_run_pipes_and_half_closes(api: ApiService, capsa: CapsaCli) -> None:
    """``echo hi | docker run -i IMG cat`` prints hi and exits (the CLI half-closes)."""
    out = api.docker("run", "--rm", "-i", "--network", "none", capsa.image, "cat", input="hi\n")
    assert out.stdout == "hi\n"
    code = api.docker("run", "--rm", "--network", "none", capsa.image, "sh", "-c", "exit 3",
                      check=False)  # fmt: skip
    assert code.returncode == 3
    name = capsa.name()
    api.docker("run", "-d", "--name", name, "--network", "none", capsa.image, "sleep", "300")
    got = api.docker("exec", "-i", name, "sh", "-c", "cat; echo end", input="abc\n")
    assert got.stdout == "abc\nend\n"
    logs = api.docker("logs", name)
    assert logs.returncode == 0


@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI")
def test_docker_cli_run_it_through_a_pty(api: ApiService, capsa: CapsaCli) -> None:
    from tests.helpers.terminal import PtyProcess

    assert DOCKER is not None
    env = ["/usr/bin/env", f"DOCKER_HOST={api.url}", f"DOCKER_CONFIG={api.config_dir}"]
    proc = PtyProcess(
        [*env, DOCKER, "run", "-it", "--rm", "--network", "none", capsa.image, "sh"], 30, 90
    )
    try:
        proc.term.read_until("#", timeout=20)
        proc.term.write("stty size; echo mark-$((6*7))\n")
        proc.term.read_until("mark-42", timeout=10)
        assert "30 90" in proc.term.text
        proc.term.write("exit 5\n")
        assert proc.wait(20) == 5
    finally:
        proc.close()
    name = capsa.name()
    api.docker("run", "-d", "-t", "--name", name, "--network", "none", capsa.image, "sleep", "300")
    proc = PtyProcess([*env, DOCKER, "exec", "-it", name, "sh"], 25, 70)
    try:
        proc.term.read_until("#", timeout=20)
        proc.term.write("stty size; tty; exit 2\n")
        proc.term.read_until("/dev/pts/", timeout=20)
        assert "25 70" in proc.term.text
        assert proc.wait(20) == 2
    finally:
        proc.close()


@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI")
def test_docker_run_i_pipes_megabytes(api: ApiService, capsa: CapsaCli, tmp_path: Any) -> None:
    import os
    import subprocess

    data = tmp_path / "in.bin"
    data.write_bytes(os.urandom(20 * 1024 * 1024))
    env = {**os.environ, "DOCKER_HOST": api.url, "DOCKER_CONFIG": str(api.config_dir)}
    assert DOCKER is not None
    with data.open("rb") as src:
        proc = subprocess.run(
            [DOCKER, "run", "-i", "--rm", "--network", "none", capsa.image, "cat"],
            stdin=src, capture_output=True, env=env, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data.read_bytes()
