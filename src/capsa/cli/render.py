"""Output helpers shared by commands: tables, JSON, templates, sizes and times."""

from __future__ import annotations

import json
import sys
import time

import click

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

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
    if not stamp:
        return None
    import calendar

    try:
        return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


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
    for r in all_rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        click.echo("   ".join(cells).rstrip())


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=4))


def print_inspect(docs: list[dict[str, Any]], fmt: str | None) -> None:
    """``inspect``: the documents as a JSON array, or each through ``-f``/``--format``."""
    if fmt:
        render_format(fmt, docs)
    else:
        print_json(docs)


def fail_all(ctx: click.Context, errors: list[str]) -> None:
    """Each error on stderr, then exit 1 (docker reports all, fails once)."""
    for message in errors:
        click.echo(f"Error: {message}", err=True)
    if errors:
        ctx.exit(1)


def render_format(
    fmt: str, items: Sequence[dict[str, Any]], headers: dict[str, str] | None = None
) -> None:
    """``--format``: "json" (one JSON object per line), "table ..." or a Go template."""
    from capsa.cli import template

    if fmt == "json":
        for item in items:
            click.echo(json.dumps(item, separators=(",", ":")))
        return
    if fmt.startswith("table"):
        sys.stdout.write(template.table(fmt, list(items), headers))
        return
    tpl = template.Template(fmt)
    for item in items:
        click.echo(tpl.render(item))
