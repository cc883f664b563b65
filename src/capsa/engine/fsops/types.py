"""The records of ``cp``, ``commit`` and a path's stat: what frontends build and read.

Kept apart from ``capsa.engine.fsops.service`` (which reaches the kernel) so that a
frontend, the API and the remote client load them without the service.
"""

from __future__ import annotations

from capsa.record import field, record


@record
class CopyOptions:
    follow_link: bool = False  # -L: copy what SRC's last symlink points to
    archive: bool = False  # -a: keep the archive's uid/gid (else: root inside, caller outside)


@record
class CommitOptions:
    reference: str = ""  # REPO[:TAG]; "" for an untagged image
    message: str = ""
    author: str = ""
    changes: list[str] = field(default_factory=list)  # Dockerfile instructions
    pause: bool = True


@record(frozen=True)
class PathStat:
    """What Docker's HEAD /containers/{id}/archive reports about a path."""

    name: str
    size: int
    mode: int  # st_mode
    mtime: float
    link_target: str  # for a symlink: the container path it resolves to
