"""``capsa images`` (``image ls``): the command's body, without click.

``capsa.cli.images`` declares the flags for click and ``capsa.cli.fastpath`` parses
the same flags on a cold start; both call ``images`` here (see
``capsa.cli.list_containers``).
"""

from __future__ import annotations

from capsa.cli import output, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.cli.app import App
    from capsa.engine.images.types import ImageSummary


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
    from capsa.syntax.filters import parse_image_filters

    f = parse_image_filters(filters)
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
