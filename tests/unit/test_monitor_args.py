"""The monitor's arguments on the wire (``capsa.engine.monitor.args``): every phase's
record comes back equal from its JSON, and anything that is not exactly what this
capsa writes is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from capsa.engine.monitor import args as monitor_args
from capsa.engine.monitor.args import (
    FinishArgs,
    HealthArgs,
    LoopArgs,
    LoopResult,
    MonitorArgs,
    Roots,
    from_wire,
    to_wire,
    with_host,
)
from capsa.errors import InvalidArgument
from capsa.record import replace

MONITOR = MonitorArgs(
    roots=Roots(root="/var/lib/capsa", runroot="/run/capsa", config="/etc/capsa/capsa.toml"),
    id="c" * 64,
    name="web",
    ready_fd=5,
    listener_fd=6,
    wait_attach=True,
    warm=["network"],
    clients=[7],
    backoff=0.4,
    host_fd=9,
    host_linger=5.0,
)
LOOP = LoopArgs(
    monitor=replace(MONITOR, ready_fd=-1, listener_fd=-1, wait_attach=False, clients=[]),
    pid=4242,
    log="/var/lib/capsa/containers/c/c-json.log",
    runtime_root="/run/capsa/runtime",
    runtime_name="runc",
    tty=True,
    started=1700000000.25,
    log_opts={"max-size": "10m"},
    health=HealthArgs(
        test=["CMD-SHELL", "true"],
        interval=30.0,
        timeout=5.0,
        start_period=0.0,
        start_interval=5.0,
        retries=3,
        on_failure="restart",
    ),
    health_due=1700000030.0,
    master=10,
    listener=11,
    notify=12,
    clients=[13],
    wants={"13": {"stdin": True, "stdout": True, "size": [24, 80]}},
    shim=4343,
    shim_start=99,
)
FINISH = FinishArgs(
    monitor=LOOP.monitor,
    result=LoopResult(exit_code=None, unknown_why="its shim was killed", health_stop=True),
    started=LOOP.started,
    shim=LOOP.shim,
    shim_start=LOOP.shim_start,
    clients=[13],
)


@pytest.mark.parametrize("args", [MONITOR, LOOP, FINISH, LoopResult(exit_code=0), MONITOR.roots])
def test_every_record_comes_back_equal_from_its_json(args: Any) -> None:
    wire = json.loads(json.dumps(to_wire(args)))  # as sent on a socket or written to a file
    assert from_wire(type(args), wire) == args


@pytest.mark.parametrize("args", [MONITOR, LOOP, FINISH])
def test_a_phase_comes_back_from_its_command_line(args: Any) -> None:
    back = monitor_args.loads(monitor_args.dumps(args))
    assert type(back) is type(args) and back == args


def test_defaults_are_enough_for_a_launcher() -> None:
    made = MonitorArgs(roots=Roots(root="/r", runroot="/rr"), id="c1", name="c1")
    assert from_wire(MonitorArgs, to_wire(made)) == made
    assert (made.ready_fd, made.listener_fd, made.host_fd, made.warm) == (-1, -1, -1, [])


def test_a_host_sets_its_channel_in_either_phase() -> None:
    assert with_host(MONITOR, 3, 1.5) == replace(MONITOR, host_fd=3, host_linger=1.5)
    finish = with_host(FINISH, 3, 1.5)
    assert finish.monitor == replace(FINISH.monitor, host_fd=3, host_linger=1.5)
    assert finish.result == FINISH.result


@pytest.mark.parametrize(
    ("cls", "wire", "where"),
    [
        (
            MonitorArgs,
            {**to_wire(MONITOR), "phase": "setup"},
            "monitor arguments: unknown key 'phase'",
        ),
        (
            LoopArgs,
            {**to_wire(LOOP), "monitor": {**to_wire(LOOP.monitor), "exitCode": 3}},
            "monitor arguments.monitor: unknown key 'exitCode'",
        ),
        (
            LoopArgs,
            {**to_wire(LOOP), "health": {**to_wire(LOOP.health), "cmd": "x"}},
            "monitor arguments.health: unknown key 'cmd'",
        ),
        (
            FinishArgs,
            {**to_wire(FINISH), "result": {"exit_code": 3}},  # snake_case is not the wire's
            "monitor arguments.result: unknown key 'exit_code'",
        ),
        (
            MonitorArgs,
            {**to_wire(MONITOR), "roots": {**to_wire(MONITOR.roots), "tmp": "/tmp"}},
            "monitor arguments.roots: unknown key 'tmp'",
        ),
    ],
)
def test_an_unknown_key_is_an_error(cls: type, wire: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        from_wire(cls, wire)
    assert str(caught.value) == where


def test_a_missing_field_or_a_wrong_type_is_an_error() -> None:
    wire = to_wire(MONITOR)
    del wire["id"]
    with pytest.raises(InvalidArgument, match="missing argument 'id'"):
        from_wire(MonitorArgs, wire)
    with pytest.raises(InvalidArgument, match=r"readyFd: expected an integer"):
        from_wire(MonitorArgs, {**to_wire(MONITOR), "readyFd": "5"})
    with pytest.raises(InvalidArgument, match="expected an object"):
        from_wire(LoopArgs, [to_wire(LOOP)])


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(to_wire(MONITOR)),  # no phase
        json.dumps({"phase": "sleep", "args": to_wire(MONITOR)}),
        json.dumps({"phase": "setup", "args": to_wire(MONITOR), "extra": 1}),
        json.dumps({"phase": "finish", "args": to_wire(MONITOR)}),  # not a finish's args
    ],
)
def test_a_command_line_that_is_not_a_phase_is_an_error(text: str) -> None:
    with pytest.raises(InvalidArgument):
        monitor_args.loads(text)


def test_the_module_stays_light() -> None:
    """The monitor host forks monitors that import this on ``capsa run``'s path: no
    ``json``, ``dataclasses`` or ``typing`` at import."""
    import os
    import subprocess
    import sys

    import capsa

    src = os.path.dirname(os.path.dirname(os.path.abspath(capsa.__file__)))
    code = (
        f"import sys; sys.path.insert(0, {src!r}); import capsa.engine.monitor.args; "
        "print(sorted(m for m in ('json', 'dataclasses', 'typing', 're') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
