"""Prune, disk usage and sizes as Docker reports them (issue 12), through the CLI (root).

- ``volume create`` without a name makes an anonymous volume (Docker's label), pruned by
  ``volume prune -f`` and ``system prune --volumes``; named volumes need ``-a``; a
  volume a stopped container mounts is in use; ``run --rm`` takes its anonymous
  volumes with it.
- ``container|image|network|volume|system prune --filter`` with the filters dockerd
  takes for each (``until``, ``label``, ``label!``; ``dangling`` for images; no
  ``until`` for volumes).
- ``system df`` (plain, ``-v``, ``--format``): Images, Containers, Local Volumes and
  Build Cache.
- ``ps -s``'s virtual size, ``inspect --size``'s ``SizeRw``/``SizeRootFs``, and
  ``IPAMConfig`` for a container started with ``--ip``.
"""
# ruff: noqa: F811  (pytest fixtures imported from tests.helpers.capsa_cli)

from __future__ import annotations

import ipaddress
import json
import re
import time
from pathlib import Path

import pytest
from tests.helpers.capsa_cli import (  # noqa: F401  (fixtures)
    IMAGE,
    CapsaCli,
    busybox_tarball,
    capsa,
    capsa_module,
)
from tests.helpers.host import free_subnet

pytestmark = pytest.mark.root

ANONYMOUS = "com.docker.volume.anonymous"


def _volumes(capsa: CapsaCli) -> set[str]:
    return set(capsa.run("volume", "ls", "-q").stdout.split())


def _create(capsa: CapsaCli, *flags: str) -> str:
    cid = capsa.run("create", *flags, IMAGE, "true").stdout.strip()
    capsa.ids.add(cid)
    return cid


def _error(capsa: CapsaCli, *args: str) -> str:
    proc = capsa.run(*args, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


# -- anonymous volumes ---------------------------------------------------------------------


def test_unnamed_volumes_are_anonymous_and_pruned_named_need_all(capsa: CapsaCli) -> None:
    anon = capsa.run("volume", "create").stdout.strip()
    named = capsa.name()
    capsa.run("volume", "create", named)
    (doc,) = capsa.json("volume", "inspect", anon)
    assert doc["Labels"] == {ANONYMOUS: ""}
    (doc,) = capsa.json("volume", "inspect", named)
    assert doc["Labels"] == {}

    stopped = capsa.name()
    capsa.run("run", "--name", stopped, "-v", "/data", IMAGE, "true")
    held = capsa.inspect(stopped)["Mounts"][0]["Name"]
    (doc,) = capsa.json("volume", "inspect", held)
    assert doc["Labels"] == {ANONYMOUS: ""}

    out = capsa.run("volume", "prune", "-f").stdout
    assert out.startswith(f"Deleted Volumes:\n{anon}\n\n")  # not a stopped container's
    assert _volumes(capsa) >= {held, named} and anon not in _volumes(capsa)

    # run --rm takes its anonymous volumes along, never a named one
    before = _volumes(capsa)
    capsa.run("run", "--rm", "-v", "/scratch", "-v", f"{named}:/n", IMAGE, "true")
    assert _volumes(capsa) == before

    capsa.run("rm", stopped)  # without -v: its anonymous volume stays, unused now
    another = capsa.run("volume", "create").stdout.strip()
    out = capsa.run("system", "prune", "-f", "--volumes").stdout
    deleted = out.partition("Deleted Volumes:\n")[2].partition("\n\n")[0].split()
    assert sorted(deleted) == sorted([held, another])
    assert named in _volumes(capsa)
    out = capsa.run("volume", "prune", "-f", "-a").stdout
    assert named in out.split() and named not in _volumes(capsa)


# -- prune --filter ------------------------------------------------------------------------


def test_container_prune_filters(capsa: CapsaCli) -> None:
    keep = _create(capsa, "-l", "keep=yes")
    web = _create(capsa, "-l", "tier=web")
    plain = _create(capsa)

    out = capsa.run("container", "prune", "-f", "--filter", "label=tier=web").stdout
    assert out.startswith(f"Deleted Containers:\n{web}\n\nTotal reclaimed space: ")
    out = capsa.run("container", "prune", "-f", "--filter", "until=2001-01-01T00:00:00Z").stdout
    assert out == "Total reclaimed space: 0B\n"
    out = capsa.run("container", "prune", "-f", "--filter", "label!=keep").stdout
    assert out.split()[:3] == ["Deleted", "Containers:", plain]
    later = str(int(time.time()) + 3600)
    out = capsa.run("container", "prune", "-f", "--filter", f"until={later}").stdout
    assert keep in out.split()
    assert "invalid filter 'dangling'" in _error(
        capsa, "container", "prune", "-f", "--filter", "dangling=true"
    )
    assert "failed to parse value as time or duration" in _error(
        capsa, "container", "prune", "-f", "--filter", "until=soon"
    )


def test_image_prune_filters(capsa: CapsaCli, busybox_tarball: Path) -> None:
    def load(*changes: str, name: str = "") -> str:
        flags = [a for c in changes for a in ("-c", c)]
        out = capsa.run("import", *flags, str(busybox_tarball), *([name] if name else []))
        return out.stdout.strip()

    old = load("LABEL tier=old")
    new = load("LABEL tier=new")
    bare = load('CMD ["/bin/true"]')
    tagged = f"capsa-test/{capsa.name()}:latest"
    kept = load("LABEL tier=old", name=tagged)

    out = capsa.run("image", "prune", "-f", "--filter", "label=tier=old").stdout
    assert f"deleted: {old}" in out and kept not in out  # tagged: not dangling
    out = capsa.run("image", "prune", "-f", "--filter", "until=2001-01-01").stdout
    assert out == "Total reclaimed space: 0B\n"
    out = capsa.run("image", "prune", "-f", "--filter", "label!=tier").stdout
    assert f"deleted: {bare}" in out and new not in out
    out = capsa.run(
        "image", "prune", "-f", "--filter", "dangling=false", "--filter", "label=tier=old"
    )
    assert f"untagged: {tagged}" in out.stdout and f"deleted: {kept}" in out.stdout
    assert capsa.run("image", "inspect", IMAGE).returncode == 0  # no label: kept
    tagged_new = f"capsa-test/{capsa.name()}:latest"
    kept_new = load("LABEL tier=new", name=tagged_new)
    out = capsa.run("image", "prune", "-f", "--filter", "label=tier=new").stdout
    assert f"deleted: {new}" in out and kept_new not in out
    # -a wins over dangling=true, as with dockerd: every unused image that matches
    out = capsa.run(
        "image", "prune", "-a", "-f", "--filter", "dangling=true", "--filter", "label=tier=new"
    ).stdout
    assert f"untagged: {tagged_new}" in out and f"deleted: {kept_new}" in out
    assert "invalid filter 'name'" in _error(capsa, "image", "prune", "-f", "--filter", "name=x")


def test_network_prune_filters(capsa: CapsaCli) -> None:
    names = {}
    for key, labels in (("a", ["team=a"]), ("b", ["team=b"]), ("k", ["keep"])):
        names[key] = capsa.name()
        flags = [a for label in labels for a in ("--label", label)]
        capsa.run("network", "create", "--subnet", free_subnet(), *flags, names[key])
    try:
        out = capsa.run("network", "prune", "-f", "--filter", "label=team=a").stdout
        assert out == f"Deleted Networks:\n{names['a']}\n\n"
        out = capsa.run("network", "prune", "-f", "--filter", "until=2001-01-01T00:00:00Z")
        assert out.stdout == ""
        out = capsa.run("network", "prune", "-f", "--filter", "label!=keep").stdout
        assert out == f"Deleted Networks:\n{names['b']}\n\n"
        assert "invalid filter 'dangling'" in _error(
            capsa, "network", "prune", "-f", "--filter", "dangling=true"
        )
    finally:
        for name in names.values():
            capsa.run("network", "rm", name, check=False)


def test_volume_and_system_prune_filters(capsa: CapsaCli) -> None:
    tagged = capsa.run("volume", "create", "--label", "tier=web").stdout.strip()
    other = capsa.run("volume", "create").stdout.strip()
    assert "invalid filter 'until'" in _error(
        capsa, "volume", "prune", "-f", "--filter", "until=1h"
    )
    out = capsa.run("volume", "prune", "-f", "--filter", "label=tier=web").stdout
    assert out.startswith(f"Deleted Volumes:\n{tagged}\n\n")

    labelled = _create(capsa, "-l", "x=1")
    plain = _create(capsa)
    err = _error(capsa, "system", "prune", "-f", "--volumes", "--filter", "until=1h")
    assert 'The "until" filter is not supported with "--volumes"' in err
    assert "invalid filter 'dangling'" in _error(
        capsa, "system", "prune", "-f", "--filter", "dangling=true"
    )
    assert {labelled, plain} <= set(capsa.run("ps", "-aq", "--no-trunc").stdout.split())
    assert other in _volumes(capsa)  # nothing was pruned by the refused calls

    out = capsa.run("system", "prune", "-f", "--volumes", "--filter", "label=x=1").stdout
    assert out.startswith(f"Deleted Containers:\n{labelled}\n\n")
    assert other in _volumes(capsa)  # no x=1 label
    prompt = capsa.run("system", "prune", "--filter", "label=x=1", input="n\n").stdout
    assert "\n\n  Items to be pruned will be filtered with:\n  - label=x=1\n\n" in prompt
    out = capsa.run("system", "prune", "-f", "--volumes", "--filter", "label!=x").stdout
    assert plain in out.split() and other in out.split()


# -- system df -----------------------------------------------------------------------------


def _df_rows(capsa: CapsaCli) -> dict[str, list[str]]:
    lines = capsa.run("system", "df").stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line)
        rows[cells[0]] = cells[1:]
    assert list(rows) == ["Images", "Containers", "Local Volumes", "Build Cache"]
    return rows


def test_system_df_rows_sections_and_json(capsa: CapsaCli) -> None:
    capsa.run("container", "prune", "-f")
    capsa.run("volume", "prune", "-f", "-a")
    vol, done, up = capsa.name(), capsa.name(), capsa.name()
    capsa.run("volume", "create", vol)
    script = "head -c 1000 /dev/zero > /blob; head -c 2000 /dev/zero > /v/blob"
    capsa.run("run", "--name", done, "-v", f"{vol}:/v", IMAGE, "sh", "-c", script)
    capsa.detached("--name", up, "--init")

    rows = _df_rows(capsa)
    assert rows["Containers"] == ["2", "1", "1kB", "1kB (100%)"]
    # a stopped container still holds its volume: active, nothing reclaimable
    assert rows["Local Volumes"] == ["1", "1", "2kB", "0B (0%)"]
    assert rows["Build Cache"] == ["0", "0", "0B", "0B"]
    total, active, size, reclaimable = rows["Images"]
    assert total == "1" and active == "1" and size.endswith("MB")
    assert reclaimable == "0B (0%)"

    docs = [
        json.loads(line)
        for line in capsa.run("system", "df", "--format", "{{json .}}").stdout.splitlines()
    ]
    assert [d["Type"] for d in docs] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert docs[1] == {
        "Active": "1",
        "Reclaimable": "1kB (100%)",
        "Size": "1kB",
        "TotalCount": "2",
        "Type": "Containers",
    }
    table = capsa.run("system", "df", "--format", "table {{.Type}}\t{{.Size}}").stdout
    assert table.splitlines()[0].split() == ["TYPE", "SIZE"]

    verbose = capsa.run("system", "df", "-v").stdout
    sections = verbose.split("\n\n")
    assert sections[0] == "Images space usage:"
    head, image = sections[1].splitlines()
    assert re.split(r"\s{2,}", head) == [
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE",
        "CONTAINERS",
    ]  # fmt: skip
    assert image.split()[:2] == IMAGE.split(":") and image.split()[-1] == "2"
    assert sections[2] == "Containers space usage:"
    head, *containers = sections[3].splitlines()
    assert re.split(r"\s{2,}", head) == [
        "CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES",
    ]  # fmt: skip
    (row,) = [re.split(r"\s{2,}", c) for c in containers if c.endswith(done)]
    assert row[3:5] == ["1", "1kB"]  # no "(virtual ...)" here, as Docker's
    assert sections[4] == "Local Volumes space usage:"
    assert [re.split(r"\s{2,}", line) for line in sections[5].splitlines()] == [
        ["VOLUME NAME", "LINKS", "SIZE"],
        [vol, "1", "2kB"],
    ]
    assert sections[6] == "Build cache usage: 0B"
    assert re.split(r"\s{2,}", sections[7].strip()) == [
        "CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED",
    ]  # fmt: skip
    doc = json.loads(capsa.run("system", "df", "-v", "--format", "json").stdout)
    assert sorted(doc) == ["BuildCache", "Containers", "Images", "Volumes"]
    assert [v["Name"] for v in doc["Volumes"]] == [vol] and doc["Volumes"][0]["Links"] == "1"


# -- sizes and IPAM ------------------------------------------------------------------------


def test_ps_virtual_size_and_inspect_size(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    capsa.run("exec", name, "sh", "-c", "printf 12345 > /five")
    image_size = capsa.json("image", "inspect", IMAGE)[0]["Size"]

    (doc,) = capsa.json("inspect", "--size", name)
    assert doc["SizeRw"] == 5  # bytes of the files it wrote, as Docker counts them
    assert doc["SizeRootFs"] == 5 + image_size
    (doc,) = capsa.json("container", "inspect", "-s", name)
    assert doc["SizeRootFs"] == 5 + image_size
    assert "SizeRootFs" not in capsa.inspect(name)

    size = capsa.run("ps", "-s", "--filter", f"name={name}", "--format", "{{.Size}}").stdout
    assert re.fullmatch(r"5B \(virtual [\d.]+[kM]B\)\n", size), size
    table = capsa.run("ps", "-s", "--filter", f"name={name}").stdout.splitlines()
    assert table[1].endswith(size.strip())


def test_inspect_ipam_config_of_ip(capsa: CapsaCli) -> None:
    net, fixed, auto = capsa.name(), capsa.name(), capsa.name()
    subnet = ipaddress.ip_network(free_subnet())
    ip = str(subnet.network_address + 10)
    capsa.run("network", "create", "--subnet", str(subnet), net)
    try:
        capsa.detached("--name", fixed, "--init", "--network", net, "--ip", ip)
        capsa.detached("--name", auto, "--init", "--network", net)
        networks = capsa.inspect(fixed)["NetworkSettings"]["Networks"]
        assert networks[net]["IPAMConfig"] == {"IPv4Address": ip}
        assert networks[net]["IPAddress"] == ip
        networks = capsa.inspect(auto)["NetworkSettings"]["Networks"]
        assert networks[net]["IPAMConfig"] is None and networks[net]["IPAddress"]
        other = ipaddress.ip_network(free_subnet())
        other_ip = str(other.network_address + 20)
        capsa.run("network", "create", "--subnet", str(other), net + "-b")
        capsa.run("network", "connect", "--ip", other_ip, net + "-b", auto)
        networks = capsa.inspect(auto)["NetworkSettings"]["Networks"]
        assert networks[net + "-b"]["IPAMConfig"] == {"IPv4Address": other_ip}
        assert networks[net + "-b"]["IPAddress"] == other_ip
        assert networks[net]["IPAMConfig"] is None
        capsa.run("stop", "-t", "1", fixed)
        stopped = capsa.inspect(fixed)["NetworkSettings"]["Networks"]
        assert stopped[net]["IPAMConfig"] == {"IPv4Address": ip}
        assert stopped[net]["IPAddress"] == ""
        capsa.run("rm", "-f", fixed, auto)
    finally:
        capsa.run("network", "rm", net, net + "-b", check=False)


def test_volume_rm_refuses_a_volume_a_stopped_container_has(capsa: CapsaCli) -> None:
    """As Docker: in use while any container has it, running or not (even with -f);
    ``rm -v`` of that container then takes an anonymous one with it."""
    named, holder = capsa.name(), capsa.name()
    capsa.run("volume", "create", named)
    cid = capsa.run("create", "--name", holder, "-v", f"{named}:/data", "-v", "/anon", IMAGE)
    anonymous = [m["Name"] for m in capsa.inspect(holder)["Mounts"] if m["Destination"] == "/anon"]
    for flags in ((), ("-f",)):
        refused = capsa.run("volume", "rm", *flags, named, check=False)
        assert refused.returncode == 1
        assert f"volume is in use - [{cid.stdout.strip()}]" in refused.stderr
    capsa.run("rm", "-v", holder)
    assert capsa.run("volume", "ls", "-q").stdout.split().count(anonymous[0]) == 0
    assert capsa.run("volume", "rm", named).stdout == f"{named}\n"
