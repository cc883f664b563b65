"""json-file container logs: the writer the monitor uses.

One JSON object a line, as Docker writes it::

    {"log":"text\\n","stream":"stdout","time":"2026-11-28T16:20:01.123456789Z"}

A line longer than 16 KiB becomes several entries, all but the last without a trailing
newline; so does a partial line flushed at end of stream. The current file NAME is
rotated to NAME.1 ... NAME.<max_file - 1> (NAME.1 the newest, ``.gz`` when compressed)
before a write would take it past ``max_size``.

The writer runs in every container's monitor: this module imports json, os and time
only (all imported by json already); gzip when a rotated file is compressed. The reader
behind ``capsa logs`` lives in ``capsa.engine.containers.log_reader``; its names are re-exported
here lazily, so that importing this module never loads it. The ``--log-opt`` values
(``max-size``, ``max-file``, ``compress``) are read into a ``LogConfig`` by
``capsa.syntax.policies.parse_log_opts``.
"""

from __future__ import annotations

import json
import os
import time

from capsa.errors import InvalidArgument, os_reason
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.log_reader import LogEntry as LogEntry
    from capsa.engine.containers.log_reader import format_entry as format_entry
    from capsa.engine.containers.log_reader import read_logs as read_logs

MAX_LINE = 16 * 1024  # longest "log" text of one entry, newline excluded
STREAMS = ("stdout", "stderr")
_encode_str = json.encoder.encode_basestring
# names of capsa.engine.containers.log_reader still importable from here
_READER_NAMES = frozenset({"LogEntry", "read_logs", "format_entry"})


def __getattr__(name: str) -> object:
    """The reader's names, imported on first use only (the monitor never needs them)."""
    if name not in _READER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from capsa.engine.containers import log_reader

    return getattr(log_reader, name)


@record
class LogConfig:
    max_size: int = 10 * 1024 * 1024  # bytes; 0 = unlimited (no rotation)
    max_file: int = 5
    compress: bool = False


class LogWriter:
    """Appends a container's output to ``path`` as json-file entries, rotating it.

    I/O errors never reach the monitor: the entries are dropped (whole: never a torn
    line, as a full disk could leave) and counted in ``dropped``, the reason kept in
    ``last_error``.
    """

    def __init__(self, path: str, config: LogConfig) -> None:
        self.path = path
        self.config = config
        self.dropped = 0
        self.last_error = ""
        self._fd = _open_append(path)
        self._size = os.fstat(self._fd).st_size
        self._partial: dict[str, bytes] = {}
        self._last_ns = 0
        self._second = -1
        self._prefix = ""

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` as read from ``stream``'s pipe or pty; keeps a partial last line."""
        if stream not in STREAMS:
            raise InvalidArgument(f"unknown log stream {stream!r}")
        pieces, rest = split_lines(self._partial.pop(stream, b"") + data)
        if rest:
            self._partial[stream] = rest
        if pieces:
            self._append(stream, pieces)

    def flush_partial(self, stream: str | None = None) -> None:
        """Log the partial line kept for ``stream`` (default: every stream), without a
        newline: at the end of that stream."""
        for name in [stream] if stream is not None else list(self._partial):
            rest = self._partial.pop(name, b"")
            if rest:
                self._append(name, [rest])

    def close(self) -> None:
        if self._fd >= 0:
            self.flush_partial()
            os.close(self._fd)
            self._fd = -1

    def _stamp(self) -> str:
        """Now in RFC 3339 with nanoseconds, later than the previous stamp: readers
        following rotations rely on strictly increasing times."""
        ns = self._last_ns = max(time.time_ns(), self._last_ns + 1)
        second, nanos = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{nanos:09d}Z"

    def _append(self, stream: str, pieces: list[bytes]) -> None:
        lines = [
            f'{{"log":{_encode_str(piece.decode("utf-8", "replace"))},'
            f'"stream":"{stream}","time":"{self._stamp()}"}}\n'.encode()
            for piece in pieces
        ]
        try:
            self._write_lines(lines)
        except OSError as e:
            self.dropped += len(lines)
            self.last_error = f"log file {self.path}: {os_reason(e)}"

    def _write_lines(self, lines: list[bytes]) -> None:
        """Write ``lines``, rotating before one would overflow; written ones leave ``lines``."""
        limit, size = self.config.max_size, self._size
        batch: list[bytes] = []
        for line in list(lines):
            if limit and size and size + len(line) > limit:
                self._write(b"".join(batch))
                del lines[: len(batch)]
                batch, size = [], 0
                self._rotate()
            batch.append(line)
            size += len(line)
        self._write(b"".join(batch))
        lines.clear()

    def _write(self, data: bytes) -> None:
        """Write whole lines or none: what a full disk cut short is taken back (this
        writer is the file's only one), so that no torn line joins the next one."""
        start, view = self._size, memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                self._size += n
                view = view[n:]
        except OSError:
            if self._size != start:
                os.ftruncate(self._fd, start)
                self._size = start
            raise

    def _rotate(self) -> None:
        path, keep = self.path, self.config.max_file
        if keep < 2:  # overwrite: a new inode, so that followers notice
            fd = _open_append(path + ".new", truncate=True)
            os.replace(path + ".new", path)
        else:
            ext = ".gz" if self.config.compress else ""
            _unlink(f"{path}.{keep - 1}{ext}")
            last = next(i for i in range(1, keep) if not os.path.exists(f"{path}.{i}{ext}"))
            for i in range(last - 1, 0, -1):
                _rename(f"{path}.{i}{ext}", f"{path}.{i + 1}{ext}")
            os.rename(path, f"{path}.1")
            fd = _open_append(path)
        os.close(self._fd)
        self._fd, self._size = fd, 0
        if keep >= 2 and self.config.compress:
            try:
                _gzip_file(f"{path}.1")
            except OSError as e:  # keep the plain file; readers take either
                self.last_error = f"compress {path}.1: {os_reason(e)}"
                _unlink(f"{path}.1.gz.tmp")


def split_lines(buf: bytes) -> tuple[list[bytes], bytes]:
    """Entry texts in ``buf`` (lines with their newline, 16 KiB pieces) and the rest."""
    pieces: list[bytes] = []
    start, n = 0, len(buf)
    while start < n:
        nl = buf.find(b"\n", start, start + MAX_LINE + 1)
        if nl >= 0:
            pieces.append(buf[start : nl + 1])
            start = nl + 1
        elif n - start > MAX_LINE:
            cut = _utf8_boundary(buf, start + MAX_LINE)
            pieces.append(buf[start:cut])
            start = cut
        else:
            break
    return pieces, buf[start:]


def _utf8_boundary(buf: bytes, pos: int) -> int:
    """``pos`` moved back so as not to split a UTF-8 sequence (if ``buf`` is UTF-8)."""
    for back in range(4):
        if buf[pos - back] & 0xC0 != 0x80:
            return pos - back
    return pos


def _open_append(path: str, truncate: bool = False) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    return os.open(path, flags | (os.O_TRUNC if truncate else 0), 0o640)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rename(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        pass


def _gzip_file(path: str) -> None:
    """``path`` -> ``path.gz`` (complete before it appears), then ``path`` removed."""
    import gzip

    tmp = path + ".gz.tmp"
    with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.replace(tmp, path + ".gz")
    os.unlink(path)
