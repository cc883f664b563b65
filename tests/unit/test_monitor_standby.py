"""Taking over a killed supervisor's containers, without a kernel's help: a loop's copy
reads the same output, and the host decides between supervising, finishing with the
status its monitor told it, and recording an unknown exit."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capsa.engine.monitor import standby as monitor_standby
from capsa.engine.monitor.host import Host
from capsa.engine.monitor.loop import Loop
from capsa.engine.monitor.standby import Standby


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[Loop, int]]:
    """A loop on fresh stdout/stderr/stdin pipes; the stdout pipe's write end."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).detach()  # the loop's
    args = {
        "id": "c" * 64,
        "name": "web",
        "pid": 999_999,
        "root": str(tmp_path / "root"),
        "runroot": str(tmp_path / "run"),
        "stdout": out_r,
        "stderr": err_r,
        "stdin": in_w,
        "listener": listener,
        "clients": [],
        "log": str(tmp_path / "c.log"),
        "started": 1.0,
        "host_fd": 42,
    }
    made = Loop(args)
    yield made, out_w
    made.close()
    for fd in (out_w, err_w, in_r):
        os.close(fd)


def _copy(args: dict[str, Any], fds: list[int]) -> Standby:
    """What the receiving process makes of a standby message (fds as if passed)."""
    message = json.loads(json.dumps({"op": "standby", "args": args, "fds": fds}))
    return monitor_standby.received(message, [os.dup(fd) for fd in fds])


def test_a_copy_reads_the_same_output_without_stdin_or_clients(
    loop: tuple[Loop, int], tmp_path: Path
) -> None:
    original, out_w = loop
    args, fds = original.standby()
    assert args["stdin"] == -1 and args["clients"] == [] and "host_fd" not in args
    assert original.stdin not in fds and len(fds) == 3  # stdout, stderr, listener
    copy = _copy(args, fds)
    try:
        took_over = Loop(copy.args)
        os.write(out_w, b"after the kill\n")
        (stdout,) = [fd for fd, stream in took_over.outputs.items() if stream == "stdout"]
        took_over.readable(stdout)
        took_over.log.close()
        entry = json.loads((tmp_path / "c.log").read_text())
        assert (entry["log"], entry["stream"]) == ("after the kill\n", "stdout")
    finally:
        copy.close()


def test_a_stream_the_container_closed_is_not_copied(loop: tuple[Loop, int]) -> None:
    original, _ = loop
    original.forget(int(original.args["stderr"]))
    args, fds = original.standby()
    assert args["stderr"] == -1 and len(fds) == 2
    copy = _copy(args, fds)
    try:
        assert list(Loop(copy.args).outputs.values()) == ["stdout"]
    finally:
        copy.close()


class _Host(Host):
    """A host that records what it would fork instead of forking."""

    def __init__(self) -> None:
        super().__init__(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET), "/nonexistent")
        self.finished: list[dict[str, Any]] = []
        self.recorded: list[str] = []  # containers whose record names us their supervisor

    def _spawn(self, args: dict[str, Any], passed: list[int]) -> int:
        self.finished.append(args)
        return 0

    @property
    def supervised(self) -> list[int]:
        return list(self.loops)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Host]:
    monkeypatch.setattr(monitor_standby, "is_child", lambda pid: False)
    made = _Host()
    monkeypatch.setattr(
        monitor_standby, "record_supervisor", lambda a: made.recorded.append(a["id"])
    )
    yield made
    for each in made.loops.values():
        each.close()
    made.listener.close()


def test_a_monitor_that_exits_cleanly_is_not_replaced(host: _Host, loop: tuple[Loop, int]) -> None:
    host.standby[7] = _copy(*loop[0].standby())
    host._worker_gone(7, 0)
    assert host.standby == {} and not host.finished and not host.supervised


def test_a_killed_monitor_is_replaced_when_its_container_is_ours(
    host: _Host, loop: tuple[Loop, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor_standby, "is_child", lambda pid: pid == 999_999)
    host.standby[7] = _copy(*loop[0].standby())
    host._worker_gone(7, 9)  # killed by SIGKILL
    assert host.supervised == [999_999] and not host.finished
    assert host.recorded == ["c" * 64]


def test_a_killed_monitor_that_knew_the_exit_status_has_it_recorded(
    host: _Host, loop: tuple[Loop, int]
) -> None:
    host.standby[7] = _copy(*loop[0].standby())
    host.standby[7].result = {"exit_code": 3}
    host._worker_gone(7, 9)
    (finish,) = host.finished
    assert finish["phase"] == "finish" and finish["exit_code"] == 3 and finish["id"] == "c" * 64


def test_an_exit_nobody_can_know_is_recorded_unknown(host: _Host, loop: tuple[Loop, int]) -> None:
    host.standby[7] = _copy(*loop[0].standby())
    host._worker_gone(7, 9)  # the init is not ours and was not reaped here
    (finish,) = host.finished
    assert finish["exit_code"] is None and "reaping" in finish["unknown_why"]


def test_a_dead_hosts_containers_are_adopted_with_the_status_their_shims_kept(
    host: _Host, loop: tuple[Loop, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new host adopts the shims nobody supervises; a shim that saw the exit meanwhile
    said how it ended (3) in its status file."""
    from capsa.engine.monitor import shim as monitor_shim

    args, fds = loop[0].standby()
    copied = {**_copy(args, fds).args, "shim": 4242, "shim_start": 1, "shim_status": 3 << 8}
    seen: list[set[str]] = []

    def adopt(runroot: str, skip: set[str]) -> list[dict[str, Any]]:
        seen.append(skip)
        return [copied]

    monkeypatch.setattr(monitor_shim, "adopt", adopt)
    host._adopt()
    assert host.supervised == [999_999] and seen == [set()]
    assert host.loops[999_999].exit_code == 3 and host.loops[999_999].draining
    copied = {**_copy(args, fds).args, "shim": 4242, "shim_start": 1}
    host._adopt()  # supervised now: asked to skip it, and never adopted twice
    assert seen[-1] == {"c" * 64} and host.loops[999_999].exit_code == 3
