"""``capsa explain CONTAINER``: what makes it a container, side by side with the host.

Text on a terminal (sections of aligned ``container | host`` columns), ``--format json``
for scripts, or a Go template over the same JSON (``{{.Cgroup.Usage.Memory}}``).
"""

from __future__ import annotations

import click

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from capsa.engine.explain import (
        CapabilityReport,
        CgroupReport,
        Explanation,
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
    _table(
        [
            ("Container", f"{r.name} ({r.id[:12]})", state),
            ("Image", r.image, _short(r.image_id)),
            ("Host view", r.host),
        ],
        indent=0,
    )
    for note in r.notes:
        click.echo(f"note: {note}")


def _namespaces(rows: list[Namespace]) -> None:
    _heading("NAMESPACES", "CONTAINER", "HOST", "", "ASKED")
    _table([(n.kind, str(n.container or "-"), str(n.host or "-"), n.status, n.asked) for n in rows])


def _limit_value(name: str, value: str | None) -> str:
    if value is None:
        return "-"
    if name.startswith("memory.") and value.isdigit() and int(value) < 1 << 62:
        return _bytes(int(value))
    return value


def _cgroup(c: CgroupReport) -> None:
    _heading(f"CGROUP v{c.version}", c.path)
    members = [d for d in c.dirs if d.member is not None]
    outside = [d.hierarchy for d in members if not d.member]
    hierarchies = " ".join(d.hierarchy for d in c.dirs)
    where = f"init in all {len(c.dirs)}" if members and not outside else ""
    where = f"init NOT in: {' '.join(outside)}" if outside else where
    _table([("hierarchies", hierarchies, where)])
    for d in c.dirs[:1]:
        _table([("directories", d.host_path.replace(f"/{d.hierarchy}/", "/<hierarchy>/", 1))])
    rows = [("LIMIT", "FILE", "ASKED", "IN FORCE", "")]
    for x in c.limits:
        verdict = "ok" if x.ok else ("-" if x.in_force is None and not x.file else "MISMATCH")
        verdict = "not enforced (file missing)" if x.file and x.in_force is None else verdict
        asked, in_force = _limit_value(x.name, x.asked), _limit_value(x.name, x.in_force)
        rows.append((x.name, x.file or "-", asked, in_force, verdict))
    if c.limits:
        _table(rows)
    else:
        _table([("limits", "none asked")])
    for w in c.warnings:
        click.echo(f"  warning: {w}")
    u = c.usage
    if u is not None:
        cpu = f"{(u.cpu_ns or 0) / 1e9:.3f}s"
        limit = _bytes(u.memory_limit) if u.memory_limit else "unlimited"
        pids_limit = str(u.pids_limit) if u.pids_limit else "unlimited"
        _table(
            [
                ("memory", f"{_bytes(u.memory)} of {limit}", f"peak {_bytes(u.memory_max)}"),
                ("pids", f"{u.pids} of {pids_limit}"),
                ("cpu", cpu, f"oom kills {u.oom_kills}"),
            ]
        )


def _capabilities(c: CapabilityReport) -> None:
    _heading("CAPABILITIES", "CONTAINER", "HOST")
    _table([(s.name, str(len(s.container)), str(len(s.host))) for s in c.sets])
    bounding = next((s.container for s in c.sets if s.name == "bounding"), [])
    _wrapped("bounding set", _caps(bounding))
    effective = next((s.container for s in c.sets if s.name == "effective"), [])
    if effective != bounding:
        _wrapped("effective set", _caps(effective))
    _wrapped(
        "vs docker",
        [f"dropped {' '.join(_caps(c.dropped)) or 'none'};", "added"]
        + (_caps(c.added) or ["none"]),
    )
    _wrapped(
        "not granted",
        [f"{len(c.not_granted)} of the kernel's {c.kernel_total}:", *_caps(c.not_granted)],
    )


def _seccomp(s: SeccompReport) -> None:
    _heading("SECCOMP", "CONTAINER", "HOST")
    mode = s.mode_name if s.mode is None else f"{s.mode_name} ({s.mode})"
    host_mode = s.host_mode_name if s.host_mode is None else f"{s.host_mode_name} ({s.host_mode})"

    def yes(v: bool | None) -> str:
        return "-" if v is None else ("yes" if v else "no")

    nnp_asked = "asked" if s.no_new_privs_asked else ""
    _table(
        [
            ("mode", mode, host_mode),
            ("filters", "-" if s.filters is None else str(s.filters)),
            ("no_new_privs", yes(s.no_new_privs), yes(s.host_no_new_privs), nnp_asked),
        ]
    )
    if s.profile in ("default", "custom"):
        what = f"{s.default_action} by default, {s.rules} rules over {s.syscalls} syscalls"
        _table([("profile", s.profile, what)])
    else:
        _table([("profile", s.profile)])


def _mounts(m: MountReport) -> None:
    _heading("MOUNTS", "TYPE", "MODE", "KIND", "SOURCE / DETAIL")
    rows, cgroups = [], []
    for r in m.rows:
        if r.kind in ("masked", "readonly"):
            continue
        if r.kind == "cgroup" and r.target.startswith("/sys/fs/cgroup/"):
            cgroups.append(r)
            continue
        detail = " ".join(x for x in (r.detail, r.source if r.source != r.fstype else "") if x)
        if r.kind in ("bind", "volume", "etc") and r.source:
            detail = " ".join(x for x in (r.detail, f"<- {r.source}") if x)
        rows.append((r.target, r.fstype, r.mode, r.kind, detail))
    if cgroups:
        modes = sorted({r.mode for r in cgroups})
        names = " ".join(r.target.rsplit("/", 1)[1] for r in cgroups)
        rows.append(("/sys/fs/cgroup/*", "cgroup", "/".join(modes), "cgroup", names))
    _table(rows)
    masked = [
        f"{r.target}({r.detail})" if r.detail else r.target for r in m.rows if r.kind == "masked"
    ]
    _wrapped("masked", masked)
    _wrapped("read-only", [r.target for r in m.rows if r.kind == "readonly"])
    if m.masked_absent:
        _wrapped("not present", m.masked_absent)


def _rootfs(r: RootfsReport) -> None:
    mode = "read-only" if r.readonly else "read-write"
    plural = "s" if len(r.layers) != 1 else ""
    _heading("ROOT FILESYSTEM", f"{r.driver}, {mode}, {len(r.layers)} layer{plural} + rw layer")
    rows = [("LAYER", "CHAIN ID", "SIZE", "DIRECTORY", "CREATED BY")]
    for layer in r.layers:
        size = _bytes(layer.size)
        made = layer.created_by if len(layer.created_by) <= 40 else layer.created_by[:37] + "..."
        rows.append((str(layer.index), _short(layer.chain_id), size, layer.directory, made))
    rows.append(("rw", "", _bytes(r.upper_size), r.upper, "the container's changes"))
    _table(rows)


def _user(u: UserReport, user_ns: str) -> None:
    _heading("USER", "CONTAINER", "HOST")
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
    _table(rows)
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
    from capsa.engine.explain import explain as build
    from capsa.oci.codec import to_dict

    engine = ctx.find_root().obj.engine
    report = build(engine.ctx, engine.containers.get(container))
    if fmt == "json":
        from capsa.cli import render

        render.print_json(to_dict(report))
    elif fmt:
        from capsa.cli import template

        click.echo(template.render(fmt, to_dict(report)))
    else:
        print_text(report)


def register(cli: click.Group) -> None:
    cli.add_command(explain)
