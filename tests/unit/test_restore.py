"""``capsa system restore`` without a kernel: which containers come back, that one
failure hides no other, and the systemd unit that runs it at boot."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import time
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from capsa.cli.main import cli
from capsa.engine.containers.restore import RestoreService
from capsa.engine.containers.types import ContainerRecord, ContainerSpec, State
from capsa.errors import FailedPrecondition, NotFound

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "contrib" / "systemd" / "capsa-restore.service"


def _rec(name: str, restart: str, state: State, **status: Any) -> ContainerRecord:
    rec = ContainerRecord(
        id=name * 8,
        name=name,
        image_id="i",
        image_name="img",
        created=f"2026-01-01T00:00:0{len(name)}Z",
        spec=ContainerSpec(image="img", restart=restart),
        state=state,
        started_at="2026-01-01T00:00:10Z",
    )
    for key, value in status.items():
        setattr(rec, key, value)
    return rec


class _Store:
    def __init__(self, records: list[ContainerRecord]) -> None:
        self.records = {r.id: r for r in records}

    def list(self) -> list[ContainerRecord]:
        return list(self.records.values())

    def get(self, cid: str) -> ContainerRecord:
        if cid not in self.records:
            raise NotFound(f"no such container: {cid}")
        return self.records[cid]


class _Networks:
    def __init__(self) -> None:
        self.store = self
        self.calls: list[str] = []

    def drop_stale_endpoints(self) -> list[str]:
        self.calls.append("drop")
        return ["x" * 64]

    def holders(self) -> set[str]:
        return {"gone" * 16}

    def cleanup_stale(self, known: set[str]) -> None:
        self.calls.append("cleanup")

    def teardown_idle(self) -> None:
        self.calls.append("teardown")


class _Ctx:
    def __init__(self, records: list[ContainerRecord]) -> None:
        self.store = _Store(records)
        self.networks = _Networks()


class _Containers:
    """observe() settles every live record (the host restarted); start() as asked."""

    def __init__(self, ctx: _Ctx, failing: str = "") -> None:
        self.ctx = ctx
        self.failing = failing
        self.started: list[str] = []
        self.removed: list[str] = []

    def observe(self, rec: ContainerRecord) -> ContainerRecord:
        if rec.state in (State.RUNNING, State.RESTARTING):
            rec = ContainerRecord(**{**vars(rec), "state": State.EXITED, "exit_code": None})
            self.ctx.store.records[rec.id] = rec
        return rec

    def start(self, cid: str) -> None:
        name = self.ctx.store.get(cid).name
        if name == self.failing:
            raise FailedPrecondition(f"cannot start {name}")
        self.started.append(name)

    def remove(self, cid: str) -> None:
        self.removed.append(self.ctx.store.records.pop(cid).name)


def _restore(records: list[ContainerRecord], failing: str = "") -> tuple[Any, _Containers]:
    ctx = _Ctx(records)
    containers = _Containers(ctx, failing)
    report = RestoreService(ctx, containers).run()  # type: ignore[arg-type]
    return report, containers


def test_the_restart_policy_decides_who_comes_back() -> None:
    report, containers = _restore(
        [
            _rec("a", "always", State.RUNNING),
            _rec("b", "unless-stopped", State.RUNNING),
            _rec("c", "unless-stopped", State.EXITED, stopped_by_user=True),
            _rec("d", "always", State.EXITED, stopped_by_user=True),  # docker: back at boot
            _rec("e", "no", State.RUNNING),
            _rec("f", "on-failure", State.RUNNING),
            _rec("g", "on-failure", State.EXITED, exit_code=1),  # it had given up
            _rec("h", "always", State.CREATED, started_at=""),  # never started
        ]
    )
    assert containers.started == ["a", "b", "d", "f"] == report.started
    assert report.settled == ["a", "b", "e", "f"]
    assert report.failed == [] and report.removed == []
    assert report.dropped_endpoints == ["gone" * 16, "x" * 64]


def test_a_failing_start_hides_no_other_and_rm_containers_go() -> None:
    rm = _rec("r", "no", State.RUNNING)
    rm.spec.auto_remove = True
    report, containers = _restore(
        [_rec("a", "always", State.RUNNING), _rec("bb", "always", State.RUNNING), rm], "a"
    )
    assert report.started == ["bb"] and containers.removed == ["r"] == report.removed
    assert [(f.name, f.message) for f in report.failed] == [("a", "cannot start a")]


def test_the_unit_runs_system_restore_after_the_network_is_online() -> None:
    unit = configparser.ConfigParser(strict=False)
    unit.read(UNIT)
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "capsa"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["capsa"] == "capsa.cli.entry:main", "the unit's program is not capsa's"
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Reconcile state after a reboot" in result.output  # that very command
    assert "network-online.target" in unit["Unit"]["After"]
    assert "network-online.target" in unit["Unit"]["Wants"]
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _titled(title: str) -> subprocess.Popen[bytes]:
    """A process whose command line starts with ``title``, as a monitor's does."""
    proc = subprocess.Popen(["bash", "-c", f"exec -a '{title}' sleep 30"])
    deadline = time.monotonic() + 5
    while not Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(title.encode()):
        assert time.monotonic() < deadline, "no such process"
        time.sleep(0.01)
    return proc


@pytest.mark.parametrize(
    ("title", "host_up", "starts"),
    [
        ("capsa-monitor shim web", False, True),  # its host was killed: start one
        ("capsa-monitor shim web", True, False),
        ("capsa-monitor web", False, False),  # a monitor: it has a host to hand over to
    ],
)
def test_a_shim_with_no_host_gets_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, title: str, host_up: bool, starts: bool
) -> None:
    """A live record whose monitor became a shim, with no host left to serve the run
    root: the command that looks at it starts one (which adopts it)."""
    from capsa.engine.containers import restore
    from capsa.engine.monitor import client as monitor_client
    from capsa.linux.proc import start_time

    started: list[str] = []
    monkeypatch.setattr(monitor_client, "ensure_host", lambda root, linger: started.append(root))
    monkeypatch.setattr(monitor_client, "host_alive", lambda runroot: host_up)
    settings = types.SimpleNamespace(runroot=str(tmp_path), monitor_linger=5.0)
    ctx: Any = types.SimpleNamespace(settings=settings)
    with _titled(title) as monitor:
        try:
            rec = _rec("web", "no", State.RUNNING, monitor_pid=monitor.pid)
            rec.monitor_start = start_time(monitor.pid) or 0
            assert restore.supervised(rec, ctx)
        finally:
            monitor.kill()
    assert started == ([str(tmp_path)] if starts else [])
