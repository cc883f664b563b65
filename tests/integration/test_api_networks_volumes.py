"""The API's networks and volumes endpoints, driven by raw HTTP, docker-py and the docker
CLI: what they create is real (a container on a created network gets an address in its
subnet, a volume's data lands in its mountpoint) and goes away again (no bridge, no
nftables table left)."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tests.helpers import api as api_helpers
from tests.helpers import capsa_cli
from tests.helpers.api import ApiService
from tests.helpers.capsa_cli import CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa
api_module = api_helpers.api_module
api = api_helpers.api


# -- helpers ----------------------------------------------------------------------------


def _routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    nets = []
    for line in out.splitlines():
        first = line.split()[0] if line.split() else ""
        if "/" in first:
            nets.append(ipaddress.IPv4Network(first, strict=False))
    return nets


_USED: set[str] = set()


def subnet() -> ipaddress.IPv4Network:
    """A free /24 in 10.213.0.0/16 (the range this module may use)."""
    busy = _routes()
    for _ in range(300):
        net = ipaddress.IPv4Network(f"10.213.{random.randint(0, 255)}.0/24")
        if str(net) not in _USED and not any(net.overlaps(b) for b in busy):
            _USED.add(str(net))
            return net
    raise AssertionError("no free /24 in 10.213.0.0/16")


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _table(capsa: CapsaCli) -> bool:
    """Whether the root's own nftables table exists."""
    from capsa.engine.network.service import root_firewall_table

    table = root_firewall_table(str(capsa.root))
    proc = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True)
    return proc.returncode == 0


def _bridge(network_id: str) -> str:
    return "capsa-" + network_id[:9]


def _filters(doc: dict[str, list[str]]) -> str:
    return quote(json.dumps(doc))


def _addresses(capsa: CapsaCli, name: str) -> list[str]:
    out = capsa.run("exec", name, "ip", "-o", "-4", "addr", "show").stdout
    return [line.split()[3] for line in out.splitlines()]


@pytest.fixture
def networks(api: ApiService, capsa: CapsaCli) -> Iterator[list[str]]:
    """Names of networks a test made; removed after it, and checked gone with their
    bridges and, when none is left, the root's nftables table."""
    made: list[str] = []
    yield made
    capsa.cleanup()
    listed = {n["Name"]: n["Id"] for n in api.request("GET", "/networks").json()}
    bridges = {_bridge(listed[name]) for name in made if name in listed}
    for name in made:
        api.request("DELETE", f"/networks/{name}")
    left = set(listed) & set(made) & {n["Name"] for n in api.request("GET", "/networks").json()}
    assert not left, f"networks left: {left}"
    assert not bridges & _links(), f"bridges left: {bridges & _links()}"
    if set(listed) <= {"bridge", *made}:
        assert not _table(capsa), "the root's nftables table outlived its networks"


# -- networks -------------------------------------------------------------------------


def test_network_create_connect_disconnect_remove_raw(
    api: ApiService, capsa: CapsaCli, networks: list[str]
) -> None:
    first, second = capsa.name(), capsa.name()
    networks += [first, second]
    net1, net2 = subnet(), subnet()
    body = {
        "Name": first,
        "CheckDuplicate": True,
        "Driver": "bridge",
        "IPAM": {"Config": [{"Subnet": str(net1), "Gateway": str(net1[254])}]},
        "Labels": {"team": "api", "tier": "test"},
        "Options": {"com.docker.network.driver.mtu": "1400"},
    }
    reply = api.request("POST", "/v1.44/networks/create", body)
    assert reply.status == 201, reply
    created = reply.json()
    assert set(created) == {"Id", "Warning"} and len(created["Id"]) == 64
    again = api.request("POST", "/networks/create", body)
    assert again.status == 409 and first in again.json()["message"]
    ip_range = ipaddress.IPv4Network(f"{net2[128]}/25")
    reply = api.request(
        "POST",
        "/networks/create",
        {"Name": second, "IPAM": {"Config": [{"Subnet": str(net2), "IPRange": str(ip_range)}]}},
    )
    assert reply.status == 201, reply

    doc = api.request("GET", f"/networks/{first}").json()
    assert doc["Id"] == created["Id"] and doc["Name"] == first
    assert doc["Driver"] == "bridge" and doc["Scope"] == "local"
    assert doc["IPAM"]["Config"] == [{"Subnet": str(net1), "Gateway": str(net1[254])}]
    assert doc["Labels"] == {"team": "api", "tier": "test"}
    assert doc["Options"] == {"com.docker.network.driver.mtu": "1400"}
    assert doc["Containers"] == {}
    assert api.request("GET", f"/networks/{created['Id'][:12]}").json()["Name"] == first
    assert api.request("GET", f"/networks/{first}?scope=swarm").status == 404
    missing = api.request("GET", f"/networks/{capsa.name()}")
    assert missing.status == 404 and set(missing.json()) == {"message"}

    listed = api.request("GET", "/networks?filters=" + _filters({"label": ["team=api"]})).json()
    assert [n["Name"] for n in listed] == [first]
    by_name = api.request("GET", "/networks?filters=" + _filters({"name": [second]})).json()
    assert [n["Name"] for n in by_name] == [second]
    by_id = api.request("GET", "/networks?filters=" + _filters({"id": [created["Id"][:10]]}))
    assert [n["Name"] for n in by_id.json()] == [first]
    custom = api.request("GET", "/networks?filters=" + _filters({"type": ["custom"]})).json()
    assert {first, second} <= {n["Name"] for n in custom}
    assert "bridge" not in {n["Name"] for n in custom}
    bad = api.request("GET", "/networks?filters=" + _filters({"colour": ["red"]}))
    assert bad.status == 400

    # a container on the first network joins the second with the address it asks for
    name = capsa.name()
    capsa.run("run", "-d", "--network", first, "--name", name, capsa.image, "sleep", "300")
    (addr1,) = [a for a in _addresses(capsa, name) if not a.startswith("127.")]
    assert ipaddress.IPv4Interface(addr1).ip in net1
    wanted = str(net2[200])
    reply = api.request(
        "POST",
        f"/networks/{second}/connect",
        {
            "Container": name,
            "EndpointConfig": {"Aliases": ["late"], "IPAMConfig": {"IPv4Address": wanted}},
        },
    )
    assert reply.status == 200, reply
    assert f"{wanted}/24" in _addresses(capsa, name)
    doc = api.request("GET", f"/networks/{second}").json()
    (entry,) = doc["Containers"].values()
    assert entry["Name"] == name and entry["IPv4Address"] == f"{wanted}/24"
    assert _bridge(created["Id"]) in _links()
    inspect = capsa.inspect(name)["NetworkSettings"]["Networks"]
    assert inspect[second]["IPAddress"] == wanted and "late" in inspect[second]["Aliases"]

    in_use = api.request("DELETE", f"/networks/{first}")
    assert in_use.status == 403 and "active endpoints" in in_use.json()["message"]
    predefined = api.request("DELETE", "/networks/bridge")
    assert predefined.status == 403 and "pre-defined" in predefined.json()["message"]
    reply = api.request("POST", f"/networks/{second}/disconnect", {"Container": name})
    assert reply.status == 200, reply
    assert f"{wanted}/24" not in _addresses(capsa, name)
    assert api.request("GET", f"/networks/{second}").json()["Containers"] == {}
    no_body = api.request("POST", f"/networks/{second}/connect", {"Container": 5})
    assert no_body.status == 400 and "Container" in no_body.json()["message"]
    nobody = api.request("POST", f"/networks/{second}/connect", {"Container": capsa.name()})
    assert nobody.status == 404

    capsa.run("rm", "-f", name)
    for net in (first, second):
        assert api.request("DELETE", f"/networks/{net}").status == 204
        assert api.request("GET", f"/networks/{net}").status == 404
    assert api.request("DELETE", f"/networks/{first}").status == 404
    second_id = doc["Id"]
    left = {_bridge(created["Id"]), _bridge(second_id)} & _links()
    assert not left, f"bridges left: {left}"
    assert not _table(capsa), "the root's nftables table outlived its networks"


def test_network_create_rejects_bad_bodies(api: ApiService, capsa: CapsaCli) -> None:
    cases: list[tuple[Any, str]] = [
        ({}, "Name"),
        ({"Name": 5}, "Name"),
        ({"Name": capsa.name(), "Internal": "yes"}, "Internal"),
        ({"Name": capsa.name(), "IPAM": {"Config": "10.213.0.0/24"}}, "IPAM.Config"),
        ({"Name": capsa.name(), "Labels": {"a": 1}}, "Labels.a"),
        ({"Name": capsa.name(), "Driver": "overlay"}, "overlay"),
    ]
    for body, word in cases:
        reply = api.request("POST", "/networks/create", body)
        assert reply.status == 400, (body, reply)
        assert word in reply.json()["message"], (body, reply)
    assert api.request("POST", "/networks/create", b"{nope").status == 400


def test_network_prune_and_internal(api: ApiService, capsa: CapsaCli, networks: list[str]) -> None:
    keep, drop = capsa.name(), capsa.name()
    networks += [keep, drop]
    label = f"prune={keep}"
    for name, labels in ((keep, {}), (drop, {"prune": keep})):
        body = {
            "Name": name,
            "Internal": True,
            "IPAM": {"Config": [{"Subnet": str(subnet())}]},
            "Labels": labels,
        }
        assert api.request("POST", "/networks/create", body).status == 201
    assert api.request("GET", f"/networks/{drop}").json()["Internal"] is True
    reply = api.request("POST", "/networks/prune?filters=" + _filters({"label": [label]}))
    assert reply.status == 200 and reply.json() == {"NetworksDeleted": [drop]}
    assert api.request("GET", f"/networks/{drop}").status == 404
    assert api.request("GET", f"/networks/{keep}").status == 200


def test_networks_with_docker_py(api: ApiService, capsa: CapsaCli, networks: list[str]) -> None:
    import docker
    from docker.types import IPAMConfig, IPAMPool

    client = api.client()
    name = capsa.name()
    networks.append(name)
    net = subnet()
    created = client.networks.create(
        name,
        driver="bridge",
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(net), gateway=str(net[1]))]),
        labels={"made-by": "docker-py"},
        check_duplicate=True,
    )
    assert created.name == name
    assert [n.id for n in client.networks.list(names=[name])] == [created.id]
    assert client.networks.get(created.id).attrs["Labels"] == {"made-by": "docker-py"}
    ctr = capsa.name()
    capsa.run("run", "-d", "--network", name, "--name", ctr, capsa.image, "sleep", "300")
    second = capsa.name()
    networks.append(second)
    net2 = subnet()
    other = client.networks.create(
        second, ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(net2))])
    )
    other.connect(ctr, ipv4_address=str(net2[9]), aliases=["py"])
    other.reload()
    assert [c.name for c in other.containers] == [ctr]
    assert f"{net2[9]}/24" in _addresses(capsa, ctr)
    other.disconnect(ctr)
    assert f"{net2[9]}/24" not in _addresses(capsa, ctr)
    with pytest.raises(docker.errors.APIError) as err:
        created.remove()  # in use
    assert err.value.status_code == 403
    capsa.run("rm", "-f", ctr)
    created.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get(name)
    assert _bridge(created.id) not in _links()
    pruned = client.networks.prune(filters={"label": []})
    assert second in (pruned["NetworksDeleted"] or [])


def test_networks_with_the_docker_cli(
    api: ApiService, capsa: CapsaCli, networks: list[str]
) -> None:
    name = capsa.name()
    networks.append(name)
    net = subnet()
    gateway = str(net[1])
    out = api.docker(
        "network", "create", "--subnet", str(net), "--gateway", gateway, "--label", "k=v", name
    ).stdout
    network_id = out.strip()
    assert len(network_id) == 64
    listed = api.docker("network", "ls", "--filter", f"name={name}", "--format", "{{.Name}}")
    assert listed.stdout.split() == [name]
    (doc,) = json.loads(api.docker("network", "inspect", name).stdout)
    assert doc["Id"] == network_id and doc["IPAM"]["Config"][0]["Subnet"] == str(net)
    # the CLI's own inspect renders the same document (one shape, under capsa/api)
    (mine,) = capsa.json("network", "inspect", name)
    assert mine == doc
    # a stopped container connected by the docker CLI joins at start, at the address asked
    base = capsa.name()
    networks.append(base)
    base_net = subnet()
    api.docker("network", "create", "--subnet", str(base_net), base)
    ctr = capsa.name()
    capsa.run("create", "--network", base, "--name", ctr, capsa.image, "sleep", "300")
    api.docker("network", "connect", "--ip", str(net[33]), "--alias", "cli", name, ctr)
    capsa.run("start", ctr)
    addresses = _addresses(capsa, ctr)
    assert f"{net[33]}/24" in addresses
    assert any(ipaddress.IPv4Interface(a).ip in base_net for a in addresses), addresses
    in_use = api.docker("network", "rm", name, check=False)
    assert in_use.returncode == 1 and "active endpoints" in in_use.stderr
    capsa.run("rm", "-f", ctr)
    base_id = api.docker("network", "inspect", "-f", "{{.Id}}", base).stdout.strip()
    assert api.docker("network", "rm", name, base).stdout.split() == [name, base]
    assert not {_bridge(network_id), _bridge(base_id)} & _links()
    gone = api.docker("network", "inspect", name, check=False)
    assert gone.returncode == 1


# -- volumes ----------------------------------------------------------------------------


def test_volume_create_inspect_list_remove_raw(api: ApiService, capsa: CapsaCli) -> None:
    name = capsa.name()
    reply = api.request(
        "POST", "/volumes/create", {"Name": name, "Labels": {"owner": name}, "DriverOpts": {}}
    )
    assert reply.status == 201, reply
    doc = reply.json()
    assert set(doc) >= {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert doc["Name"] == name and doc["Driver"] == "local" and doc["Labels"] == {"owner": name}
    assert Path(doc["Mountpoint"]).is_dir()
    assert api.request("GET", f"/volumes/{name}").json() == doc
    # create is idempotent, as dockerd's
    assert api.request("POST", "/volumes/create", {"Name": name}).status == 201

    anon = api.request("POST", "/volumes/create").json()
    assert len(anon["Name"]) == 64 and "com.docker.volume.anonymous" in anon["Labels"]

    everything = api.request("GET", "/volumes").json()
    assert set(everything) == {"Volumes", "Warnings"}
    assert {name, anon["Name"]} <= {v["Name"] for v in everything["Volumes"]}
    labelled = api.request("GET", "/volumes?filters=" + _filters({"label": [f"owner={name}"]}))
    assert [v["Name"] for v in labelled.json()["Volumes"]] == [name]
    bad = api.request("GET", "/volumes?filters=" + _filters({"colour": ["red"]}))
    assert bad.status == 400

    # a container writes into it: the data is in the mountpoint; in use, it stays
    ctr = capsa.name()
    capsa.run(
        "run", "--name", ctr, "-v", f"{name}:/data", capsa.image, "sh", "-c", "echo hi > /data/f"
    )
    assert (Path(doc["Mountpoint"]) / "f").read_text() == "hi\n"
    dangling = api.request("GET", "/volumes?filters=" + _filters({"dangling": ["true"]})).json()
    assert name not in {v["Name"] for v in dangling["Volumes"]}
    in_use = api.request("DELETE", f"/volumes/{name}")
    assert in_use.status == 409 and set(in_use.json()) == {"message"}
    capsa.run("rm", ctr)
    assert api.request("DELETE", f"/volumes/{name}").status == 204
    assert not Path(doc["Mountpoint"]).exists()
    missing = api.request("GET", f"/volumes/{name}")
    assert missing.status == 404 and set(missing.json()) == {"message"}
    assert api.request("DELETE", f"/volumes/{name}").status == 404
    assert api.request("DELETE", f"/volumes/{name}?force=1").status == 204
    assert api.request("DELETE", f"/volumes/{anon['Name']}").status == 204
    bad_type = api.request("POST", "/volumes/create", {"Name": 3})
    assert bad_type.status == 400 and "Name" in bad_type.json()["message"]
    bad_name = api.request("POST", "/volumes/create", {"Name": "a/b"})
    assert bad_name.status == 400


def test_volume_prune_named_only_with_all_after_1_42(api: ApiService, capsa: CapsaCli) -> None:
    tag = capsa.name()
    label = {"label": [f"batch={tag}"]}

    def make(name: str | None) -> str:
        body: dict[str, Any] = {"Labels": {"batch": tag}}
        if name:
            body["Name"] = name
        made: str = api.request("POST", "/volumes/create", body).json()["Name"]
        return made

    named, anon = make(capsa.name()), make(None)
    reply = api.request("POST", "/v1.50/volumes/prune?filters=" + _filters(label))
    assert reply.status == 200
    assert reply.json()["VolumesDeleted"] == [anon]
    assert isinstance(reply.json()["SpaceReclaimed"], int)
    assert api.request("GET", f"/volumes/{named}").status == 200
    # before 1.42 prune took named volumes too; after, the all filter does
    old = api.request("POST", "/v1.41/volumes/prune?filters=" + _filters(label)).json()
    assert old["VolumesDeleted"] == [named]
    again = make(capsa.name())
    with_all = api.request("POST", "/volumes/prune?filters=" + _filters({**label, "all": ["true"]}))
    assert with_all.json()["VolumesDeleted"] == [again]


def test_volumes_with_docker_py_and_the_docker_cli(api: ApiService, capsa: CapsaCli) -> None:
    import docker

    client = api.client()
    name = capsa.name()
    vol = client.volumes.create(name, driver="local", labels={"via": "docker-py"})
    assert vol.name == name and vol.attrs["Labels"] == {"via": "docker-py"}
    assert [v.name for v in client.volumes.list(filters={"label": "via=docker-py"})] == [name]
    assert client.volumes.get(name).attrs["Mountpoint"] == vol.attrs["Mountpoint"]
    vol.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(name)
    anon = client.volumes.create(labels={"via": "docker-py"})
    assert anon.name in client.volumes.prune(filters={"label": "via=docker-py"})["VolumesDeleted"]

    cli_name = capsa.name()
    assert api.docker("volume", "create", "--label", "via=cli", cli_name).stdout.strip() == cli_name
    listed = api.docker("volume", "ls", "-q", "--filter", "label=via=cli").stdout.split()
    assert listed == [cli_name]
    (doc,) = json.loads(api.docker("volume", "inspect", cli_name).stdout)
    assert doc["Name"] == cli_name and doc["Labels"] == {"via": "cli"}
    (mine,) = capsa.json("volume", "inspect", cli_name)
    assert mine == doc  # the CLI renders the same document
    anon_cli = api.docker("volume", "create", "--label", "via=cli").stdout.strip()
    out = api.docker("volume", "prune", "-f", "--filter", "label=via=cli").stdout
    assert anon_cli in out and cli_name not in out
    out = api.docker("volume", "prune", "-a", "-f", "--filter", "label=via=cli").stdout
    assert cli_name in out
    assert api.docker("volume", "ls", "-q", "--filter", "label=via=cli").stdout.split() == []
    again = capsa.name()
    api.docker("volume", "create", again)
    assert api.docker("volume", "rm", again).stdout.strip() == again
    assert api.docker("volume", "inspect", again, check=False).returncode == 1
