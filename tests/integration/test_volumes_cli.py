"""`capsa volume create/ls/inspect/rm/prune` through click, with a private --root."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from capsa.cli import main
from capsa.cli import volumes as volume_cli
from capsa.config import Settings
from capsa.engine.volumes.service import VolumeService
from capsa.engine.volumes.types import VolumeCreateOptions

Run = Callable[..., Result]


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "root", tmp_path / "run"


@pytest.fixture
def service(roots: tuple[Path, Path]) -> Iterator[VolumeService]:
    svc = VolumeService(Settings(root=str(roots[0]), runroot=str(roots[1])))
    yield svc
    svc.close()


@pytest.fixture
def run(roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run(*args, input=None)``: invoke ``capsa --root R --runroot RR *args``."""
    from capsa.engine.local import LocalEngine

    if "volume" not in main.cli.commands:  # until cli/main.py registers the group
        group = click.Group()
        volume_cli.register(group)
        monkeypatch.setitem(main.cli.commands, "volume", group.commands["volume"])
    if not hasattr(LocalEngine, "volumes"):  # until engine/local.py wires the service
        monkeypatch.setattr(
            LocalEngine,
            "volumes",
            property(lambda self: VolumeService(self.settings)),
            raising=False,
        )
    monkeypatch.delenv("CAPSA_CONFIG", raising=False)
    runner = CliRunner()
    base = ["--root", str(roots[0]), "--runroot", str(roots[1])]

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main.cli, [*base, *args], input=input, catch_exceptions=False)

    return invoke


def test_create_prints_name_and_is_idempotent(run: Run) -> None:
    result = run("volume", "create", "data")
    assert result.exit_code == 0, result.output
    assert result.stdout == "data\n"
    assert run("volume", "create", "data").stdout == "data\n"
    generated = run("volume", "create").stdout.strip()
    assert len(generated) == 64


def test_create_errors(run: Run) -> None:
    result = run("volume", "create", "-d", "nfsx", "vol1")
    assert result.exit_code == 1 and 'plugin "nfsx" not found' in result.stderr
    result = run("volume", "create", "-o", "color=red", "vol1")
    assert result.exit_code == 1 and 'invalid option: "color"' in result.stderr
    result = run("volume", "create", "a")
    assert result.exit_code == 1 and "too short" in result.stderr
    assert run("volume", "ls", "-q").stdout == ""


def test_ls_table_quiet_and_filters(run: Run) -> None:
    run("volume", "create", "--label", "app=web", "web1")
    run("volume", "create", "--label", "app=db", "db1")
    result = run("volume", "ls")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert [line.split() for line in lines[1:]] == [["local", "db1"], ["local", "web1"]]
    assert run("volume", "list", "-q").stdout == "db1\nweb1\n"
    run("volume", "create", "db10")
    run("volume", "create", "db2")
    assert run("volume", "ls", "-q", "-f", "name=db").stdout == "db1\ndb2\ndb10\n"
    assert run("volume", "ls", "-q", "--filter", "label=app=web").stdout == "web1\n"
    assert run("volume", "ls", "-q", "-f", "name=web").stdout == "web1\n"
    assert run("volume", "ls", "-q", "-f", "label=app").stdout == "db1\nweb1\n"
    bad = run("volume", "ls", "-f", "colour=blue")
    assert bad.exit_code == 1 and "invalid filter 'colour'" in bad.stderr


def test_ls_format(run: Run) -> None:
    run("volume", "create", "--label", "a=1", "fmt1")
    result = run("volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
    assert result.exit_code == 0, result.output
    assert result.stdout == "fmt1 local a=1\n"
    line = json.loads(run("volume", "ls", "--format", "json").stdout)
    assert line["Name"] == "fmt1" and line["Driver"] == "local" and line["Scope"] == "local"
    assert line["Mountpoint"].endswith("/volumes/fmt1/_data")


def test_inspect_shape_and_template(run: Run, roots: tuple[Path, Path]) -> None:
    run("volume", "create", "--label", "k=v", "-o", "type=tmpfs", "-o", "device=tmpfs", "insp")
    result = run("volume", "inspect", "insp")
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.stdout)
    assert sorted(doc) == [
        "CreatedAt",
        "Driver",
        "Labels",
        "Mountpoint",
        "Name",
        "Options",
        "Scope",
    ]
    assert doc["Name"] == "insp" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Labels"] == {"k": "v"}
    assert list(doc["Options"].items()) == [("device", "tmpfs"), ("type", "tmpfs")]
    assert doc["Mountpoint"] == str(roots[0] / "volumes" / "insp" / "_data")
    assert result.stdout.startswith("[\n    {\n")  # docker's 4-space indentation
    tpl = run("volume", "inspect", "-f", "{{.Name}}:{{.Driver}}", "insp")
    assert tpl.stdout == "insp:local\n"


def test_inspect_missing(run: Run) -> None:
    run("volume", "create", "here")
    result = run("volume", "inspect", "here", "gone")
    assert result.exit_code == 1
    assert [d["Name"] for d in json.loads(result.stdout)] == ["here"]
    assert "No such volume: gone" in result.stderr
    only_missing = run("volume", "inspect", "gone")
    assert only_missing.exit_code == 1 and json.loads(only_missing.stdout) == []


def test_rm_reports_each(run: Run, service: VolumeService) -> None:
    run("volume", "create", "free")
    run("volume", "create", "busy")
    service.mount_source("busy", "c0ffee", None, "/data")
    result = run("volume", "rm", "free", "busy", "missing")
    assert result.exit_code == 1
    assert result.stdout == "free\n"
    assert "remove busy: volume is in use - [c0ffee]" in result.stderr
    assert "No such volume: missing" in result.stderr
    forced = run("volume", "rm", "-f", "busy", "missing")
    assert forced.exit_code == 1 and forced.stdout == "missing\n"
    service.release("busy", "c0ffee")
    assert run("volume", "remove", "busy").stdout == "busy\n"
    assert run("volume", "ls", "-q").stdout == ""


def test_prune(run: Run, service: VolumeService) -> None:
    anon = service.create(VolumeCreateOptions(anonymous=True))
    Path(anon.mountpoint, "blob").write_bytes(b"x" * 2000)
    run("volume", "create", "named")
    run("volume", "create", "--label", "keep=1", "kept")

    declined = run("volume", "prune", input="n\n")
    assert "anonymous local volumes not used by at least one container" in declined.stdout
    assert os.path.isdir(anon.mountpoint)

    result = run("volume", "prune", input="y\n")
    assert result.exit_code == 0, result.output
    assert f"Deleted Volumes:\n{anon.name}\n\nTotal reclaimed space: 2kB\n" in result.stdout
    result = run("volume", "prune", "-a", "-f", "--filter", "label!=keep")
    assert result.stdout == "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"
    assert run("volume", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    assert run("volume", "ls", "-q").stdout == "kept\n"


@pytest.mark.root
def test_tmpfs_volume_in_use_by_a_container(run: Run, service: VolumeService) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from tests.helpers import unique_name

    from capsa.linux import syscalls

    name = unique_name()
    opts = ["-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m"]
    assert run("volume", "create", *opts, name).stdout == f"{name}\n"
    path = service.mount_source(name, "c1", None, "/data")
    try:
        with open("/proc/self/mountinfo") as f:
            assert any(line.split()[4] == os.path.realpath(path) for line in f)
        result = run("volume", "rm", name)
        assert result.exit_code == 1 and "volume is in use - [c1]" in result.stderr
        assert run("volume", "prune", "-a", "-f").stdout == "Total reclaimed space: 0B\n"
    finally:
        service.release(name, "c1")
        with open("/proc/self/mountinfo") as f:
            if any(line.split()[4] == os.path.realpath(path) for line in f):
                syscalls.umount2(path, syscalls.MNT_DETACH)
    assert run("volume", "rm", name).stdout == f"{name}\n"
