"""``capsa images`` (``image ls``): the command's body, without click.

``capsa.cli.images`` declares the flags for click and ``capsa.cli.fastpath`` parses
the same flags on a cold start; both call ``images`` here (see
``capsa.cli.list_containers``).
"""

from __future__ import annotations

from capsa.cli import output, render
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.app import App
    from capsa.engine.image_types import ImageFilters, ImageSummary


def images(
    app: App,
    repository: str | None = None,
    show_all: bool = False,
    quiet: bool = False,
    digests: bool = False,
    no_trunc: bool = False,
    filters: tuple[str, ...] = (),
    fmt: str | None = None,
) -> None:
    """List images."""
    f = parse_filters(filters)
    if repository:  # matched as dockerd matches references (engine.images)
        f.references.append(repository)
    summaries = app.engine.images.list_images(f, include_intermediate=show_all)
    rows = _rows(summaries, digests)
    for row in rows:
        row["ID"] = row["ID"] if no_trunc else row["ID"].removeprefix("sha256:")[:12]
    if quiet:
        seen: list[str] = []
        for row in rows:
            if row["ID"] not in seen:
                seen.append(row["ID"])
        output.echo_lines(seen)
        return
    if fmt:
        render.render_format(fmt, rows, {"ID": "IMAGE ID", "CreatedSince": "CREATED"})
        return
    headers = (
        ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    )
    table = [
        [
            r["Repository"],
            r["Tag"],
            *([r["Digest"]] if digests else []),
            r["ID"],
            r["CreatedSince"],
            r["Size"],
        ]
        for r in rows
    ]
    render.print_table(headers, table)


def parse_filters(values: tuple[str, ...]) -> ImageFilters:
    from capsa.engine.image_types import ImageFilters

    f = ImageFilters()
    for item in values:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        if key == "dangling":
            if value not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={value}'")
            f.dangling = value in ("true", "1")
        elif key == "label":
            f.labels.append(value)
        elif key == "reference":
            f.references.append(value)
        elif key == "before":
            f.before = value
        elif key == "since":
            f.since = value
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return f


def _rows(summaries: list[ImageSummary], digests: bool) -> list[dict[str, Any]]:
    rows = []
    for s in summaries:
        tags = s.repo_tags or ["<none>:<none>"]
        digest_by_repo = {d.partition("@")[0]: d.partition("@")[2] for d in s.repo_digests}
        for tag in tags:
            repo, _, t = tag.rpartition(":")
            rows.append(
                {
                    "ID": s.id,
                    "Repository": repo,
                    "Tag": t,
                    "Digest": s.tag_digests.get(tag) or digest_by_repo.get(repo, "<none>"),
                    "CreatedSince": render.ago(s.created),
                    "CreatedAt": s.created or "",
                    "Size": render.human_size(s.size),
                    "Containers": str(s.containers),
                }
            )
        if not s.repo_tags and digests and s.repo_digests:
            rows[-1]["Digest"] = s.repo_digests[0].partition("@")[2]
    return rows
