"""Container status: one set of names, one transition table.

Nothing else in capsa compares status strings; it asks this module whether an
operation is allowed from the current status. The names are plain strings (the OCI
state's ``status`` values) in two namespaces: ``enum`` costs milliseconds to import
on the runtime's start-up path, and type checkers still see the closed sets.
"""

from __future__ import annotations

from capsa.errors import Conflict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, Literal

    StatusName = Literal["creating", "created", "running", "paused", "stopped"]
    OpName = Literal[
        "start", "kill", "pause", "resume", "exec", "update", "delete", "delete --force"
    ]


class Status:
    CREATING: Final = "creating"
    CREATED: Final = "created"
    RUNNING: Final = "running"
    PAUSED: Final = "paused"
    STOPPED: Final = "stopped"


class Op:
    START: Final = "start"
    KILL: Final = "kill"
    PAUSE: Final = "pause"
    RESUME: Final = "resume"
    EXEC: Final = "exec"
    UPDATE: Final = "update"
    DELETE: Final = "delete"
    FORCE_DELETE: Final = "delete --force"


_EVERY: frozenset[StatusName] = frozenset(
    {Status.CREATING, Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED}
)

# operation -> statuses it is allowed from
ALLOWED: dict[OpName, frozenset[StatusName]] = {
    Op.START: frozenset({Status.CREATED}),
    Op.KILL: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Op.PAUSE: frozenset({Status.RUNNING, Status.CREATED}),
    Op.RESUME: frozenset({Status.PAUSED}),
    Op.EXEC: frozenset({Status.CREATED, Status.RUNNING}),
    Op.UPDATE: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Op.DELETE: frozenset({Status.STOPPED}),
    Op.FORCE_DELETE: _EVERY,
}

# status transitions an operation causes (when it succeeds)
TRANSITIONS: dict[tuple[StatusName, OpName], StatusName] = {
    (Status.CREATED, Op.START): Status.RUNNING,
    (Status.RUNNING, Op.PAUSE): Status.PAUSED,
    (Status.CREATED, Op.PAUSE): Status.PAUSED,
    (Status.PAUSED, Op.RESUME): Status.RUNNING,
}


def check(container_id: str, status: StatusName, op: OpName) -> None:
    """Raise Conflict unless ``op`` is allowed from ``status``."""
    if status not in ALLOWED[op]:
        raise Conflict(f"cannot {op} container {container_id}: it is {status}")


def after(status: StatusName, op: OpName) -> StatusName:
    return TRANSITIONS.get((status, op), status)
