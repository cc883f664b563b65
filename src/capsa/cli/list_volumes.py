"""``capsa volume ls``: the command's body, without click.

``capsa.cli.volumes`` declares the flags for click and ``capsa.cli.fastpath`` parses
the same flags on a cold start; both call ``ls`` here (see
``capsa.cli.list_containers``).
"""

from __future__ import annotations

from capsa.cli import output, render
from capsa.syntax.filters import parse_filters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.app import App
    from capsa.engine.volumes.types import Volume


def ls(
    app: App, quiet: bool = False, filters: tuple[str, ...] = (), fmt: str | None = None
) -> None:
    """List volumes."""
    volumes = sorted(app.engine.volumes.list(parse_filters(filters)), key=lambda v: natural(v.name))
    if quiet:
        output.echo_lines(v.name for v in volumes)
        return
    if fmt and fmt != "table":
        render.render_format(fmt, [_row(v) for v in volumes], {"Name": "VOLUME NAME"})
        return
    render.print_table(["DRIVER", "VOLUME NAME"], [[v.driver, v.name] for v in volumes])


_DIGITS = frozenset("0123456789")


def natural(name: str) -> list[Any]:
    """Sort key putting "v2" before "v10", as the docker CLI's ``sortorder.NaturalLess``:
    ``re.split(r"([0-9]+)", name)`` with the runs of digits as numbers (without ``re``)."""
    parts = [""]
    digits = False  # the last part is a run of digits
    for c in name:
        if (c in _DIGITS) != digits:
            parts.append("")
            digits = not digits
        parts[-1] += c
    if digits:
        parts.append("")
    return [int(part) if part[:1].isdigit() else part for part in parts]


def _row(v: Volume) -> dict[str, Any]:
    """The fields ``volume ls --format`` knows, rendered as docker's formatter does."""
    return {
        "Availability": "N/A",
        "Driver": v.driver,
        "Group": "N/A",
        "Labels": ",".join(f"{k}={val}" for k, val in sorted(v.labels.items())),
        "Links": "N/A",
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": v.scope,
        "Size": "N/A",
        "Status": "N/A",
    }
