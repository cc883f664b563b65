"""json-file logs: writer (lines, partial lines, rotation, compression) and reader."""

from __future__ import annotations

import calendar
import gzip
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capsa.engine.containers.logs import (
    LogConfig,
    LogEntry,
    LogWriter,
    format_entry,
    read_logs,
)
from capsa.errors import InvalidArgument
from capsa.syntax.durations import parse_time_arg

UNLIMITED = LogConfig(max_size=0, max_file=1)
TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z")


def raw_entries(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def texts(path: Path, **kwargs: object) -> list[str]:
    return [e.text for e in read_logs(str(path), **kwargs)]  # type: ignore[arg-type]


def write_lines(path: Path, config: LogConfig, lines: list[str], stream: str = "stdout") -> None:
    writer = LogWriter(str(path), config)
    for line in lines:
        writer.write(stream, line.encode())
    writer.close()


def fake_log(path: Path, stamps: list[str], stream: str = "stdout") -> None:
    """A log written by hand: entry i says "line i" at stamps[i]."""
    with path.open("a") as f:
        for i, stamp in enumerate(stamps):
            f.write(json.dumps({"log": f"line {i}\n", "stream": stream, "time": stamp}) + "\n")


# -- writer: lines ------------------------------------------------------------------


def test_lines_split_across_writes(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stdout", b"hel")
    writer.write("stdout", b"lo\nwor")
    assert [e["log"] for e in raw_entries(log)] == ["hello\n"]
    writer.write("stdout", b"ld\n\nlast")
    writer.close()
    entries = raw_entries(log)
    assert [e["log"] for e in entries] == ["hello\n", "world\n", "\n", "last"]
    assert {e["stream"] for e in entries} == {"stdout"}
    assert all(TIME_RE.fullmatch(e["time"]) for e in entries)
    assert list(entries[0]) == ["log", "stream", "time"]


def test_partial_line_flushed_at_eof(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stderr", b"no newline")
    assert log.read_bytes() == b""
    writer.flush_partial()
    writer.flush_partial()  # nothing left: no empty entry
    writer.close()
    ((entry),) = raw_entries(log)
    assert (entry["log"], entry["stream"]) == ("no newline", "stderr")


def test_flush_partial_of_one_stream(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stdout", b"out")
    writer.write("stderr", b"err")
    writer.flush_partial("stdout")
    writer.write("stderr", b"-more\n")
    writer.close()
    assert [(e["stream"], e["log"]) for e in raw_entries(log)] == [
        ("stdout", "out"),
        ("stderr", "err-more\n"),
    ]


def test_streams_keep_their_own_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stdout", b"out-a")
    writer.write("stderr", b"err-a\nerr-")
    writer.write("stdout", b"-b\n")
    writer.write("stderr", b"b\n")
    writer.close()
    got = [(e["stream"], e["log"]) for e in raw_entries(log)]
    assert got == [("stderr", "err-a\n"), ("stdout", "out-a-b\n"), ("stderr", "err-b\n")]


def test_unknown_stream_is_refused(tmp_path: Path) -> None:
    writer = LogWriter(str(tmp_path / "json.log"), UNLIMITED)
    with pytest.raises(InvalidArgument):
        writer.write("stdin", b"x\n")
    writer.close()


def test_long_lines_split_at_16k(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stdout", b"a" * 40000 + b"\n")
    writer.write("stdout", b"b" * 16384 + b"\n")  # fits exactly: one entry
    writer.close()
    sizes = [(len(e["log"]), e["log"].endswith("\n")) for e in raw_entries(log)]
    assert sizes == [(16384, False), (16384, False), (40000 - 32768 + 1, True), (16385, True)]
    assert "".join(texts(log)) == "a" * 40000 + "\n" + "b" * 16384 + "\n"


def test_partial_buffer_flushed_when_over_16k(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stdout", b"c" * 16384)
    assert raw_entries(log) == []  # exactly 16 KiB: a newline may still come
    writer.write("stdout", b"c" * 100)
    assert [len(e["log"]) for e in raw_entries(log)] == [16384]
    writer.close()
    assert [len(e["log"]) for e in raw_entries(log)] == [16384, 100]


def test_16k_split_keeps_utf8_characters_whole(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    text = "x" + "é" * 10000 + "\n"  # odd offset: byte 16384 is inside a character
    write_lines(log, UNLIMITED, [text])
    pieces = [e["log"] for e in raw_entries(log)]
    assert len(pieces) == 2 and "\ufffd" not in "".join(pieces)
    assert "".join(pieces) == text


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stdout", b"bad \xff\xfe byte\n")
    writer.close()
    assert texts(log) == ["bad \ufffd\ufffd byte\n"]


def test_reopen_appends(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    write_lines(log, UNLIMITED, ["one\n"])
    write_lines(log, UNLIMITED, ["two\n"])
    assert texts(log) == ["one\n", "two\n"]


# -- writer: rotation ---------------------------------------------------------------


def numbered(n: int, width: int = 40) -> list[str]:
    return [f"{i:06d} {'x' * width}\n" for i in range(n)]


def test_rotation_keeps_max_file_files(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    lines = numbered(200)
    write_lines(log, LogConfig(max_size=2000, max_file=3), lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["json.log", "json.log.1", "json.log.2"]
    for p in tmp_path.iterdir():
        assert 0 < p.stat().st_size <= 2000
    got = texts(log)
    assert got == lines[-len(got) :]  # a contiguous suffix, oldest file first
    assert len(got) > 2 * 2000 // 120  # two full rotated files and the current one


def test_rotation_counts_an_existing_file(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    config = LogConfig(max_size=1000, max_file=2)
    write_lines(log, config, numbered(5))
    write_lines(log, config, numbered(5))
    assert log.stat().st_size <= 1000
    assert (tmp_path / "json.log.1").exists()


def test_entry_larger_than_max_size_goes_to_an_empty_file(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    write_lines(log, LogConfig(max_size=100, max_file=3), ["y" * 300 + "\n", "z\n"])
    assert texts(log) == ["y" * 300 + "\n", "z\n"]
    assert raw_entries(log)[0]["log"] == "z\n"


def test_max_file_1_overwrites_the_single_file(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    lines = numbered(100)
    write_lines(log, LogConfig(max_size=1000, max_file=1), lines)
    assert [p.name for p in tmp_path.iterdir()] == ["json.log"]
    assert log.stat().st_size <= 1000
    got = texts(log)
    assert got and got == lines[-len(got) :]


def test_compressed_rotation(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    lines = numbered(200)
    write_lines(log, LogConfig(max_size=2000, max_file=4, compress=True), lines)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["json.log", "json.log.1.gz", "json.log.2.gz", "json.log.3.gz"]
    with gzip.open(tmp_path / "json.log.1.gz") as f:
        rotated = [json.loads(line)["log"] for line in f]
    got = texts(log)
    assert got == lines[-len(got) :]
    assert rotated == got[-len(rotated) - len(raw_entries(log)) : -len(raw_entries(log))]


def test_write_errors_are_counted_not_raised(tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    writer = LogWriter(str(folder / "json.log"), LogConfig(max_size=50, max_file=2))
    writer.write("stdout", b"first line that fills the file\n")
    (folder / "json.log").unlink()
    folder.rmdir()
    writer.write("stdout", b"second\n")  # rotation cannot rename: dropped
    writer.close()
    assert writer.dropped == 1
    assert "json.log" in writer.last_error


# -- reader -------------------------------------------------------------------------


def test_missing_log_reads_as_empty(tmp_path: Path) -> None:
    assert list(read_logs(str(tmp_path / "none.log"))) == []
    assert list(read_logs(str(tmp_path / "none.log"), tail=3)) == []


def test_reader_skips_corrupt_lines(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    fake_log(log, ["2026-01-01T00:00:00.000000001Z"])
    with log.open("a") as f:
        f.write("not json\n{}\n")
    fake_log(log, ["2026-01-01T00:00:01Z"])
    assert texts(log) == ["line 0\n", "line 0\n"]


def test_entries_carry_stream_time_and_timestamp(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    fake_log(log, ["2026-11-28T16:20:01.123456789Z"], stream="stderr")
    (entry,) = read_logs(str(log))
    assert entry.stream == "stderr" and entry.time == "2026-11-28T16:20:01.123456789Z"
    assert entry.timestamp == pytest.approx(
        calendar.timegm((2026, 11, 28, 16, 20, 1)) + 0.123456789
    )
    assert entry.timestamp == parse_time_arg(entry.time)  # fast path == general parser


def test_reads_rotated_files_in_order(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    lines = numbered(60)
    write_lines(log, LogConfig(max_size=1500, max_file=100), lines)
    assert (tmp_path / "json.log.3").exists()
    assert texts(log) == lines


def test_tail_across_files(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    lines = numbered(60)
    write_lines(log, LogConfig(max_size=1500, max_file=100, compress=True), lines)
    current = len(raw_entries(log))
    assert texts(log, tail=3) == lines[-3:]
    assert texts(log, tail=current + 5) == lines[-current - 5 :]
    assert texts(log, tail=1000) == lines
    assert texts(log, tail=0) == []
    assert texts(log, tail=-1) == lines


def test_tail_leaves_older_files_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "json.log"
    write_lines(log, LogConfig(max_size=1500, max_file=100, compress=True), numbered(60))
    opened: list[object] = []
    real_open = gzip.open

    def counting_open(*args: object, **kwargs: object) -> object:
        opened.append(args)
        return real_open(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(gzip, "open", counting_open)
    assert len(texts(log, tail=2)) == 2
    assert opened == []
    assert len(texts(log, tail=len(raw_entries(log)) + 1)) == len(raw_entries(log)) + 1
    assert len(opened) == 1  # the newest rotated file only


STAMPS = [f"2026-01-01T00:00:{s:02d}.5Z" for s in range(10)]
T0 = calendar.timegm((2026, 1, 1, 0, 0, 0))


def test_since_and_until(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    fake_log(log, STAMPS)
    assert texts(log, since=T0 + 7) == ["line 7\n", "line 8\n", "line 9\n"]
    assert texts(log, until=T0 + 2) == ["line 0\n", "line 1\n"]
    assert texts(log, since=T0 + 3, until=T0 + 5.5) == ["line 3\n", "line 4\n", "line 5\n"]
    assert texts(log, since=T0 + 100) == []


def test_tail_within_since_and_until(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    fake_log(log, STAMPS)
    assert texts(log, tail=2, until=T0 + 6) == ["line 4\n", "line 5\n"]
    assert texts(log, tail=5, since=T0 + 8) == ["line 8\n", "line 9\n"]


def test_since_across_rotated_files(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    fake_log(tmp_path / "json.log.2", STAMPS[:3])
    fake_log(tmp_path / "json.log.1", STAMPS[3:6])
    fake_log(log, STAMPS[6:])
    stamps = [e.time for e in read_logs(str(log), since=T0 + 4)]
    assert stamps == STAMPS[4:]


# -- follow -------------------------------------------------------------------------


def stop_after(actions: list[Callable[[], None]]) -> Callable[[], bool]:
    """A stop() that runs one action per poll, then says stop."""
    pending = list(actions)

    def stop() -> bool:
        if pending:
            pending.pop(0)()
            return False
        return True

    return stop


def follow(log: Path, stop: Callable[[], bool], **kwargs: object) -> Iterator[LogEntry]:
    return read_logs(str(log), follow=True, stop=stop, poll_interval=0, **kwargs)  # type: ignore[arg-type]


def test_follow_reads_what_is_appended(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stdout", b"before\n")
    actions = [
        lambda: writer.write("stdout", b"one\n"),
        lambda: writer.write("stdout", b"tw"),
        lambda: writer.write("stdout", b"o\n"),
        lambda: None,
        lambda: writer.write("stderr", b"three\n"),
    ]
    got = [e.text for e in follow(log, stop_after(actions))]
    writer.close()
    assert got == ["before\n", "one\n", "two\n", "three\n"]


def test_follow_reads_once_more_after_stop(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)

    def stop() -> bool:  # the container writes its last words, then exits
        writer.write("stdout", b"last\n")
        writer.close()
        return True

    assert [e.text for e in follow(log, stop)] == ["last\n"]


def test_follow_with_tail_starts_at_the_end(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    for line in numbered(5):
        writer.write("stdout", line.encode())
    got = [
        e.text for e in follow(log, stop_after([lambda: writer.write("stdout", b"new\n")]), tail=1)
    ]
    writer.close()
    assert got == [numbered(5)[-1], "new\n"]
    assert list(follow(log, stop_after([]), tail=0)) == []


def test_follow_waits_for_the_file(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    actions = [lambda: None, lambda: write_lines(log, UNLIMITED, ["hello\n"])]
    assert [e.text for e in follow(log, stop_after(actions))] == ["hello\n"]


def test_follow_ends_after_until(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    fake_log(log, STAMPS[:3])
    forever = read_logs(str(log), follow=True, until=T0 + 1, poll_interval=0)
    assert [e.text for e in forever] == ["line 0\n"]


@pytest.mark.parametrize(
    "config",
    [
        LogConfig(max_size=600, max_file=50),
        LogConfig(max_size=600, max_file=50, compress=True),
        LogConfig(max_size=600, max_file=1),
    ],
    ids=["plain", "gzip", "single"],
)
def test_follow_across_rotations(tmp_path: Path, config: LogConfig) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), config)
    lines = numbered(120, width=10)
    batches = [lines[i : i + 4] for i in range(0, 120, 4)]  # about one rotation a poll
    batches[10] = lines[40:80]  # several rotations between two polls
    del batches[11:20]

    def act(batch: list[str]) -> Callable[[], None]:  # one write: may span rotations
        return lambda: writer.write("stdout", "".join(batch).encode())

    got = [e.text for e in follow(log, stop_after([act(b) for b in batches]))]
    writer.close()
    if config.max_file == 1:  # what was overwritten between two polls is lost
        assert got == sorted(set(got)) and got[-4:] == lines[-4:]
    else:
        assert got == lines


def test_follow_a_concurrent_writer(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), LogConfig(max_size=4000, max_file=1000))
    lines = numbered(2000)

    def produce() -> None:
        for line in lines:
            writer.write("stdout", line.encode())
        writer.close()

    thread = threading.Thread(target=produce)
    thread.start()
    got = [
        e.text
        for e in read_logs(
            str(log), follow=True, stop=lambda: not thread.is_alive(), poll_interval=0.001
        )
    ]
    thread.join()
    assert got == lines


WRITER = """
import sys
from capsa.engine.containers.logs import LogConfig, LogWriter
writer = LogWriter(sys.argv[1], LogConfig(max_size=3000, max_file=1000, compress=True))
for i in range(0, 1500, 5):
    writer.write("stderr" if i % 3 else "stdout", b"".join(b"%06d\\n" % j for j in range(i, i + 5)))
writer.close()
"""


def test_follow_a_writer_process(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(log)])
    try:
        entries = read_logs(
            str(log), follow=True, stop=lambda: proc.poll() is not None, poll_interval=0.001
        )
        got = [e.text for e in entries]
    finally:
        proc.kill()
        proc.wait()
    assert got == [f"{i:06d}\n" for i in range(1500)]


def test_times_strictly_increase_within_a_write(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    write_lines(log, UNLIMITED, ["".join(numbered(200))])
    stamps = [e["time"] for e in raw_entries(log)]
    assert len(stamps) == 200 and stamps == sorted(set(stamps))


def test_reading_stops_at_the_size_it_found(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    writer = LogWriter(str(log), UNLIMITED)
    writer.write("stdout", "".join(numbered(3000)).encode())  # several read blocks
    count = 0
    for _ in read_logs(str(log)):
        count += 1
        writer.write("stdout", b"more\n")  # a busy container
    writer.close()
    assert count == 3000


# -- format (options and time arguments: test_syntax) ---------------------------------------------


def test_format_entry() -> None:
    entry = LogEntry("stdout", "héllo\n", "2026-11-28T16:20:01.123456789Z", 0.0)
    assert format_entry(entry, False) == "héllo\n".encode()
    assert format_entry(entry, True) == "2026-11-28T16:20:01.123456789Z héllo\n".encode()


def test_writer_imports_stay_light() -> None:
    code = (
        "import sys, capsa.engine.containers.logs as l, tempfile, os\n"
        "d = tempfile.mkdtemp()\n"
        "w = l.LogWriter(os.path.join(d, 'x.log'), l.LogConfig(max_size=100, max_file=3))\n"
        "[w.write('stdout', b'some output line\\n') for _ in range(20)]\n"
        "w.close()\n"
        "bad = {'gzip', 'typing', 'dataclasses', 'datetime', 'threading', 'subprocess'}\n"
        "print(sorted(bad & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
