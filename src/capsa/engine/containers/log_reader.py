"""json-file container logs: the reader behind ``capsa logs``.

Reads what ``capsa.engine.containers.logs.LogWriter`` writes: the current file NAME and its
rotations NAME.1 ... (NAME.1 the newest, plain or ``.gz``), with tail, since/until and
follow across rotations. Docker's ``--since``/``--until`` times are read by
``capsa.syntax.durations``, which parses the entries' RFC 3339 times too.
"""

from __future__ import annotations

import functools
import json
import os
import time

from capsa.record import record
from capsa.syntax.durations import rfc3339_ns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator

_BLOCK = 64 * 1024


@record
class LogEntry:
    stream: str
    text: str
    time: str  # RFC 3339, as stored
    timestamp: float  # epoch seconds, for filtering


class _Until(Exception):
    """An entry later than ``until``: reading is over."""


def read_logs(
    path: str,
    *,
    tail: int | None = None,
    since: float | None = None,
    until: float | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    poll_interval: float = 0.1,
) -> Iterator[LogEntry]:
    """Entries of the log at ``path``, rotated files (oldest first) then the current one.

    ``tail=N`` gives the last N entries within since/until (None or negative: all).
    Reading ends at the first entry after ``until``. With ``follow`` the reader polls
    for new entries, across rotations, until ``stop()`` is true; it reads once more
    after that, so ``stop`` may simply say "the container has exited".
    """
    reader = _Reader(path, since, until)
    try:
        yield from reader.history(tail)
        if follow:
            yield from reader.follow(stop, poll_interval)
    except _Until:
        return
    finally:
        if reader.cursor is not None:
            reader.cursor.close()


class _Reader:
    """One reading of a log: what is there, then (with follow) what gets appended.

    File names move while a writer rotates, and a file can be seen next to its .gz
    copy; so rotated files are ordered and picked by their first entry's time (the
    writer's times strictly increase), compared with the newest entry read so far.
    """

    def __init__(self, path: str, since: float | None, until: float | None) -> None:
        self.path, self.since, self.until = path, since, until
        self.cursor: _Cursor | None = None  # the current file
        self.last = -1  # time (ns) of the newest entry read

    def history(self, tail: int | None) -> Iterator[LogEntry]:
        self.cursor = _Cursor.open(self.path)
        rotated = _open_rotated(self.path, self.cursor)
        try:
            if tail is not None and tail >= 0:
                if self.cursor is not None:
                    self.cursor.offset = self.cursor.complete_end()
                yield from self._tail(tail, rotated)
            else:
                yield from self._unseen(rotated)
                if self.cursor is not None:  # up to its size now: a busy writer never waits
                    yield from self._select(self.cursor.lines(os.fstat(self.cursor.fd).st_size))
        finally:
            _close_all(rotated)

    def follow(self, stop: Callable[[], bool] | None, poll_interval: float) -> Iterator[LogEntry]:
        while True:
            stopping = stop is not None and stop()
            yield from self._drain()
            if stopping:
                return
            time.sleep(poll_interval)

    def _select(self, lines: Iterable[bytes]) -> Iterator[LogEntry]:
        for line in lines:
            decoded = _decode(line)
            if decoded is None:
                continue
            self.last, entry = decoded
            if self.until is not None and entry.timestamp > self.until:
                raise _Until
            if self.since is None or entry.timestamp >= self.since:
                yield entry

    def _tail(self, n: int, rotated: list[_Rotated]) -> list[LogEntry]:
        """The last ``n`` entries within since/until: newest files first, read lazily."""
        sources = [self.cursor.backward()] if self.cursor is not None else []
        sources += [src.backward() for src in reversed(rotated)]
        decoded = (d for lines in sources for d in map(_decode, lines) if d is not None)
        picked: list[LogEntry] = []
        for ns, entry in decoded:
            self.last = max(self.last, ns)
            if len(picked) >= n or (self.since is not None and entry.timestamp < self.since):
                break
            if self.until is None or entry.timestamp <= self.until:
                picked.append(entry)
        return picked[::-1]

    def _unseen(self, rotated: list[_Rotated]) -> Iterator[LogEntry]:
        """Entries of rotated files started after the newest entry read, and before
        the current file (if a rotation moved it among them, it is left for later)."""
        first = self.cursor.first_ns() if self.cursor is not None else None
        cutoff = first if first is not None else 1 << 80
        starts = [src.first_ns() for src in rotated]
        order = sorted((ns, i) for i, ns in enumerate(starts) if ns is not None and ns < cutoff)
        for ns, i in order:
            if ns > self.last and not rotated[i].ends_before(self.since):
                yield from self._select(rotated[i].forward())

    def _drain(self) -> Iterator[LogEntry]:
        """Everything new, switching to the new current file after a rotation."""
        while True:
            if self.cursor is None:
                self.cursor = _Cursor.open(self.path)
                if self.cursor is None:
                    return
                rotated = _open_rotated(self.path, self.cursor)
                try:
                    yield from self._unseen(rotated)
                finally:
                    _close_all(rotated)
            yield from self._select(self.cursor.lines())
            if not self.cursor.replaced(self.path):
                return
            yield from self._select(self.cursor.lines())  # written before the rename
            self.cursor.close()
            self.cursor = None


class _Cursor:
    """Complete lines of a growing plain file, from ``offset`` on."""

    def __init__(self, fd: int) -> None:
        self.fd, self.offset, self.pending = fd, 0, b""

    @classmethod
    def open(cls, name: str) -> _Cursor | None:
        try:
            return cls(os.open(name, os.O_RDONLY | os.O_CLOEXEC))
        except FileNotFoundError:
            return None

    def close(self) -> None:
        os.close(self.fd)

    def lines(self, end: int | None = None) -> Generator[bytes, None, None]:
        """Complete lines from ``offset`` to the end of the file (or to ``end``)."""
        size = os.fstat(self.fd).st_size
        if size < self.offset:  # truncated by another writer
            self.offset, self.pending = 0, b""
        stop = size if end is None else end
        while self.offset < stop:
            chunk = os.pread(self.fd, min(_BLOCK, stop - self.offset), self.offset)
            if not chunk:
                return
            self.offset += len(chunk)
            data = self.pending + chunk
            cut = data.rfind(b"\n") + 1
            self.pending = data[cut:]
            yield from filter(None, data[:cut].split(b"\n"))

    def first_ns(self) -> int | None:
        return _first_ns(_Cursor(self.fd).lines())

    def complete_end(self) -> int:
        """Offset just after the last newline (a writer may be mid-line)."""
        size = os.fstat(self.fd).st_size
        start = max(0, size - _BLOCK)
        return start + os.pread(self.fd, size - start, start).rfind(b"\n") + 1

    def backward(self) -> Iterator[bytes]:
        """Lines before ``offset``, newest first."""
        pos, rest = self.offset, b""
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            lines = (os.pread(self.fd, step, pos) + rest).split(b"\n")
            rest = lines[0]
            yield from filter(None, reversed(lines[1:]))
        if rest:
            yield rest

    def replaced(self, name: str) -> bool:
        """Whether ``name`` is now another file (rotated or overwritten)."""
        try:
            st = os.stat(name)
        except FileNotFoundError:  # mid-rotation: look again at the next poll
            return False
        return (st.st_dev, st.st_ino) != _file_id(self.fd)


class _Rotated:
    """A rotated file, NAME.<i> or NAME.<i>.gz, opened before it can move again."""

    def __init__(self, fd: int, gz: bool) -> None:
        self.fd, self.gz = fd, gz

    def close(self) -> None:
        os.close(self.fd)

    def forward(self) -> Generator[bytes, None, None]:
        if not self.gz:
            yield from _Cursor(self.fd).lines()
            return
        import gzip

        os.lseek(self.fd, 0, os.SEEK_SET)
        try:
            with open(self.fd, "rb", closefd=False) as raw, gzip.open(raw) as lines:
                yield from lines
        except (OSError, EOFError):  # truncated or corrupt archive: keep what was read
            return

    def backward(self) -> Iterator[bytes]:
        if self.gz:  # no seeking in gzip: decompress (only when reached)
            yield from reversed(list(self.forward()))
            return
        cursor = _Cursor(self.fd)
        cursor.offset = os.fstat(self.fd).st_size
        yield from cursor.backward()

    def first_ns(self) -> int | None:
        return _first_ns(self.forward())

    def ends_before(self, since: float | None) -> bool:
        """Whether every entry is older than ``since`` (known cheaply for plain files)."""
        if since is None or self.gz:
            return False
        last = next(filter(None, map(_decode, self.backward())), None)
        return last is not None and last[1].timestamp < since


def _open_rotated(path: str, current: _Cursor | None) -> list[_Rotated]:
    """NAME.1, NAME.2, ... (plain or .gz), oldest first, each file once.

    A rotating writer renames NAME.k to NAME.k+1 from the top down, so at most one
    number is missing at a time, and files move up while we scan upwards: every file
    is seen (some twice: dropped by inode, like ``current`` if it was rotated). The
    order is only a guess while rotations happen: ``_Reader`` goes by entry times.
    """
    found: list[_Rotated] = []
    seen: set[tuple[int, int]] = set()
    own = _file_id(current.fd) if current is not None else None
    i = missing = 0
    while missing < 2:  # one gap is a rename in flight, two in a row the end
        i += 1
        src = _open_first(f"{path}.{i}", f"{path}.{i}.gz")
        missing = missing + 1 if src is None else 0
        if src is None:
            continue
        key = _file_id(src.fd)
        if key in seen or key == own:
            src.close()
        else:
            seen.add(key)
            found.append(src)
    return found[::-1]


def _open_first(*names: str) -> _Rotated | None:
    for name in names:
        try:
            return _Rotated(os.open(name, os.O_RDONLY | os.O_CLOEXEC), name.endswith(".gz"))
        except FileNotFoundError:
            continue
    return None


def _file_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _close_all(sources: list[_Rotated]) -> None:
    for src in sources:
        src.close()


def _decode(line: bytes) -> tuple[int, LogEntry] | None:
    """(time in ns, entry) of one json-file line; None for a corrupt line."""
    try:
        obj = json.loads(line)
        stamp = obj["time"]
        if len(stamp) == 30 and stamp[19] == "." and stamp[29] == "Z":  # as we write it
            ns = _utc_seconds(stamp[:19]) * 1_000_000_000 + int(stamp[20:29])
        else:
            ns = rfc3339_ns(stamp)
        return ns, LogEntry(obj.get("stream", "stdout"), obj["log"], stamp, ns / 1e9)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _first_ns(lines: Generator[bytes, None, None]) -> int | None:
    try:
        first = next(filter(None, map(_decode, lines)), None)
    finally:
        lines.close()
    return first[0] if first is not None else None


def format_entry(entry: LogEntry, timestamps: bool) -> bytes:
    """What ``capsa logs`` prints for ``entry``; ``-t`` prefixes the time and a space."""
    text = entry.text.encode("utf-8", "replace")
    return f"{entry.time} ".encode() + text if timestamps else text


@functools.lru_cache(maxsize=16)
def _utc_seconds(text: str) -> int:
    """Epoch seconds of "YYYY-MM-DDTHH:MM:SS" in UTC (cached: entries come in runs)."""
    return rfc3339_ns(text + "Z") // 1_000_000_000
