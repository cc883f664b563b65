"""Writing to the standard streams as ``click.echo`` does, without importing click.

The listing commands (``ps``, ``images``, ``volume ls``) print through here both when
click runs them and on the fast path (``capsa.cli.fastpath``) that starts without
click, so the bytes are the same either way. For text, ``click.echo``: adds the
newline, removes ANSI escape sequences when the stream is not a terminal, writes to a
UTF-8 wrapper when the stream's encoding is ASCII, and flushes.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import BinaryIO, TextIO

_ANSI = r"\033\[[0-?]*[ -/]*[@-~]"  # click._compat._ansi_re


def setup_streams() -> None:
    """A name or label that is not UTF-8 prints as the bytes it was (as Docker's CLI
    writes them), whatever the locale's strictness."""
    if sys.stdout is not None and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")


def echo(text: str = "", err: bool = False) -> None:
    """``click.echo(text, err=err)`` for a string."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    out = text + "\n"
    if "\033" in out and not _isatty(stream):
        import re

        out = re.sub(_ANSI, "", out)
    _writable(stream).write(out)
    stream.flush()


def echo_lines(lines: Iterable[str]) -> None:
    """Each line as ``echo`` would print it, in one write: those made before one that
    fails are printed before the error goes on."""
    done: list[str] = []
    try:
        for line in lines:
            done.append(line)
    finally:
        if done:
            echo("\n".join(done))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except Exception:
        return False


def _writable(stream: TextIO) -> TextIO:
    """``stream``, or a UTF-8 wrapper of its buffer when its encoding is ASCII (click
    counts that as misconfigured)."""
    import codecs

    try:
        ascii_stream = codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "ascii"
    except LookupError:
        ascii_stream = False
    buffer = getattr(stream, "buffer", None) if ascii_stream else None
    if buffer is None:
        return stream
    return _utf8_wrapper(stream, buffer)


def _utf8_wrapper(stream: TextIO, buffer: BinaryIO) -> TextIO:
    import io

    held = _wrappers.get(id(stream))
    if held is not None and held[0] is stream:
        return held[1]
    stream.flush()
    wrapper = io.TextIOWrapper(buffer, "utf-8", "replace", line_buffering=True)
    _wrappers[id(stream)] = (stream, wrapper)  # kept: collecting it would close the buffer
    return wrapper


_wrappers: dict[int, tuple[TextIO, TextIO]] = {}
