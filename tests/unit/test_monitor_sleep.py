"""The monitor host at rest, without exec: when it rests, and the state it writes before
an exec read back into the same host (``capsa.engine.monitor.sleep``)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsa.engine.monitor import sleep as monitor_sleep
from capsa.engine.monitor.args import LoopArgs, MonitorArgs, Roots
from capsa.engine.monitor.host import Host
from capsa.engine.monitor.loop import Loop


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Host, int]]:
    """A host with one handed-over loop (stdout pipe, a shim's pipe); the stdout pipe's
    write end."""
    out_r, out_w = os.pipe()
    notify_r, notify_w = os.pipe()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).detach()
    roots = Roots(root=str(tmp_path / "root"), runroot=str(tmp_path))
    args = LoopArgs(
        monitor=MonitorArgs(roots=roots, id="c" * 64, name="web", warm=["network"]),
        pid=999_999,
        log=str(tmp_path / "c.log"),
        runtime_root=str(tmp_path / "runtime"),
        stdout=out_r,
        listener=listener,
        started=1.0,
        notify=notify_r,
        shim=4242,
        shim_start=7,
    )
    made = Host(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET), str(tmp_path), 5.0)
    made.alive = os.open(os.devnull, os.O_RDONLY)
    made.loops[999_999] = Loop(args)
    yield made, out_w
    for loop in made.loops.values():
        loop.close()
    made.listener.close()
    for fd in (out_w, notify_w, made.alive):
        os.close(fd)


def _rested(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    done: list[str] = []
    monkeypatch.setattr(monitor_sleep, "sleep", lambda host: done.append("sleep"))
    monkeypatch.setattr(monitor_sleep, "shed", lambda host: done.append("shed"))
    return done


def test_a_quiet_calm_host_sleeps(host: tuple[Host, int], monkeypatch: pytest.MonkeyPatch) -> None:
    made, _ = host
    done = _rested(monkeypatch)
    made.last_activity = time.monotonic()
    monitor_sleep.rest(made)
    assert done == ["shed"], "a host that just worked only drops its modules"
    made.last_activity -= monitor_sleep.SLEEP_AFTER
    monitor_sleep.rest(made)
    assert done == ["shed", "sleep"]


def test_a_host_at_work_does_not_rest(
    host: tuple[Host, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    made, _ = host
    done = _rested(monkeypatch)
    made.last_activity -= 60
    made.warm_until = time.monotonic() + 60  # a command came a moment ago
    monitor_sleep.rest(made)
    made.warm_until = 0.0
    made.commands.askers[123] = None  # a command runs
    monitor_sleep.rest(made)
    del made.commands.askers[123]
    made.loops[999_999].clients[5] = object()  # type: ignore[assignment]  # a client
    monitor_sleep.rest(made)
    del made.loops[999_999].clients[5]
    assert done == []
    assert monitor_sleep.rest_in(made) is None
    made.last_activity = time.monotonic()
    rest_in = monitor_sleep.rest_in(made)
    assert rest_in is not None and 0 < rest_in <= monitor_sleep.SLEEP_AFTER


def test_a_loop_without_a_shim_keeps_the_host_awake(
    host: tuple[Host, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken over from a killed monitor, the init is the host's child: its exit comes as
    a SIGCHLD, which a sleeping host would not see."""
    made, _ = host
    done = _rested(monkeypatch)
    made.last_activity -= 60
    made.fat = False
    os.close(made.loops[999_999].notify)
    made.loops[999_999].notify = -1
    monitor_sleep.rest(made)
    assert done == []


def test_the_state_brings_the_same_host_back(host: tuple[Host, int], tmp_path: Path) -> None:
    made, out_w = host
    made.orphans[55] = (3 << 8, time.monotonic() - 10)
    made.shims.add(4242)
    made.nofile = (1024, 4096)
    made._note_network(made.loops[999_999].args.monitor)
    made.loops[999_999].log.write("stdout", b"half a ")  # a partial line is written out
    state, kept, wake = monitor_sleep.freeze(made)
    state = json.loads(json.dumps(state))  # as written to the file
    loop = made.loops[999_999]
    assert {loop.notify, made.listener.fileno(), *loop.outputs} <= set(wake)
    assert all(os.get_inheritable(fd) for fd in kept)
    loop.log.close()
    back = monitor_sleep.thaw(state)
    try:
        assert back.resumed and not back.fat and back.nofile == (1024, 4096)
        assert back.shims == {4242} and back.orphans[55][0] == 3 << 8
        assert back.networked == made.networked == {made.loops[999_999].args.monitor.roots}
        (again,) = back.loops.values()
        assert again.pid == 999_999 and again.shim == 4242 and again.notify == loop.notify
        assert again.args.monitor == loop.args.monitor and again.args.log == loop.args.log
        assert not any(os.get_inheritable(fd) for fd in kept)
        os.write(out_w, b"line\n")
        (stdout,) = again.outputs
        again.readable(stdout)
        again.log.close()
        lines = [json.loads(x)["log"] for x in (tmp_path / "c.log").read_text().splitlines()]
        assert lines == ["half a ", "line\n"]
    finally:  # the same fds: closed once, by the fixture's host
        back.listener.detach()
        made.loops.clear()
        made.loops[999_999] = back.loops[999_999]
