"""Output helpers shared by commands: tables, JSON, templates, sizes and times.

No click here: the listing commands' fast path (``capsa.cli.fastpath``) renders with
these too. Output goes through ``capsa.cli.output.echo`` (``click.echo``'s behaviour).
"""

from __future__ import annotations

import sys
import time

from capsa.cli.output import echo, echo_lines
from capsa.syntax.durations import human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    import click

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(size: float, precision: int = 3) -> str:
    """Docker's units.HumanSizeWithPrecision: decimal units, 3 significant digits
    ("4.26MB") by default, as most columns; ``units.HumanSize`` is precision 4 (prune's
    reclaimed space, ``system df``)."""
    i = 0
    while size >= 1000 and i < len(_UNITS) - 1:
        size /= 1000
        i += 1
    text = f"{size:.{precision}g}"
    if "e" in text:
        text = f"{size:.0f}"
    return f"{text}{_UNITS[i]}"


def parse_time(stamp: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time's date and time of day (UTC)."""
    if not stamp:
        return None
    fast = _utc_seconds(stamp[:19])
    if fast is not None:
        return fast
    import calendar

    try:
        return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _utc_seconds(text: str) -> float | None:
    """``calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))`` for the usual
    ``2024-05-01T10:00:00`` (``strptime``'s first call imports ``re``, ``locale`` and
    ``calendar``: milliseconds of a ``ps``); None for anything else."""
    if len(text) != 19 or text[4] + text[7] + text[10] + text[13] + text[16] != "--T::":
        return None
    digits = text[:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:]
    if not (digits.isascii() and digits.isdigit()):
        return None
    year, month, day = int(text[:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not (1 <= month <= 12 and hour < 24 and minute < 60 and second < 60 and year >= 1):
        return None
    if not 1 <= day <= _DAYS[month - 1] + (month == 2 and leap):
        return None
    # days since 1970-01-01 (the proleptic Gregorian calendar, as timegm)
    y = year - (month <= 2)
    era_day = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = 365 * y + y // 4 - y // 100 + y // 400 + era_day - 719468
    return float(days * 86400 + hour * 3600 + minute * 60 + second)


def ago(stamp: str | None) -> str:
    when = parse_time(stamp)
    if when is None:
        return "N/A"
    return human_duration(time.time() - when) + " ago"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded like Go's tabwriter (padding 3), as the docker CLI prints."""
    all_rows = [list(headers), *[list(r) for r in rows]]
    # tabwriter with minwidth 10 and padding 3: a column is at least 7 + 3 wide
    widths = [max(7, *(len(r[i]) for r in all_rows)) for i in range(len(headers))]
    echo_lines(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in all_rows
    )


def print_json(data: Any) -> None:
    import json

    echo(json.dumps(data, indent=4))


def print_inspect(docs: list[dict[str, Any]], fmt: str | None) -> None:
    """``inspect``: the documents as a JSON array, or each through ``-f``/``--format``."""
    if fmt:
        render_format(fmt, docs)
    else:
        print_json(docs)


def fail_all(ctx: click.Context, errors: list[str]) -> None:
    """Each error on stderr, then exit 1 (docker reports all, fails once)."""
    for message in errors:
        echo(f"Error: {message}", err=True)
    if errors:
        ctx.exit(1)


def render_format(
    fmt: str, items: Sequence[dict[str, Any]], headers: dict[str, str] | None = None
) -> None:
    """``--format``: "json" (one JSON object per line), "table ..." or a Go template."""
    if fmt == "json":
        import json

        echo_lines(json.dumps(item, separators=(",", ":")) for item in items)
        return
    from capsa.cli import template

    if fmt.startswith("table"):
        sys.stdout.write(template.table(fmt, list(items), headers) + "\n")  # as Docker's
        return
    tpl = template.Template(fmt)
    echo_lines(tpl.render(item) for item in items)
