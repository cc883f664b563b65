"""Warm start without a host: the wire format, the host's refusals, the client's roots."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from capsa.cli import entry
from capsa.engine.monitor import warm, warm_wire
from capsa.engine.monitor.warm_wire import Request, WireError


def _request(**changes: object) -> Request:
    fields: dict[str, object] = {
        "entry": "capsa.cli.main",
        "package": warm.package_dir(),
        "executable": sys.executable,
        "umask": 0o027,
        "encoding": "utf-8",
        "argv": ["capsa", "run", "-e", "A=b=c", "", "caf\udce9"],  # an empty and a raw byte
        "env": {"HOME": "/root", "X": "1=2", "EMPTY": ""},
    }
    fields.update(changes)
    return Request(**fields)  # type: ignore[arg-type]


def test_request_round_trips() -> None:
    request = _request()
    data = request.encode()
    assert warm_wire.is_request(data)
    assert Request.decode(data) == request


@pytest.mark.parametrize(
    "data",
    [b"", b"{}", b"capsa-command/1", warm_wire.MAGIC + b"\0a\0b\0c\0x\0utf-8\0" + b"2\0one"],
)
def test_garbage_is_no_request(data: bytes) -> None:
    with pytest.raises(WireError):
        Request.decode(data)


def test_replies() -> None:
    assert warm_wire.parse_reply(warm_wire.started(42), b"pid") == 42
    assert warm_wire.parse_reply(warm_wire.finished(256), b"status") == 256
    assert warm_wire.parse_reply(warm_wire.declined("busy"), b"pid") is None
    assert warm_wire.parse_reply(b"", b"status") is None


def test_a_command_wakes_a_sleeping_host_without_waiting_for_it(tmp_path: Path) -> None:
    """Asleep, the host listens under another name: the command's ``wake`` leaves a
    message there (the entry to import) and goes on at once; with no host, nothing."""
    import socket

    path = str(tmp_path / warm_wire.SOCKET_NAME)
    warm_wire.wake(path, "capsa.cli.command")  # no host at all: nothing happens
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(path + warm_wire.ASLEEP)
        listener.listen(1)
        warm_wire.wake(path, "capsa.cli.command")
        conn, _ = listener.accept()
        with conn:
            data = conn.recv(4096)
    assert warm_wire.wake_entry(data) == "capsa.cli.command"
    assert not warm_wire.is_request(data)
    assert warm_wire.wake_entry(_request().encode()) is None
    assert warm_wire.wake_entry(warm_wire.WAKE) is None


def test_host_refuses_other_users_installations_and_entry_points() -> None:
    me = os.geteuid()
    fds = [0, 1, 2, 3]
    assert warm.refusal(_request(), fds, me) is None
    assert warm.refusal(_request(), fds, me + 1) == "another user"
    assert warm.refusal(_request(), fds[:3], me) == "bad fds"
    assert warm.refusal(_request(entry="os"), fds, me) == "not a capsa entry point"
    assert warm.refusal(_request(package="/elsewhere/capsa"), fds, me) == "another installation"
    assert warm.refusal(_request(executable="/usr/bin/python3"), fds, me) == "another installation"


def test_code_stamps_notice_a_change() -> None:
    stamps = warm.code_stamps()
    assert any(p.endswith("capsa/engine/monitor/warm.py") for p in stamps)
    assert not warm.code_changed(stamps)
    path = next(iter(stamps))
    assert warm.code_changed({**stamps, path: stamps[path] - 1})
    assert warm.code_changed({"/nonexistent/capsa/x.py": 1})


def test_client_finds_the_run_root_of_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPSA_CONFIG", os.devnull)  # no capsa.toml of this machine
    monkeypatch.setenv("CAPSA_RUNROOT", "/env/run")
    sock = warm_wire.SOCKET_NAME
    assert entry._socket_path(["capsa", "ps"]) == f"/env/run/{sock}"
    assert entry._socket_path(["capsa", "--runroot", "/flag", "ps"]) == f"/flag/{sock}"
    assert entry._socket_path(["capsa", "-D", "--runroot=/eq", "ps", "-a"]) == f"/eq/{sock}"
    assert entry._socket_path(["capsa", "--root", "/r", "ps"]) == f"/env/run/{sock}"
    assert entry._socket_path(["capsa", "login", "reg"]) is None  # reads /dev/tty
    assert entry._socket_path(["capsa", "--runroot", "relative", "ps"]) is None  # cold: says why
