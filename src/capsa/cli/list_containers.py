"""``capsa ps``: the command's body, without click.

``capsa.cli.containers`` declares the command's flags for click, and
``capsa.cli.fastpath`` parses the same flags when ``ps`` starts cold; both call
``ps`` here, which prints through ``capsa.cli.output`` as ``click.echo`` would, so
the output is the same either way. Nothing here imports more than listing needs.
"""

from __future__ import annotations

from capsa.cli import output, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.app import App
    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.protocol import Containers


def ps(
    app: App,
    show_all: bool = False,
    quiet: bool = False,
    size: bool = False,
    last: int = 0,
    latest: bool = False,
    no_trunc: bool = False,
    filters: tuple[str, ...] = (),
    fmt: str | None = None,
) -> None:
    """List containers."""
    from capsa.engine.containers.types import PsOptions
    from capsa.syntax.filters import parse_ps_filters

    opts = PsOptions(
        all=show_all, last=1 if latest else last, size=size, filters=parse_ps_filters(filters)
    )
    recs = app.engine.containers.list_containers(opts)
    if quiet:
        output.echo_lines(rec.id if no_trunc else rec.short_id for rec in recs)
        return
    rows = ps_rows(app, recs, no_trunc, size)
    if fmt:
        render.render_format(
            fmt, rows, {"ID": "CONTAINER ID", "RunningFor": "CREATED", "Names": "NAMES"}
        )
        return
    headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    table = [
        [r["ID"], r["Image"], r["Command"], r["RunningFor"], r["Status"], r["Ports"], r["Names"]]
        for r in rows
    ]
    if size:
        headers.append("SIZE")
        for t, r in zip(table, rows, strict=True):
            t.append(r["Size"])
    render.print_table(headers, table)


def status_text(rec: ContainerRecord, health: dict[str, Any] | None) -> str:
    from capsa.engine.containers.types import State

    if rec.state in (State.RUNNING, State.PAUSED):
        text = "Up " + render.human_duration(_since(rec.started_at))
        if rec.state is State.PAUSED:
            text += " (Paused)"
        elif health and health.get("Status"):
            text += (
                f" ({health['Status'] if health['Status'] != 'starting' else 'health: starting'})"
            )
        return text
    if rec.state is State.RESTARTING:
        return (
            f"Restarting ({_exit_text(rec)}) "
            + render.human_duration(_since(rec.finished_at))
            + " ago"
        )
    if rec.state is State.EXITED:
        return f"Exited ({_exit_text(rec)}) {render.human_duration(_since(rec.finished_at))} ago"
    return rec.state.value.capitalize()


def _exit_text(rec: ContainerRecord) -> str:
    """The exit code, or ``unknown`` when nobody saw the process end (engine.restore)."""
    return "unknown" if rec.exit_code is None else str(rec.exit_code)


def _since(stamp: str) -> float:
    import time

    when = render.parse_time(stamp)
    return time.time() - when if when else 0.0


class PsRow(dict):
    """A `ps` row for templates: fields as keys, plus docker's ``.Label "key"``."""

    def __init__(self, values: dict[str, Any], labels: dict[str, str]) -> None:
        super().__init__(values)
        self._labels = labels

    def Label(self, key: str) -> str:
        return self._labels.get(key, "")


def ps_rows(
    app: App,
    recs: list[ContainerRecord],
    no_trunc: bool,
    size: bool,
) -> list[dict[str, Any]]:
    from capsa.engine.containers.types import State

    service = app.engine.containers
    image_commands: dict[str, str] = {}  # image id -> its command: read once per image
    rows: list[dict[str, Any]] = []
    for rec in recs:
        cmd = " ".join(
            shell_quote(a) for a in (rec.spec.entrypoint or []) + (rec.spec.command or [])
        )
        if not cmd:
            if rec.image_id not in image_commands:
                image_commands[rec.image_id] = _image_command(app, rec)
            cmd = image_commands[rec.image_id]
        if not no_trunc and len(cmd) > 20:
            cmd = cmd[:19] + "…"
        row = {
            "ID": rec.id if no_trunc else rec.short_id,
            "Image": rec.image_name,
            "Command": f'"{cmd}"',
            "CreatedAt": rec.created,
            "RunningFor": render.ago(rec.created),
            "Ports": _ports_text(rec),
            "Status": status_text(
                rec, service.health(rec) if rec.state is State.RUNNING else None
            ),  # only a running container shows its health
            "State": rec.state.value,
            "Names": rec.name,
            "Labels": ",".join(f"{k}={v}" for k, v in rec.spec.labels.items()),
            "Mounts": ",".join(m.source or m.target for m in rec.spec.mounts),
            "Networks": rec.spec.network_mode,
        }
        if size:
            row["Size"] = _size_text(service, rec)
        rows.append(PsRow(row, rec.spec.labels))
    return rows


def _size_text(service: Containers, rec: ContainerRecord) -> str:
    """``2B (virtual 4.26MB)``: the rw layer, then with the image's layers."""
    rw = service.rw_size(rec)
    virtual = service.root_fs_size(rec, rw)
    text = render.human_size(rw)
    return f"{text} (virtual {render.human_size(virtual)})" if virtual > 0 else text


# ``shlex.quote``'s safe characters (``[\w@%+=:,./-]`` in ASCII): shlex imports ``re``
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def shell_quote(arg: str) -> str:
    """``shlex.quote(arg)``."""
    if not arg:
        return "''"
    if all(c in _SAFE for c in arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _ports_text(rec: ContainerRecord) -> str:
    from capsa.engine.containers.types import State

    if rec.state is not State.RUNNING:
        return ""
    return ", ".join(
        f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol}"
        for p in rec.spec.ports
    )


def _image_command(app: App, rec: ContainerRecord) -> str:
    from capsa.errors import CapsaError

    try:
        cfg = app.engine.containers.image_config(rec).config
    except CapsaError:
        return ""
    args = ((cfg.entrypoint if cfg else None) or []) + ((cfg.cmd if cfg else None) or [])
    return " ".join(shell_quote(a) for a in args)
