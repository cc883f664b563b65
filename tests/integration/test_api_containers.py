"""The containers endpoints: create (the HostConfig), list, inspect, the lifecycle verbs,
wait, remove, rename, update, prune, top, changes, export and archive, driven by raw
HTTP, docker-py and the docker CLI, checked against what really happened."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from tests.helpers import api as api_helpers
from tests.helpers import capsa_cli
from tests.helpers.api import ApiService
from tests.helpers.capsa_cli import CapsaCli

from capsa.errors import InvalidArgument

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa
api_module = api_helpers.api_module
api = api_helpers.api

NONE = {"NetworkMode": "none"}


def _create(api: ApiService, capsa: CapsaCli, name: str, body: dict[str, object]) -> str:
    doc = {"Image": capsa.image, **body}
    doc["HostConfig"] = {**NONE, **dict(doc.get("HostConfig") or {})}  # type: ignore[arg-type]
    reply = api.request("POST", f"/v1.50/containers/create?name={name}", doc)
    assert reply.status == 201, reply
    cid = reply.json()["Id"]
    assert reply.json()["Warnings"] == []
    capsa.ids.add(cid)
    return str(cid)


def _filters(doc: dict[str, list[str]]) -> str:
    return quote(json.dumps(doc))


def test_lifecycle_raw(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = _create(api, capsa, name, {"Cmd": ["sleep", "300"], "HostConfig": {"Init": True}})
    assert capsa.status(name) == "created"
    assert api.request("POST", f"/containers/{name}/start").status == 204
    assert capsa.status(name) == "running"
    assert api.request("POST", f"/containers/{name}/start").status == 304
    (item,) = api.request("GET", f"/containers/json?filters={_filters({'name': [name]})}").json()
    assert item["Id"] == cid and item["Names"] == [f"/{name}"]
    assert item["State"] == "running" and item["Status"].startswith("Up ")
    assert item["Command"] == "sleep 300" and item["Image"] == capsa.image
    assert (
        item["HostConfig"] == {"NetworkMode": "none"}
        and "none" in item["NetworkSettings"]["Networks"]
    )
    assert isinstance(item["Created"], int) and item["ImageID"].startswith("sha256:")
    doc = api.request("GET", f"/containers/{cid[:12]}/json").json()
    assert doc["Id"] == cid and doc["State"]["Running"] is True
    pid = doc["State"]["Pid"]
    assert Path(f"/proc/{pid}").exists()
    assert api.request("POST", f"/containers/{name}/stop?t=1").status == 204
    assert not Path(f"/proc/{pid}").exists() or capsa.status(name) == "exited"
    assert capsa.status(name) == "exited"
    assert api.request("POST", f"/containers/{name}/stop").status == 304
    listed = api.request("GET", "/containers/json").json()
    assert cid not in [c["Id"] for c in listed]  # not running: only with all=1
    listed = api.request("GET", "/containers/json?all=1&size=1").json()
    (item,) = [c for c in listed if c["Id"] == cid]
    assert item["Status"].startswith("Exited (") and isinstance(item["SizeRw"], int)
    assert api.request("POST", f"/containers/{name}/restart?t=1").status == 204
    assert capsa.status(name) == "running"
    # another container in this one's network namespace
    joined = capsa.name()
    _create(
        api,
        capsa,
        joined,
        {"Cmd": ["sleep", "300"], "HostConfig": {"NetworkMode": f"container:{name}", "Init": True}},
    )
    assert api.request("POST", f"/containers/{joined}/start").status == 204
    ours = capsa.inspect(name)["State"]["Pid"]
    theirs = capsa.inspect(joined)["State"]["Pid"]
    assert os.readlink(f"/proc/{ours}/ns/net") == os.readlink(f"/proc/{theirs}/ns/net")
    assert api.request("DELETE", f"/containers/{joined}?force=1").status == 204
    reply = api.request("DELETE", f"/containers/{name}")
    assert reply.status == 409 and "force" in reply.json()["message"]
    assert api.request("DELETE", f"/containers/{name}?force=1&v=1").status == 204
    reply = api.request("GET", f"/containers/{name}/json")
    assert reply.status == 404 and reply.json() == {"message": f"No such container: {name}"}
    assert name not in capsa.run("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_create_refusals(api: ApiService, capsa: CapsaCli) -> None:
    def post(body: object, query: str = "") -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = api.request("POST", f"/containers/create{query}", raw)
        return reply.status, reply.json()["message"]

    status, msg = post(b"{not json")
    assert status == 400 and "JSON" in msg
    base = {"Image": capsa.image, "HostConfig": dict(NONE)}
    for path, value, label in (
        (("HostConfig", "Memory"), "64m", "HostConfig.Memory"),
        (("Env",), "A=1", "Env"),
        (("HostConfig", "RestartPolicy"), "always", "HostConfig.RestartPolicy"),
        (("HostConfig", "Privileged"), "yes", "HostConfig.Privileged"),
        (("Labels",), {"a": 1}, "Labels.a"),
        (("HostConfig", "Mounts"), [{"Type": "bind", "Target": 5}], "Mounts[0].Target"),
    ):
        body = json.loads(json.dumps(base))
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        status, msg = post(body)
        assert status == 400 and label in msg, (label, msg)
    for host, words in (
        ({"CgroupParent": "/x"}, "CgroupParent"),
        ({"Links": ["a:b"]}, "links"),
        ({"LogConfig": {"Type": "syslog"}}, "syslog"),
        ({"DeviceRequests": [{"Count": -1}]}, "gpus"),
        ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}, "on-failure"),
        ({"Memory": 1024}, "6MB"),
        ({"Runtime": "no-such-runtime"}, "runtime"),
    ):
        status, msg = post({**base, "HostConfig": {**NONE, **host}})
        assert status == 400 and words in msg, (host, msg)
    status, msg = post(base, "?platform=linux/s390x")
    assert status == 400 and "platform" in msg
    status, msg = post({**base, "Image": "capsa-test/missing:latest"})
    assert status == 404 and "No such image" in msg
    name = capsa.name()
    _create(api, capsa, name, {})
    status, msg = post(base, f"?name={name}")
    assert status == 409 and name in msg
    for method, path in (
        ("POST", "/containers/nope-x/start"),
        ("POST", "/containers/nope-x/stop"),
        ("POST", "/containers/nope-x/kill"),
        ("POST", "/containers/nope-x/wait"),
        ("DELETE", "/containers/nope-x"),
        ("GET", "/containers/nope-x/top"),
        ("GET", "/containers/nope-x/changes"),
        ("GET", "/containers/nope-x/export"),
        ("GET", "/containers/nope-x/archive?path=/"),
    ):
        reply = api.request(method, path)
        assert reply.status == 404, (method, path, reply)
        assert reply.json() == {"message": "No such container: nope-x"}


def test_host_config_applies(api: ApiService, capsa: CapsaCli, tmp_path: Path) -> None:
    """The HostConfig ``capsa run`` supports, through the API: the limits really apply,
    the mounts are really there."""
    (tmp_path / "data.txt").write_text("from the host\n")
    name = capsa.name()
    body = {
        "Cmd": ["sleep", "300"],
        "Env": ["GREETING=hello"],
        "Labels": {"team": "api"},
        "WorkingDir": "/tmp",
        "Hostname": "apihost",
        "StopSignal": "SIGTERM",
        "StopTimeout": 2,
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000, "Retries": 2},
        "Volumes": {"/anon": {}},
        "HostConfig": {
            "Binds": [f"{tmp_path}:/host:ro"],
            "Tmpfs": {"/scratch": "size=1m"},
            "Mounts": [{"Type": "tmpfs", "Target": "/t2", "TmpfsOptions": {"SizeBytes": 2 << 20}}],
            "Memory": 64 << 20,
            "MemorySwap": 128 << 20,
            "NanoCpus": 500_000_000,
            "CpuShares": 512,
            "PidsLimit": 50,
            "Ulimits": [{"Name": "nofile", "Soft": 321, "Hard": 654}],
            "CapAdd": ["CAP_NET_ADMIN"],
            "CapDrop": ["MKNOD"],
            "Dns": ["192.0.2.53"],
            "ExtraHosts": ["api.example:192.0.2.7"],
            "ShmSize": 8 << 20,
            "Init": True,
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": True,
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull"}],
            "Sysctls": {"net.ipv4.ip_forward": "1"},
            "GroupAdd": ["4321"],
            "CpusetCpus": "0",
        },
    }
    body["HostConfig"]["Binds"].append(f"{tmp_path}/made-by-create:/made")  # type: ignore[index]
    cid = _create(api, capsa, name, body)
    doc = capsa.inspect(name)
    hc = doc["HostConfig"]
    assert hc["Memory"] == 64 << 20 and hc["NanoCpus"] == 500_000_000 and hc["PidsLimit"] == 50
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["ReadonlyRootfs"] is True and hc["Init"] is True
    assert doc["Config"]["Healthcheck"]["Interval"] == 2_000_000_000
    assert doc["Config"]["Labels"] == {"team": "api"}
    assert "/anon" in {m["Destination"] for m in doc["Mounts"] if m["Type"] == "volume"}
    assert (tmp_path / "made-by-create").is_dir()  # Docker makes a missing Binds source
    assert api.request("POST", f"/containers/{cid}/start").status == 204

    def sh(script: str) -> str:
        return capsa.run("exec", name, "sh", "-c", script).stdout.strip()

    assert capsa.cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert capsa.cgroup_value(cid, "pids", "pids.max") == "50"
    assert capsa.cgroup_value(cid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert capsa.cgroup_value(cid, "cpu", "cpu.shares") == "512"
    assert sh("cat /host/data.txt") == "from the host"
    assert sh("touch /host/x 2>&1; echo $?") != "0"  # :ro
    assert sh("touch /etc/x 2>&1; echo $?") != "0"  # ReadonlyRootfs
    mounts = sh("cat /proc/mounts")
    assert " /scratch tmpfs " in mounts and " /t2 tmpfs " in mounts and " /anon " in mounts
    assert sh("echo $GREETING; pwd; hostname") == "hello\n/tmp\napihost"
    assert sh("ulimit -n; ulimit -Hn") == "321\n654"
    assert sh("grep -c 192.0.2.53 /etc/resolv.conf") == "1"
    assert "api.example" in sh("cat /etc/hosts")
    assert sh("grep NoNewPrivs /proc/self/status").split()[-1] == "1"
    caps = int(sh("grep CapEff /proc/self/status").split()[-1], 16)
    assert caps & (1 << 12) and not caps & (1 << 27)  # NET_ADMIN in, MKNOD out
    assert sh("df -k /dev/shm | tail -1").split()[1] == str(8 << 10)
    assert sh("stat -c %t,%T /dev/xnull") == "1,3"
    assert sh("cat /proc/sys/net/ipv4/ip_forward") == "1"
    assert "4321" in sh("id -G").split()
    assert capsa.cgroup_value(cid, "cpuset", "cpuset.cpus") == "0"
    assert api.request("POST", f"/containers/{cid}/stop?t=1").status == 204


def test_ports_and_networks_in_the_spec(api: ApiService, capsa: CapsaCli) -> None:
    """PortBindings, ExposedPorts with PublishAllPorts, EndpointsConfig on the bridge."""
    name = capsa.name()
    body = {
        "ExposedPorts": {"7001/tcp": {}},
        "HostConfig": {
            "NetworkMode": "bridge",
            "PortBindings": {"7000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
            "PublishAllPorts": True,
        },
    }
    reply = api.request("POST", f"/containers/create?name={name}", {"Image": capsa.image, **body})
    assert reply.status == 201, reply
    capsa.ids.add(reply.json()["Id"])
    ports = capsa.inspect(name)["NetworkSettings"]["Ports"]
    assert set(ports) == {"7000/tcp", "7001/tcp"}
    assert ports["7000/tcp"][0]["HostIp"] == "127.0.0.1" and int(ports["7000/tcp"][0]["HostPort"])
    reply = api.request(
        "POST",
        "/v1.43/containers/create",
        {
            "Image": capsa.image,
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkingConfig": {"EndpointsConfig": {"bridge": {}, "other": {}}},
        },
    )
    assert reply.status == 400 and "endpoints" in reply.json()["message"]
    reply = api.request(
        "POST",
        "/containers/create",
        {"Image": capsa.image, "HostConfig": {"NetworkMode": "no-such-net-x"}},
    )
    assert reply.status == 404 and "no-such-net-x" in reply.json()["message"]


def test_wait_conditions(api: ApiService, capsa: CapsaCli) -> None:
    """``next-exit`` asked before the start (as ``docker run`` does) sees that run's
    exit; a wait blocks no other request; ``removed`` sees an AutoRemove container go."""
    name = capsa.name()
    _create(api, capsa, name, {"Cmd": ["sh", "-c", "sleep 1; exit 3"]})
    got: list[object] = []

    def wait(cond: str) -> None:
        got.append(api.request("POST", f"/containers/{name}/wait?condition={cond}").json())

    waiter = threading.Thread(target=wait, args=("next-exit",))
    waiter.start()
    time.sleep(0.3)
    assert api.request("GET", "/_ping").status == 200  # served meanwhile
    assert waiter.is_alive()
    assert api.request("POST", f"/containers/{name}/start").status == 204
    waiter.join(30)
    assert got == [{"StatusCode": 3, "Error": None}]
    # not-running on a stopped container answers at once
    reply = api.request("POST", f"/containers/{name}/wait")
    assert reply.json() == {"StatusCode": 3, "Error": None}
    assert api.request("POST", f"/containers/{name}/wait?condition=bogus").status == 400
    gone = capsa.name()
    _create(api, capsa, gone, {"Cmd": ["sh", "-c", "exit 4"], "HostConfig": {"AutoRemove": True}})
    got.clear()
    name = gone
    waiter = threading.Thread(target=wait, args=("removed",))
    waiter.start()
    time.sleep(0.3)
    assert api.request("POST", f"/containers/{gone}/start").status == 204
    waiter.join(30)
    assert got == [{"StatusCode": 4, "Error": None}]
    assert api.request("GET", f"/containers/{gone}/json").status == 404
    # an AutoRemove container that cannot start goes too (docker run --rm waits for it)
    doomed = capsa.name()
    _create(api, capsa, doomed, {"Cmd": ["nope-not-here"], "HostConfig": {"AutoRemove": True}})
    reply = api.request("POST", f"/containers/{doomed}/start")
    assert reply.status >= 400 and "nope-not-here" in reply.json()["message"]
    assert api.request("GET", f"/containers/{doomed}/json").status == 404


def test_kill_pause_rename_update_top(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = _create(
        api,
        capsa,
        name,
        {"Cmd": ["sleep", "300"], "HostConfig": {"Memory": 64 << 20, "Init": True}},
    )
    reply = api.request("POST", f"/containers/{name}/kill")
    assert reply.status == 409 and "not running" in reply.json()["message"]
    api.request("POST", f"/containers/{name}/start")
    top = api.request("GET", f"/containers/{name}/top").json()
    assert "PID" in top["Titles"] and any("sleep 300" in " ".join(p) for p in top["Processes"])
    top = api.request("GET", f"/containers/{name}/top?ps_args=-o%20pid,comm").json()
    assert top["Titles"] == ["PID", "COMMAND"]
    assert api.request("POST", f"/containers/{name}/pause").status == 204
    assert capsa.status(name) == "paused"
    assert capsa.cgroup_value(cid, "freezer", "freezer.state") == "FROZEN"
    assert api.request("POST", f"/containers/{name}/pause").status == 409
    assert api.request("POST", f"/containers/{name}/unpause").status == 204
    assert capsa.status(name) == "running"
    reply = api.request(
        "POST",
        f"/containers/{name}/update",
        {"Memory": 96 << 20, "MemorySwap": 0, "CpuShares": 0, "PidsLimit": 40},
    )
    assert reply.status == 200 and reply.json() == {"Warnings": []}
    assert capsa.cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(96 << 20)
    assert capsa.cgroup_value(cid, "pids", "pids.max") == "40"
    reply = api.request(
        "POST", f"/containers/{name}/update", {"RestartPolicy": {"Name": "unless-stopped"}}
    )
    assert reply.status == 200
    assert capsa.fmt(name, "{{.HostConfig.RestartPolicy.Name}}") == "unless-stopped"
    assert capsa.cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(96 << 20)
    reply = api.request("POST", f"/containers/{name}/update", {"Memory": "lots"})
    assert reply.status == 400 and "Memory" in reply.json()["message"]
    reply = api.request("POST", f"/containers/{name}/update", {"KernelMemory": 1 << 20})
    assert reply.status == 400 and "KernelMemory" in reply.json()["message"]
    new = capsa.name()
    assert api.request("POST", f"/containers/{name}/rename?name={new}").status == 204
    assert capsa.fmt(cid, "{{.Name}}") == f"/{new}"
    other = capsa.name()
    _create(api, capsa, other, {})
    assert api.request("POST", f"/containers/{other}/rename?name={new}").status == 409
    assert api.request("POST", f"/containers/{new}/kill?signal=TERM").status == 204
    capsa.wait_status(new, "exited")
    assert capsa.fmt(new, "{{.State.ExitCode}}") == "143"
    assert api.request("POST", f"/containers/{new}/kill?signal=NOPE").status == 400


def test_files_changes_export_archive(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    _create(
        api, capsa, name, {"Cmd": ["sh", "-c", "echo made > /made.txt; rm /bin/true; sleep 300"]}
    )
    api.request("POST", f"/containers/{name}/start")
    capsa.wait_for(lambda: "made.txt" in capsa.run("exec", name, "ls", "/").stdout)
    kinds = {c["Path"]: c["Kind"] for c in api.request("GET", f"/containers/{name}/changes").json()}
    assert kinds["/made.txt"] == 1 and kinds["/bin/true"] == 2 and kinds["/bin"] == 0
    # PUT: a tar into a directory of the container
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"payload\n" * 10000
        info = tarfile.TarInfo("in/put.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    reply = api.request("PUT", f"/containers/{name}/archive?path=/tmp", buf.getvalue())
    assert reply.status == 200, reply
    assert capsa.run("exec", name, "wc", "-c", "/tmp/in/put.txt").stdout.split()[0] == "80000"
    reply = api.request("PUT", f"/containers/{name}/archive?path=/nowhere", buf.getvalue())
    assert reply.status == 404
    # HEAD and GET: the stat header, then the tar
    head = api.request("HEAD", f"/containers/{name}/archive?path=/made.txt")
    assert head.status == 200 and head.body == b""
    stat = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
    assert stat["name"] == "made.txt" and stat["size"] == 5 and stat["mode"] == 0o644
    assert stat["mtime"].endswith("Z") and stat["linkTarget"] == ""
    reply = api.request("GET", f"/containers/{name}/archive?path=/tmp")
    dstat = json.loads(base64.b64decode(reply.headers["X-Docker-Container-Path-Stat"]))
    assert dstat["mode"] & (1 << 31)  # Go's os.ModeDir
    with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
        member = tar.extractfile("tmp/in/put.txt")
        assert member is not None and member.read() == data
    missing = api.request("GET", f"/containers/{name}/archive?path=/no/such")
    assert missing.status == 404 and "/no/such" in missing.json()["message"]
    # export: the whole filesystem
    reply = api.request("GET", f"/containers/{name}/export")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
        names = set(tar.getnames())
    assert "made.txt" in names and "bin/busybox" in names and "bin/true" not in names


def test_list_filters(api: ApiService, capsa: CapsaCli) -> None:
    first, second = capsa.name(), capsa.name()
    a = _create(
        api, capsa, first, {"Labels": {"role": "db", "tier": "x"}, "Cmd": ["sh", "-c", "exit 2"]}
    )
    b = _create(api, capsa, second, {"Labels": {"role": "web"}, "Cmd": ["sleep", "300"]})
    api.request("POST", f"/containers/{first}/start")
    api.request("POST", f"/containers/{first}/wait")
    api.request("POST", f"/containers/{second}/start")

    def ids(filters: dict[str, list[str]], all_: bool = True) -> set[str]:
        q = f"/containers/json?all={int(all_)}&filters={_filters(filters)}"
        reply = api.request("GET", q)
        assert reply.status == 200, reply
        return {c["Id"] for c in reply.json()} & {a, b}

    assert ids({"label": ["role=db"]}) == {a}
    assert ids({"label": ["role"]}) == {a, b}
    assert ids({"status": ["exited"]}) == {a}
    assert ids({"status": ["running"]}, all_=False) == {b}
    assert ids({"exited": ["2"]}) == {a}
    assert ids({"id": [b[:10]]}) == {b}
    assert ids({"name": [second]}) == {b}
    assert ids({"name": [f"^/{second}$"]}) == {b}  # dockerd's names are regexps
    assert ids({"ancestor": [capsa.image]}) == {a, b}
    assert ids({"since": [first]}) == {b}
    assert ids({"before": [second]}) == {a}
    assert ids({"network": ["none"]}) == {a, b}
    assert ids({"is-task": ["true"]}) == set()
    assert ids({"health": ["none"]}) == {a, b}
    assert ids({"publish": ["80"]}) == set()
    limited = api.request("GET", "/containers/json?limit=1").json()
    assert [c["Id"] for c in limited] == [b]
    for bad in ({"bogus": ["1"]}, {"status": ["sleepy"]}):
        reply = api.request("GET", f"/containers/json?filters={_filters(bad)}")
        assert reply.status == 400 and "invalid filter" in reply.json()["message"]
    reply = api.request("POST", f"/containers/prune?filters={_filters({'label': ['role=db']})}")
    assert reply.json() == {
        "ContainersDeleted": [a],
        "SpaceReclaimed": reply.json()["SpaceReclaimed"],
    }
    assert api.request("GET", f"/containers/{a}/json").status == 404
    assert api.request("GET", f"/containers/{b}/json").status == 200


def test_docker_cli(api: ApiService, capsa: CapsaCli, tmp_path: Path) -> None:
    name = capsa.name()
    out = api.docker(
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        "--memory",
        "48m",
        "-l",
        "via=cli",
        "-e",
        "X=1",
        capsa.image,
        "sh",
        "-c",
        "echo hi > /hello.txt; exec sleep 300",
    ).stdout.strip()
    capsa.ids.add(out)
    assert capsa.status(name) == "running"
    assert capsa.cgroup_value(out, "memory", "memory.limit_in_bytes") == str(48 << 20)
    ps = api.docker("ps", "-a", "--format", "{{.Names}} {{.State}} {{.Labels}}").stdout
    assert f"{name} running via=cli" in ps.splitlines()
    assert api.docker("inspect", "-f", "{{.Config.Env}}", name).stdout.count("X=1") == 1
    capsa.wait_for(lambda: "hello.txt" in capsa.run("exec", name, "ls", "/").stdout)
    # cp out and in
    api.docker("cp", f"{name}:/hello.txt", str(tmp_path / "got.txt"))
    assert (tmp_path / "got.txt").read_text() == "hi\n"
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f.txt").write_text("into the container\n")
    api.docker("cp", str(tmp_path / "dir"), f"{name}:/tmp/")
    assert capsa.run("exec", name, "cat", "/tmp/dir/f.txt").stdout == "into the container\n"
    diff = api.docker("diff", name).stdout.splitlines()
    assert "A /hello.txt" in diff and "A /tmp/dir/f.txt" in diff
    assert "sleep 300" in api.docker("top", name).stdout
    api.docker("pause", name)
    assert capsa.status(name) == "paused"
    api.docker("unpause", name)
    new = capsa.name()
    api.docker("rename", name, new)
    assert api.docker("inspect", "-f", "{{.Name}}", out).stdout.strip() == f"/{new}"
    api.docker("stop", "-t", "1", new)
    assert capsa.status(new) == "exited"
    proc = api.docker("rm", "nope-missing-x", check=False)
    assert proc.returncode != 0 and "No such container: nope-missing-x" in proc.stderr
    pruned = api.docker("container", "prune", "-f").stdout
    assert out in pruned
    assert new not in capsa.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
    # docker run (not detached): wait before start, the exit code comes back
    proc = api.docker(
        "run", "--rm", "--network", "none", capsa.image, "sh", "-c", "exit 7", check=False
    )
    assert proc.returncode == 7, proc.stderr


def test_docker_py(api: ApiService, capsa: CapsaCli) -> None:
    client = api.client()
    name = capsa.name()
    c = client.containers.run(
        capsa.image,
        ["sleep", "300"],
        detach=True,
        name=name,
        network_mode="none",
        labels={"via": "py"},
        mem_limit="40m",
        init=True,
    )
    capsa.ids.add(c.id)
    assert capsa.status(name) == "running"
    assert c.id in [x.id for x in client.containers.list(filters={"label": "via=py"})]
    got = client.containers.get(name)
    assert got.status == "running" and got.labels == {"via": "py"}
    assert capsa.cgroup_value(c.id, "memory", "memory.limit_in_bytes") == str(40 << 20)
    c.update(mem_limit="50m")
    assert capsa.cgroup_value(c.id, "memory", "memory.limit_in_bytes") == str(50 << 20)
    assert any("sleep" in " ".join(p) for p in c.top()["Processes"])
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("py.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"py\n"))
    assert c.put_archive("/tmp", buf.getvalue()) is True
    stream, stat = c.get_archive("/tmp/py.txt")
    assert stat["name"] == "py.txt" and stat["size"] == 3
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("py.txt")
        assert member is not None and member.read() == b"py\n"
    assert {"Path": "/tmp/py.txt", "Kind": 1} in c.diff()
    assert sum(len(chunk) for chunk in c.export()) > 1 << 20
    new = capsa.name()
    c.rename(new)
    c.reload()
    assert c.name == new
    c.stop(timeout=1)
    assert c.wait() == {"StatusCode": 143, "Error": None} or capsa.status(new) == "exited"
    c.start()
    c.kill()
    assert c.wait()["StatusCode"] == 137
    c.remove()
    assert new not in capsa.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
    created = client.containers.create(capsa.image, "true", network_mode="none", labels={"p": "1"})
    capsa.ids.add(created.id)
    result = client.containers.prune(filters={"label": "p=1"})
    assert result["ContainersDeleted"] == [created.id]


def test_published_port_answers(api: ApiService, capsa: CapsaCli) -> None:
    """A PortBindings port on the default bridge really reaches the container."""
    import urllib.request

    name = capsa.name()
    body = {
        "Image": capsa.image,
        "Cmd": ["httpd", "-f", "-p", "80", "-h", "/etc"],
        "HostConfig": {
            "NetworkMode": "bridge",
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
        },
    }
    reply = api.request("POST", f"/containers/create?name={name}", body)
    assert reply.status == 201, reply
    cid = reply.json()["Id"]
    capsa.ids.add(cid)
    assert api.request("POST", f"/containers/{cid}/start").status == 204
    (item,) = api.request("GET", f"/containers/json?filters={_filters({'id': [cid]})}").json()
    (port,) = item["Ports"]
    assert port["PrivatePort"] == 80 and port["Type"] == "tcp" and port["IP"] == "127.0.0.1"
    assert "bridge" in item["NetworkSettings"]["Networks"]
    url = f"http://127.0.0.1:{port['PublicPort']}/hostname"
    got = ""
    for _ in range(50):
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                got = resp.read().decode().strip()
            break
        except OSError:
            time.sleep(0.1)
    assert got == cid[:12]
    published = {"publish": [str(port["PublicPort"])]}
    assert [
        c["Id"]
        for c in api.request("GET", f"/containers/json?filters={_filters(published)}").json()
    ] == [cid]
    assert [
        c["Id"]
        for c in api.request(
            "GET", f"/containers/json?filters={_filters({'expose': ['80/tcp']})}"
        ).json()
    ] == [cid]
    assert api.request("DELETE", f"/containers/{cid}?force=1").status == 204


def test_archive_details(api: ApiService, capsa: CapsaCli, tmp_path: Path) -> None:
    """A stopped container's files too; a symlink's target; ids kept with copyUIDGID;
    docker cp of a directory out."""
    name = capsa.name()
    _create(api, capsa, name, {"Cmd": ["true"]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("owned.txt")
        info.size, info.uid, info.gid = 2, 1234, 5678
        tar.addfile(info, io.BytesIO(b"o\n"))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/hostname"
        tar.addfile(link)
    reply = api.request("PUT", f"/containers/{name}/archive?path=/tmp&copyUIDGID=1", buf.getvalue())
    assert reply.status == 200, reply
    head = api.request("HEAD", f"/containers/{name}/archive?path=/tmp/link")
    stat = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
    assert stat["linkTarget"] == "/etc/hostname" and stat["mode"] & (1 << 27)  # ModeSymlink
    reply = api.request("GET", f"/containers/{name}/archive?path=/tmp/owned.txt")
    with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
        member = tar.getmember("owned.txt")
        assert (member.uid, member.gid) == (1234, 5678)
    assert api.request("HEAD", f"/containers/{name}/archive?path=/nope").status == 404
    reply = api.request("GET", f"/containers/{name}/export")
    with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
        assert "tmp/owned.txt" in tar.getnames()
    api.docker("cp", f"{name}:/tmp", str(tmp_path / "out"))
    assert (tmp_path / "out" / "owned.txt").read_text() == "o\n"


def test_read_create_maps_the_docker_cli_body() -> None:
    """What ``docker create`` sends for a long command line (captured from docker 28),
    read into the engine's spec field by field."""
    from capsa.api.create_body import read_create

    body = {
        "Hostname": "hn",
        "Domainname": "dn",
        "User": "1",
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "ExposedPorts": {"53/udp": {}, "80/tcp": {}, "99/tcp": {}},
        "Tty": True,
        "OpenStdin": True,
        "StdinOnce": True,
        "Env": ["A=1"],
        "Cmd": ["echo", "hi"],
        "Healthcheck": {
            "Test": ["CMD-SHELL", "true"],
            "Interval": 1000000000,
            "Timeout": 3000000000,
            "StartPeriod": 1000000000,
            "Retries": 2,
        },
        "Image": "busybox",
        "Volumes": {"/c": {}},
        "WorkingDir": "/w",
        "Entrypoint": ["sh"],
        "OnBuild": None,
        "Labels": {"a": "b"},
        "StopSignal": "SIGINT",
        "StopTimeout": 5,
        "HostConfig": {
            "Binds": ["vol:/b", "/tmp:/a:ro"],
            "ContainerIDFile": "",
            "LogConfig": {"Type": "", "Config": {"max-size": "1m"}},
            "NetworkMode": "mynet",
            "PortBindings": {
                "53/udp": [{"HostIp": "", "HostPort": ""}],
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
            },
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "AutoRemove": False,
            "VolumeDriver": "",
            "VolumesFrom": None,
            "ConsoleSize": [0, 0],
            "CapAdd": ["CAP_NET_ADMIN"],
            "CapDrop": ["CAP_MKNOD"],
            "CgroupnsMode": "host",
            "Dns": ["1.1.1.1"],
            "DnsOptions": ["ndots:2"],
            "DnsSearch": ["ex.com"],
            "ExtraHosts": ["h:1.2.3.4"],
            "GroupAdd": ["10"],
            "IpcMode": "host",
            "Cgroup": "",
            "Links": None,
            "OomScoreAdj": 10,
            "PidMode": "host",
            "Privileged": True,
            "PublishAllPorts": True,
            "ReadonlyRootfs": True,
            "SecurityOpt": ["no-new-privileges", "seccomp=unconfined"],
            "Tmpfs": {"/run": "size=64m,mode=1777"},
            "UTSMode": "host",
            "UsernsMode": "",
            "ShmSize": 1073741824,
            "Sysctls": {"net.ipv4.ip_forward": "1"},
            "Runtime": "",
            "Isolation": "",
            "CpuShares": 512,
            "Memory": 67108864,
            "NanoCpus": 1500000000,
            "CgroupParent": "",
            "BlkioWeight": 300,
            "BlkioWeightDevice": [],
            "BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1048576}],
            "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [],
            "BlkioDeviceWriteIOps": [],
            "CpuPeriod": 0,
            "CpuQuota": 0,
            "CpuRealtimePeriod": 0,
            "CpuRealtimeRuntime": 0,
            "CpusetCpus": "0",
            "CpusetMems": "",
            "Devices": [
                {
                    "PathOnHost": "/dev/null",
                    "PathInContainer": "/dev/xnull",
                    "CgroupPermissions": "rw",
                }
            ],
            "DeviceCgroupRules": None,
            "DeviceRequests": None,
            "MemoryReservation": 33554432,
            "MemorySwap": 134217728,
            "MemorySwappiness": -1,
            "OomKillDisable": True,
            "PidsLimit": 100,
            "Ulimits": [{"Name": "nofile", "Hard": 200, "Soft": 100}],
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "Mounts": [
                {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576}},
                {"Type": "bind", "Source": "/tmp", "Target": "/m", "ReadOnly": True},
                {
                    "Type": "volume",
                    "Source": "v2",
                    "Target": "/v2",
                    "VolumeOptions": {"NoCopy": True, "DriverConfig": {}},
                },
            ],
            "MaskedPaths": None,
            "ReadonlyPaths": None,
            "Init": True,
        },
        "NetworkingConfig": {
            "EndpointsConfig": {
                "mynet": {
                    "IPAMConfig": {"IPv4Address": "10.0.0.5"},
                    "Links": None,
                    "Aliases": ["al"],
                    "MacAddress": "02:42:ac:11:00:02",
                    "DriverOpts": None,
                    "GwPriority": 0,
                    "NetworkID": "",
                    "EndpointID": "",
                    "Gateway": "",
                    "IPAddress": "",
                    "IPPrefixLen": 0,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "DNSNames": None,
                },
                "second": {"Aliases": ["two"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}},
            }
        },
    }
    req = read_create(body, "/x", (1, 50))
    spec = req.spec
    assert (spec.name, spec.image, spec.command, spec.entrypoint) == (
        "x",
        "busybox",
        ["echo", "hi"],
        ["sh"],
    )
    assert (spec.hostname, spec.domainname, spec.user, spec.workdir) == ("hn", "dn", "1", "/w")
    assert spec.tty and spec.stdin_open and spec.env == ["A=1"] and spec.labels == {"a": "b"}
    assert spec.healthcheck is not None and spec.healthcheck.test == ["CMD-SHELL", "true"]
    assert (spec.healthcheck.interval, spec.healthcheck.timeout, spec.healthcheck.retries) == (
        1.0,
        3.0,
        2,
    )
    assert (spec.stop_signal, spec.stop_timeout) == ("SIGINT", 5)
    mounts = {m.target: m for m in spec.mounts}
    assert set(mounts) == {"/b", "/a", "/t", "/m", "/v2", "/run", "/c"}
    assert mounts["/b"].type == "volume" and mounts["/b"].source == "vol"
    assert mounts["/a"].type == "bind" and mounts["/a"].readonly and req.bind_sources == ["/tmp"]
    assert mounts["/t"].tmpfs_size == 1 << 20 and mounts["/run"].tmpfs_mode == 0o1777
    assert mounts["/m"].readonly and mounts["/v2"].no_copy and mounts["/c"].source == ""
    assert spec.restart == "on-failure:3" and spec.log_opts == {"max-size": "1m"}
    assert spec.network_mode == "mynet" and spec.aliases == ["al"] and spec.ip == "10.0.0.5"
    assert spec.mac_address == "02:42:ac:11:00:02"
    assert [(n.name, n.aliases, n.ip) for n in spec.networks] == [("second", ["two"], "10.1.0.9")]
    ports = {(p.container_port, p.protocol): p.host_port for p in spec.ports}
    assert ports == {(53, "udp"): 0, (80, "tcp"): 8080, (99, "tcp"): 0} and spec.publish_all
    assert spec.cap_add == ["CAP_NET_ADMIN"] and spec.cap_drop == ["CAP_MKNOD"] and spec.privileged
    assert spec.no_new_privileges and spec.seccomp == "unconfined" and spec.read_only
    assert (spec.dns, spec.dns_search, spec.dns_options) == (["1.1.1.1"], ["ex.com"], ["ndots:2"])
    assert spec.extra_hosts == ["h:1.2.3.4"] and spec.group_add == ["10"] and spec.init
    assert (spec.ipc_mode, spec.pid_mode, spec.uts_mode, spec.cgroupns_mode) == ("host",) * 4
    assert spec.shm_size == 1 << 30 and spec.sysctls == {"net.ipv4.ip_forward": "1"}
    assert spec.oom_score_adj == 10 and spec.ulimits == ["nofile=100:200"]
    assert [(d.host, d.container, d.permissions) for d in spec.devices] == [
        ("/dev/null", "/dev/xnull", "rw")
    ]
    r = spec.resources
    assert (r.memory, r.memory_swap, r.memory_reservation) == (64 << 20, 128 << 20, 32 << 20)
    assert (r.nano_cpus, r.cpu_shares, r.cpuset_cpus, r.pids_limit) == (
        1_500_000_000,
        512,
        "0",
        100,
    )
    assert r.blkio_weight == 300 and r.oom_kill_disable
    assert [(t.path, t.rate) for t in r.device_read_bps] == [("/dev/null", 1 << 20)]
    # before API 1.44 a container joins one network at create
    try:
        read_create(body, "x", (1, 43))
    except InvalidArgument as e:
        assert "endpoints" in str(e)
    else:
        raise AssertionError("two endpoints accepted on API 1.43")
