"""What the CLI writes to its output and how it notices a reader gone: ``events`` on a
closed pipe, the progress display of a ``run`` that pulls nothing."""

from __future__ import annotations

import os
import pty
import socket

import pytest

from capsa.cli import monitoring
from capsa.cli.progress import BarProgress
from capsa.progress import ProgressEvent


def test_a_pipe_whose_reader_exited_is_gone() -> None:
    r, w = os.pipe()
    try:
        assert not monitoring._reader_gone(w)
        os.close(r)
        assert monitoring._reader_gone(w)
    finally:
        os.close(w)


def test_a_socket_whose_peer_closed_is_gone() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        assert not monitoring._reader_gone(ours.fileno())
        theirs.close()
        assert monitoring._reader_gone(ours.fileno())


def test_a_hung_up_terminal_is_gone() -> None:
    master, slave = pty.openpty()
    try:
        assert not monitoring._reader_gone(slave)
        os.close(master)
        master = -1
        assert monitoring._reader_gone(slave)
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)


def test_a_regular_file_is_never_gone(tmp_path: os.PathLike[str]) -> None:
    with open(os.path.join(tmp_path, "out"), "w") as f:
        assert not monitoring._reader_gone(f.fileno())


def test_bars_write_nothing_until_there_is_progress(capfd: pytest.CaptureFixture[str]) -> None:
    bars = BarProgress()
    bars.close()
    assert capfd.readouterr() == ("", "")
    bars.emit(ProgressEvent("abc", "Downloading", 1, 10))  # after close: still nothing
    assert capfd.readouterr() == ("", "")


def test_bars_start_with_the_first_event(capfd: pytest.CaptureFixture[str]) -> None:
    bars = BarProgress()
    bars.emit(ProgressEvent("abc", "Downloading", 1, 10))
    bars.emit(ProgressEvent("abc", "Pull complete", 10, 10, True))
    bars.close()
    assert "abc" in capfd.readouterr().out


def test_an_output_that_is_no_file_is_never_gone() -> None:
    import io

    assert monitoring._fileno(io.StringIO()) == -1
    assert not monitoring._reader_gone(-1)
