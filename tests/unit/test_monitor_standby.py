"""Taking over a killed supervisor's containers, without a kernel's help: a loop's copy
reads the same output, and the host decides between supervising, finishing with the
status its monitor told it, and recording an unknown exit."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsa.engine.containers import attach
from capsa.engine.monitor import standby as monitor_standby
from capsa.engine.monitor.args import (
    FinishArgs,
    LoopArgs,
    LoopResult,
    MonitorArgs,
    Roots,
    to_wire,
)
from capsa.engine.monitor.host import Host
from capsa.engine.monitor.loop import Client, Loop
from capsa.engine.monitor.standby import Standby
from capsa.record import replace


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[Loop, int]]:
    """A loop on fresh stdout/stderr/stdin pipes; the stdout pipe's write end."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).detach()  # the loop's
    roots = Roots(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))
    args = LoopArgs(
        monitor=MonitorArgs(roots=roots, id="c" * 64, name="web", host_fd=42),
        pid=999_999,
        log=str(tmp_path / "c.log"),
        runtime_root=str(tmp_path / "runtime"),
        stdout=out_r,
        stderr=err_r,
        stdin=in_w,
        listener=listener,
        started=1.0,
    )
    made = Loop(args)
    yield made, out_w
    made.close()
    for fd in (out_w, err_w, in_r):
        os.close(fd)


def _copy(args: LoopArgs, fds: list[int]) -> Standby:
    """What the receiving process makes of a standby message (fds as if passed)."""
    message = json.loads(json.dumps({"op": "standby", "args": to_wire(args), "fds": fds}))
    return monitor_standby.received(message, [os.dup(fd) for fd in fds])


def test_a_copy_reads_the_same_output_without_stdin_or_clients(
    loop: tuple[Loop, int], tmp_path: Path
) -> None:
    original, out_w = loop
    args, fds = original.standby()
    assert args.stdin == -1 and args.clients == [] and args.monitor.host_fd == -1
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
    original.forget(original.args.stderr)
    args, fds = original.standby()
    assert args.stderr == -1 and len(fds) == 2
    copy = _copy(args, fds)
    try:
        assert list(Loop(copy.args).outputs.values()) == ["stdout"]
    finally:
        copy.close()


def test_a_hand_over_names_only_the_fds_the_loop_still_has(loop: tuple[Loop, int]) -> None:
    """A stream the container closed, or a stdin a client closed, is not in the hand-off:
    every fd the arguments name is one that is passed along."""
    original, _ = loop
    original.forget(original.args.stderr)
    original._client_frame(Client(-1), attach.STDIN_CLOSE, b"")
    args = original.snapshot()
    assert (args.stderr, args.stdin) == (-1, -1) and args.stdout == original.args.stdout
    copy = _copy(args, original.handoff_fds())
    try:
        assert list(Loop(copy.args).outputs.values()) == ["stdout"]
    finally:
        copy.close()


class _Host(Host):
    """A host that records what it would fork instead of forking."""

    def __init__(self) -> None:
        super().__init__(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET), "/nonexistent")
        self.finished: list[FinishArgs] = []
        self.recorded: list[str] = []  # containers whose record names us their supervisor

    def _spawn(self, args: MonitorArgs | FinishArgs, passed: list[int]) -> int:
        assert isinstance(args, FinishArgs)
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
        monitor_standby, "record_supervisor", lambda a: made.recorded.append(a.monitor.id)
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
    host.standby[7].result = LoopResult(exit_code=3)
    host._worker_gone(7, 9)
    (finish,) = host.finished
    assert finish.result.exit_code == 3 and finish.monitor.id == "c" * 64
    assert finish.started == 1.0 and finish.clients == []


def test_an_exit_nobody_can_know_is_recorded_unknown(host: _Host, loop: tuple[Loop, int]) -> None:
    host.standby[7] = _copy(*loop[0].standby())
    host._worker_gone(7, 9)  # the init is not ours and was not reaped here
    (finish,) = host.finished
    assert finish.result.exit_code is None and "reaping" in finish.result.unknown_why


def test_a_dead_hosts_containers_are_adopted_with_the_status_their_shims_kept(
    host: _Host, loop: tuple[Loop, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new host adopts the shims nobody supervises; a shim that saw the exit meanwhile
    said how it ended (3) in its status file."""
    from capsa.engine.monitor import shim as monitor_shim

    args, fds = loop[0].standby()
    copied = replace(_copy(args, fds).args, shim=4242, shim_start=1)
    status: int | None = 3 << 8
    seen: list[set[str]] = []

    def adopt(runroot: str, skip: set[str]) -> list[tuple[LoopArgs, int | None]]:
        seen.append(skip)
        return [(copied, status)]

    monkeypatch.setattr(monitor_shim, "adopt", adopt)
    host._adopt()
    assert host.supervised == [999_999] and seen == [set()]
    assert host.loops[999_999].exit_code == 3 and host.loops[999_999].draining
    copied, status = replace(_copy(args, fds).args, shim=4242, shim_start=1), None
    host._adopt()  # supervised now: asked to skip it, and never adopted twice
    assert seen[-1] == {"c" * 64} and host.loops[999_999].exit_code == 3
