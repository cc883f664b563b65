"""``capsa explain CONTAINER``: what makes it a container, side by side with the host.

Text on a terminal (sections of aligned ``container | host`` columns), ``--format json``
for scripts, or a Go template over the report (``{{.Cgroup.Usage.Memory}}``).
"""

from __future__ import annotations

import click

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from capsa.cli.app import App
    from capsa.engine.explain.types import (
        CapabilityReport,
        CgroupReport,
        Explanation,
        Limit,
        MountReport,
        Namespace,
        RootfsReport,
        SeccompReport,
        UserReport,
    )

_LABEL = 16  # width of the first column
_WIDTH = 100  # wrap long name lists here
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB")


def _bytes(n: int | None) -> str:
    """Binary units, as ``-m 64m`` means: 67108864 -> "64MiB", 155648 -> "152KiB"."""
    if n is None:
        return "-"
    size, i = float(n), 0
    while size >= 1024 and i < len(_BINARY) - 1:
        size /= 1024
        i += 1
    text = f"{size:.1f}".removesuffix(".0") if i else str(n)
    return f"{text}{_BINARY[i]}"


def _short(digest: str) -> str:
    return (digest.partition(":")[2] or digest)[:12]


def _table(rows: Sequence[Sequence[str]], title: Sequence[str] = ()) -> None:
    """Rows padded into columns below an optional ``title`` row; rows are indented by 2
    and the first column is at least ``_LABEL`` wide, so sections line up."""
    cells = [list(title)] if title else []
    cells += [["  " + r[0], *r[1:]] for r in rows]
    if not cells:
        return
    count = max(len(r) for r in cells)
    cells = [[*r, *[""] * (count - len(r))] for r in cells]
    widths = [max(len(r[i]) for r in cells) for i in range(count)]
    widths[0] = max(widths[0], _LABEL)
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _wrapped(label: str, words: Iterable[str], empty: str = "none") -> None:
    """``label`` then ``words`` filling lines up to ``_WIDTH``, continued under them."""
    lead = "  " + label.ljust(_LABEL - 2) + "  "
    line, lines = "", []
    for word in words:
        if line and len(lead) + len(line) + 1 + len(word) > _WIDTH:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line or empty)
    click.echo(lead + lines[0])
    for rest in lines[1:]:
        click.echo(" " * len(lead) + rest)


def _caps(names: Iterable[str]) -> list[str]:
    return [n.removeprefix("CAP_") for n in names]


# -- sections ---------------------------------------------------------------------------


def _header(r: Explanation) -> None:
    state = f"{r.state}, init pid {r.pid}" if r.running else r.state
    click.echo(f"Container {r.name} ({r.id[:12]}): {state}")
    click.echo(f"Image     {r.image} ({_short(r.image_id)})")
    click.echo(f"Host      {r.host}")
    for note in r.notes:
        click.echo(f"note: {note}")


def _namespaces(rows: list[Namespace]) -> None:
    click.echo("")
    _table(
        [(n.kind, str(n.container or "-"), str(n.host or "-"), n.status, n.asked) for n in rows],
        ("NAMESPACES", "CONTAINER", "HOST", "", "ASKED"),
    )


def _limit_value(name: str, value: str | None) -> str:
    if value is None:
        return "-"
    if name.startswith("memory.") and value.isdigit() and int(value) < 1 << 62:
        return _bytes(int(value))
    return value


def _verdict(x: Limit) -> str:
    if x.ok:
        return "ok"
    if not x.file:
        return ""  # not running: nothing to compare with
    return "not enforced (no such file)" if x.in_force is None else "MISMATCH"


def _cgroup(c: CgroupReport) -> None:
    outside = [d.hierarchy for d in c.dirs if d.member is False]
    where = f"init NOT in: {' '.join(outside)}" if outside else ""
    if not outside and any(d.member for d in c.dirs):
        where = f"init in all {len(c.dirs)}"
    click.echo("")
    _table(
        [("hierarchies", " ".join(d.hierarchy for d in c.dirs), where)],
        (f"CGROUP v{c.version}", c.path),
    )
    for d in c.dirs[:1]:
        _table([("directories", d.host_path.replace(f"/{d.hierarchy}/", "/<hierarchy>/", 1))])
    rows = [
        (
            x.name,
            x.file or "-",
            _limit_value(x.name, x.asked),
            _limit_value(x.name, x.in_force),
            _verdict(x),
        )
        for x in c.limits
    ]
    if rows:
        _table(rows, ("  LIMIT", "FILE", "ASKED", "IN FORCE", ""))
    else:
        _table([("limits", "none asked")])
    for w in c.warnings:
        click.echo(f"  warning: {w}")
    u = c.usage
    if u is not None:
        limit = _bytes(u.memory_limit) if u.memory_limit else "unlimited"
        _table(
            [
                ("memory", f"{_bytes(u.memory)} of {limit}", f"peak {_bytes(u.memory_max)}"),
                ("pids", f"{u.pids} of {u.pids_limit or 'unlimited'}"),
                ("cpu", f"{(u.cpu_ns or 0) / 1e9:.3f}s", f"oom kills {u.oom_kills}"),
            ],
            ("  USAGE",),
        )


def _capabilities(c: CapabilityReport) -> None:
    click.echo("")
    _table(
        [(s.name, str(len(s.container)), str(len(s.host))) for s in c.sets],
        ("CAPABILITIES", "CONTAINER", "HOST"),
    )
    sets = {s.name: s.container for s in c.sets}
    _wrapped("bounding set", _caps(sets.get("bounding", [])))
    if sets.get("effective") != sets.get("bounding"):
        _wrapped("effective set", _caps(sets.get("effective", [])))
    dropped = " ".join(_caps(c.dropped)) or "none"
    _wrapped("vs docker", [f"dropped {dropped};", "added", *(_caps(c.added) or ["none"])])
    head = f"{len(c.not_granted)} of the kernel's {c.kernel_total}" + (":" if c.not_granted else "")
    _wrapped("not granted", [head, *_caps(c.not_granted)])


def _yes(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "no")


def _seccomp(s: SeccompReport) -> None:
    mode = s.mode_name if s.mode is None else f"{s.mode_name} ({s.mode})"
    host = s.host_mode_name if s.host_mode is None else f"{s.host_mode_name} ({s.host_mode})"
    profile = s.profile
    if s.profile in ("default", "custom"):
        profile += f": {s.default_action} by default, {s.rules} rules over {s.syscalls} syscalls"
    click.echo("")
    _table(
        [
            ("mode", mode, host),
            ("filters", "-" if s.filters is None else str(s.filters)),
            (
                "no_new_privs",
                _yes(s.no_new_privs),
                _yes(s.host_no_new_privs),
                "asked" if s.no_new_privs_asked else "",
            ),
        ],
        ("SECCOMP", "CONTAINER", "HOST"),
    )
    _table([("profile", profile)])


def _mount_rows(m: MountReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    cgroups = [r for r in m.rows if r.kind == "cgroup" and r.target.startswith("/sys/fs/cgroup/")]
    for r in m.rows:
        if r.kind in ("masked", "readonly") or r in cgroups:
            continue
        source = r.source if r.source not in (r.fstype, "none") else ""
        if r.kind in ("bind", "volume", "etc") and source:
            source = f"<- {source}"
        rows.append(
            (r.target, r.fstype, r.mode, r.kind, " ".join(x for x in (r.detail, source) if x))
        )
    if cgroups:
        names = " ".join(r.target.rsplit("/", 1)[1] for r in cgroups)
        modes = "/".join(sorted({r.mode for r in cgroups}))
        rows.append(("/sys/fs/cgroup/*", "cgroup", modes, "cgroup", names))
    return rows


def _mounts(m: MountReport) -> None:
    click.echo("")
    _table(_mount_rows(m), ("MOUNTS", "TYPE", "MODE", "KIND", "SOURCE / DETAIL"))
    if not m.mounted:
        _table([("state", "not mounted: the mounts its configuration asks for")])
    masked = [
        f"{r.target}({r.detail})" if r.detail else r.target for r in m.rows if r.kind == "masked"
    ]
    _wrapped("masked", masked)
    _wrapped("read-only", [r.target for r in m.rows if r.kind == "readonly"])
    absent = sorted(m.masked_absent + m.readonly_absent)
    if absent:
        _wrapped("not present", absent)


def _rootfs(r: RootfsReport) -> None:
    rows = []
    for layer in r.layers:
        made = layer.created_by if len(layer.created_by) <= 40 else layer.created_by[:37] + "..."
        size = _bytes(layer.size)
        rows.append((str(layer.index), _short(layer.chain_id), size, made, layer.directory))
    rows.append(("rw", "", _bytes(r.upper_size), "(the container's changes)", r.upper))
    click.echo("")
    _table(rows, ("ROOT FILESYSTEM", "CHAIN ID", "SIZE", "CREATED BY", "DIRECTORY"))
    mode = "read-only" if r.readonly else "read-write"
    count = f"{len(r.layers)} image layer{'s' if len(r.layers) != 1 else ''}"
    _table([("driver", f"{r.driver} ({mode}): {count} below the rw layer")])


def _user(u: UserReport, user_ns: str) -> None:
    uid = "-" if u.uid is None else (f"{u.uid} ({u.name})" if u.name else str(u.uid))
    rows = [
        ("uid", uid, "-" if u.host_uid is None else str(u.host_uid)),
        (
            "gid",
            "-" if u.gid is None else str(u.gid),
            "-" if u.host_gid is None else str(u.host_gid),
        ),
        ("groups", " ".join(map(str, u.groups)) or "-"),
        ("asked", u.asked or "-"),
    ]
    if u.uid_map:
        rows.append(("uid_map", ", ".join(u.uid_map)))
    click.echo("")
    _table(rows, ("USER", "CONTAINER", "HOST"))
    if user_ns == "shared with host" and u.uid == 0:
        click.echo("  note: no user namespace: root in the container is root on the host")


def print_text(r: Explanation) -> None:
    _header(r)
    _namespaces(r.namespaces)
    if r.cgroup is not None:
        _cgroup(r.cgroup)
    if r.capabilities is not None:
        _capabilities(r.capabilities)
    if r.seccomp is not None:
        _seccomp(r.seccomp)
    if r.mounts is not None:
        _mounts(r.mounts)
    if r.rootfs is not None:
        _rootfs(r.rootfs)
    if r.user is not None:
        user_ns = next((n.status for n in r.namespaces if n.kind == "user"), "")
        _user(r.user, user_ns)


@click.command()
@click.argument("container")
@click.option("-f", "--format", "fmt", default="", help="json, or a Go template")
@click.pass_context
def explain(ctx: click.Context, container: str, fmt: str) -> None:
    """Show what makes CONTAINER a container, side by side with the host."""
    from capsa.oci.codec import to_dict

    app: App = ctx.find_root().obj
    report = app.engine.containers.explain(container)
    if fmt == "json":
        from capsa.cli import render

        render.print_json(to_dict(report))
    elif fmt:
        from capsa.cli import template

        click.echo(template.render(fmt, report))
    else:
        print_text(report)


def register(cli: click.Group) -> None:
    cli.add_command(explain)
