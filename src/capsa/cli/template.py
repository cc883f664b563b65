"""Docker-style ``--format`` templates: a small, safe subset of Go's text/template.

``render("{{.ID}} {{json .Labels}}", row)`` renders one object; ``Template`` parses once
and renders many; ``table`` lays rows out in columns as ``docker ps --format 'table ...'``
does (Go's tabwriter with minimum width 10 and padding 3). Data are dicts and lists with
Docker's PascalCase keys, or objects whose public attributes are read (``.CreatedAt``
also finds ``created_at``). Nothing is evaluated as Python: a template reads fields and
calls the functions in ``capsa.cli.gotemplate.funcs``, nothing else.

Deliberate differences from Go: numbers compare across int and float, ``len`` counts
characters rather than bytes, quoted strings may hold a raw newline (docker's CLI turns
a typed ``\\n`` into one before parsing), and ``json`` keeps dict order.

This module is the front; the machinery is in ``capsa.cli.gotemplate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capsa.cli.gotemplate import values as _values
from capsa.cli.gotemplate.tabwriter import tabwrite
from capsa.cli.gotemplate.template import Template

__all__ = ["Template", "format_rows", "render", "table", "tabwrite"]

# Go's float and string printing, under the names they had here before the split
_go_float = _values.go_float
_go_quote = _values.go_quote


def render(template: str, data: Any) -> str:
    """Render ``template`` once against ``data``."""
    return Template(template).render(data)


def table(template: str, rows: Sequence[Any], headers: Mapping[str, str] | None = None) -> str:
    """A header row and one row per item, aligned like ``docker ps --format 'table ...'``.

    The leading ``table`` keyword is optional. A header cell is ``headers`` looked up by
    the field path (``"State.Status"``), then by the last field name (``"ID"``), else the
    field name split into upper-case words (``CreatedAt`` -> ``CREATED AT``). No trailing
    newline.
    """
    tmpl = Template(_strip_table(template))
    lines = [tmpl.render_header(headers)] + [tmpl.render(row) for row in rows]
    return tabwrite("\n".join(lines))


def format_rows(
    fmt: str,
    rows: Sequence[Any],
    headers: Mapping[str, str] | None = None,
    *,
    default: str = "",
) -> str:
    """Docker's ``--format`` dispatch: ``json``, ``table ...`` or a plain per-row template.

    An empty format or a bare ``table`` uses ``default``. No trailing newline.
    """
    if fmt.strip(" ") in ("", "table"):
        fmt = default
    if fmt.strip(" ") == "json":
        fmt = "{{json .}}"
    if fmt.startswith("table"):
        return table(fmt, rows, headers)
    tmpl = Template(fmt.strip(" "))
    return "\n".join(tmpl.render(row) for row in rows)


def _strip_table(fmt: str) -> str:
    return (fmt[len("table") :] if fmt.startswith("table") else fmt).strip(" ")
