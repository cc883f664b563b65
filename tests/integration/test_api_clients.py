"""Real clients end to end against ``capsa system service``: the docker CLI, docker-py
and testcontainers, each doing what its users do (a published port reached from the
host, logs followed to the end, events decoded, a container waited for by log line
and port)."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request

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

needs_docker = pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI")
# a web server that says when it listens (busybox httpd forks nothing with -f)
SERVE = "echo hello from capsa >/tmp/index.html; echo listening; exec httpd -f -p 8080 -h /tmp"


def _get(url: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return str(reply.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@needs_docker
def test_docker_cli_publish_logs_events(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    since = str(time.time())
    api.docker("run", "-d", "--name", name, "-p", "127.0.0.1::8080", capsa.image,
               "sh", "-c", SERVE)  # fmt: skip
    port = api.docker("port", name, "8080/tcp").stdout.strip().rpartition(":")[2]
    assert port.isdigit()
    assert _get(f"http://127.0.0.1:{port}/index.html") == "hello from capsa\n"
    assert api.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    listed = api.docker("ps", "--filter", f"name={name}", "--format", "{{.Names}} {{.Ports}}")
    assert listed.stdout.startswith(f"{name} 127.0.0.1:{port}->8080/tcp")
    api.docker("stop", "-t", "1", name)
    followed = api.docker("logs", "-f", name)  # ends: the container has stopped
    assert followed.stdout == "listening\n"
    api.docker("rm", name)
    events = api.docker("events", "--since", since, "--until", str(time.time() + 0.5),
                        "--filter", f"container={name}", "--format", "{{.Action}}")  # fmt: skip
    actions = events.stdout.split()
    for wanted in ("create", "start", "kill", "die", "stop", "destroy"):
        assert wanted in actions, (wanted, actions)
    assert api.docker("ps", "-a", "-q", "--filter", f"name={name}").stdout == ""


def test_docker_py_run_wait_and_events(api: ApiService, capsa: CapsaCli) -> None:
    client = api.client()
    try:
        out = client.containers.run(capsa.image, ["sh", "-c", "echo out; echo err >&2"],
                                    remove=True, network_mode="none")  # fmt: skip
        assert out == b"out\n"  # stdout only, as docker-py's default
        both = client.containers.run(capsa.image, ["sh", "-c", "echo out; echo err >&2"],
                                     remove=True, stderr=True, network_mode="none")  # fmt: skip
        assert b"out\n" in both and b"err\n" in both
        docker = pytest.importorskip("docker")
        with pytest.raises(docker.errors.ContainerError) as failed:
            client.containers.run(capsa.image, ["sh", "-c", "echo bad >&2; exit 3"],
                                  remove=True, network_mode="none")  # fmt: skip
        assert failed.value.exit_status == 3
        name = capsa.name()
        since = time.time()
        container = client.containers.run(capsa.image, ["sh", "-c", "sleep 0.3; exit 9"],
                                          name=name, detach=True, network_mode="none")  # fmt: skip
        assert container.wait(timeout=30) == {"StatusCode": 9, "Error": None}
        container.reload()
        assert container.status == "exited" and container.attrs["State"]["ExitCode"] == 9
        container.remove()
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(name)
        stream = client.events(since=since, until=time.time() + 0.5, decode=True,
                               filters={"container": name})  # fmt: skip
        actions = [e["Action"] for e in stream]
        assert actions[0] == "create" and actions[-1] == "destroy" and "die" in actions
        assert all(isinstance(e, str) for e in actions)
    finally:
        client.close()


def test_testcontainers_waits_for_a_log_line_and_a_port(
    api: ApiService, capsa: CapsaCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("testcontainers")
    monkeypatch.setenv("DOCKER_HOST", api.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")  # its reaper image: no registry
    monkeypatch.setenv("DOCKER_CONFIG", str(api.config_dir))
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    name = capsa.name()
    container = (
        DockerContainer(capsa.image)
        .with_command(["sh", "-c", SERVE])
        .with_exposed_ports(8080)
        .with_name(name)
        .waiting_for(LogMessageWaitStrategy("listening").with_startup_timeout(30))
    )
    with container:  # returns once the line is in its logs
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(8080))
        assert _get(f"http://{host}:{port}/index.html") == "hello from capsa\n"
        with socket.create_connection((host, port), timeout=10):
            pass
    # leaving the block stops and removes it
    assert capsa.run("ps", "-a", "-q", "--filter", f"name={name}").stdout == ""


@needs_docker
def test_docker_cli_cp_inspect_and_images(
    api: ApiService, capsa: CapsaCli, tmp_path: object
) -> None:
    from pathlib import Path

    work = Path(str(tmp_path))
    name = capsa.name()
    api.docker("run", "-d", "--name", name, "--network", "none", capsa.image, "sleep", "300")
    (work / "in.txt").write_text("copied in\n")
    api.docker("cp", str(work / "in.txt"), f"{name}:/tmp/in.txt")
    assert capsa.run("exec", name, "cat", "/tmp/in.txt").stdout == "copied in\n"
    capsa.run("exec", name, "sh", "-c", "mkdir -p /out/d && echo made >/out/d/f")
    api.docker("cp", f"{name}:/out", str(work / "out"))
    assert (work / "out" / "d" / "f").read_text() == "made\n"
    doc = json.loads(api.docker("inspect", name).stdout)[0]
    assert doc["Name"] == f"/{name}" and doc["State"]["Running"] is True
    assert doc["Config"]["Cmd"] == ["sleep", "300"]
    repo = capsa.image.rpartition(":")[0]
    assert repo in api.docker("images", "--format", "{{.Repository}}").stdout.split()
    api.docker("rm", "-f", name)
    assert os.path.exists(work / "in.txt")
