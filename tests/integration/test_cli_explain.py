"""`capsa explain`: a real container's namespaces, cgroup, capabilities, seccomp, mounts,
layers and user, read back from the kernel and shown next to the host's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import CapsaCli

from capsa.cli import explain as explain_cli
from capsa.cli import main

pytestmark = pytest.mark.root

# the fixtures: private roots with the busybox image, a `capsa` that cleans up after a test
busybox_tarball = capsa_cli.busybox_tarball
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

MIB = 1024 * 1024


def explain(capsa: CapsaCli, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``capsa explain *args`` in this process, on the module's private roots."""
    if "explain" not in main.cli.commands:  # until cli/main.py registers it
        group = click.Group()
        explain_cli.register(group)
        monkeypatch.setitem(main.cli.commands, "explain", group.commands["explain"])
    monkeypatch.delenv("CAPSA_CONFIG", raising=False)
    roots = ["--root", str(capsa.root), "--runroot", str(capsa.runroot)]
    return CliRunner().invoke(main.cli, [*roots, "explain", *args], catch_exceptions=False)


def report(capsa: CapsaCli, monkeypatch: pytest.MonkeyPatch, name: str) -> dict[str, Any]:
    result = explain(capsa, monkeypatch, "--format", "json", name)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture
def limited(capsa: CapsaCli, tmp_path: Path) -> tuple[str, Path, str]:
    """A running container with limits, a dropped capability, a read-only root, a bind
    mount and a named volume: (name, bind source, volume name)."""
    bind = tmp_path / "data"
    bind.mkdir()
    name, volume = capsa.name(), capsa.name()
    capsa.detached(
        "--name", name, "-m", "64m", "--pids-limit", "50", "--cap-drop", "NET_RAW",
        "--read-only", "-v", f"{bind}:/data", "-v", f"{volume}:/vol",
    )  # fmt: skip
    capsa.wait_status(name, "running")
    return name, bind, volume


def test_explain_running_container_json(
    capsa: CapsaCli, monkeypatch: pytest.MonkeyPatch, limited: tuple[str, Path, str]
) -> None:
    name, bind, volume = limited
    r = report(capsa, monkeypatch, name)
    assert r["running"] is True and r["pid"] == capsa.pid(name) and r["configSource"] == "bundle"
    ns = {n["kind"]: n for n in r["namespaces"]}
    for kind in ("pid", "net", "mnt", "ipc", "uts"):
        assert ns[kind]["status"] == "own", ns[kind]
        assert ns[kind]["container"] != ns[kind]["host"]
    assert ns["user"]["status"] == "shared with host"

    cgroup = r["cgroup"]
    assert cgroup["path"] == f"/capsa-{capsa.full_id(name)}"
    limits = {x["name"]: x for x in cgroup["limits"]}
    assert limits["memory.limit"]["asked"] == str(64 * MIB)
    assert limits["memory.limit"]["inForce"] == str(64 * MIB) and limits["memory.limit"]["ok"]
    assert limits["pids.limit"]["inForce"] == "50" and limits["pids.limit"]["ok"]
    assert all(d["member"] for d in cgroup["dirs"])
    assert cgroup["usage"]["pids"] >= 1 and cgroup["usage"]["memoryLimit"] == 64 * MIB

    capabilities = r["capabilities"]
    assert capabilities["dropped"] == ["CAP_NET_RAW"] and capabilities["added"] == []
    effective = next(s for s in capabilities["sets"] if s["name"] == "effective")
    assert "CAP_NET_RAW" not in effective["container"] and "CAP_CHOWN" in effective["container"]

    seccomp = r["seccomp"]
    assert (seccomp["mode"], seccomp["modeName"], seccomp["profile"]) == (2, "filter", "default")

    rows = {m["target"]: m for m in r["mounts"]["rows"]}
    root = rows["/"]
    assert (root["fstype"], root["kind"], root["mode"]) == ("overlay", "root", "ro")
    assert root["detail"].startswith("1 layer, upper ")
    assert (rows["/data"]["kind"], rows["/data"]["source"]) == ("bind", str(bind))
    assert rows["/vol"]["kind"] == "volume" and rows["/vol"]["detail"] == f"volume {volume}"
    assert rows["/proc/sys"]["kind"] == "readonly" and rows["/proc/sys"]["mode"] == "ro"
    assert any(m["kind"] == "masked" for m in r["mounts"]["rows"])

    rootfs = r["rootfs"]
    assert rootfs["readonly"] is True and len(rootfs["layers"]) == 1
    assert Path(rootfs["layers"][0]["directory"]).is_dir()
    assert rootfs["upper"] in root["detail"]
    assert r["user"]["uid"] == 0 and r["user"]["name"] == "root"


def test_explain_running_container_text(
    capsa: CapsaCli, monkeypatch: pytest.MonkeyPatch, limited: tuple[str, Path, str]
) -> None:
    name, bind, _ = limited
    result = explain(capsa, monkeypatch, name)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for section in ("NAMESPACES", "CGROUP v", "CAPABILITIES", "SECCOMP", "MOUNTS", "USER"):
        assert f"\n{section}" in out, out
    lines = out.splitlines()
    for kind in ("pid", "net", "mnt"):
        assert "own" in next(line for line in lines if line.startswith(f"  {kind} ")).split()
    limit = next(line for line in lines if line.startswith("  memory.limit "))
    assert limit.split()[2:5] == ["64MiB", "64MiB", "ok"]
    assert "dropped NET_RAW" in out and "filter (2)" in out
    assert f"<- {bind}" in out
    template = explain(capsa, monkeypatch, "-f", "{{.Seccomp.Mode}} {{.Rootfs.Readonly}}", name)
    assert template.stdout.strip() == "2 true"


def test_explain_stopped_container(capsa: CapsaCli, monkeypatch: pytest.MonkeyPatch) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "-m", "32m", "--cap-drop", "MKNOD")
    capsa.run("stop", "-t", "1", name)
    r = report(capsa, monkeypatch, name)
    assert r["running"] is False and r["state"] == "exited"
    assert any("not running" in n for n in r["notes"])
    assert {n["status"] for n in r["namespaces"]} == {"not running"}
    limits = {x["name"]: x for x in r["cgroup"]["limits"]}
    assert (
        limits["memory.limit"]["asked"] == str(32 * MIB) and "inForce" not in limits["memory.limit"]
    )
    assert r["capabilities"]["dropped"] == ["CAP_MKNOD"]
    assert r["seccomp"]["profile"] == "default" and "mode" not in r["seccomp"]
    assert r["mounts"]["mounted"] is False and len(r["rootfs"]["layers"]) == 1
    text = explain(capsa, monkeypatch, name)
    assert text.exit_code == 0 and "is not running (exited)" in text.stdout


def test_explain_unknown_container(capsa: CapsaCli, monkeypatch: pytest.MonkeyPatch) -> None:
    result = explain(capsa, monkeypatch, capsa.name())
    assert result.exit_code == 1 and "No such container: " in result.stderr
