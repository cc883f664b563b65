"""Rendering the engine's per-item reports (``capsa.engine.system.reports``) as Docker's CLI does
for a verb given several names: what worked first, in the order given, then each error,
and exit status 1 if any name failed, so that one failure never hides the others."""

from __future__ import annotations

import click

from capsa.cli import render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from capsa.engine.system.reports import ItemReport

# how Docker's CLI shows what its daemon answered (stop, rm, kill...); its inspect
# commands report a missing object themselves, with just "Error: "
DAEMON = "Error response from daemon: "


def print_each(
    ctx: click.Context,
    reports: Sequence[ItemReport[Any]],
    line: Callable[[ItemReport[Any]], str] | None = None,
    forgiven: tuple[type[Exception], ...] = (),
) -> None:
    """``line`` of each report that worked (the name as given by default) on stdout,
    then each error on stderr; exit 1 unless every error is of a ``forgiven`` kind
    (those are shown all the same: ``rm -f`` of a missing container)."""
    for r in reports:
        if r.error is None:
            click.echo(r.name if line is None else line(r))
    failed = False
    for r in reports:
        if r.error is not None:
            click.echo(f"{DAEMON}{r.error}", err=True)
            failed = failed or not isinstance(r.error, forgiven)
    if failed:
        ctx.exit(1)


def print_inspected(
    ctx: click.Context,
    reports: Sequence[ItemReport[Any]],
    doc: Callable[[Any], dict[str, Any]],
    fmt: str | None,
) -> None:
    """``inspect``: the documents of the names found (``doc`` of each report's value), as
    one JSON array or through ``-f``, then an error line for each name not found."""
    render.print_inspect([doc(r.value) for r in reports if r.error is None], fmt)
    render.fail_all(ctx, [str(r.error) for r in reports if r.error is not None])
