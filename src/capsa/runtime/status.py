"""Container status: one enum, one transition table.

Nothing else in capsa compares status strings; it asks this module whether an
operation is allowed from the current status.
"""

from __future__ import annotations

import enum

from capsa.errors import Conflict


class Status(enum.Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class Op(enum.Enum):
    START = "start"
    KILL = "kill"
    PAUSE = "pause"
    RESUME = "resume"
    EXEC = "exec"
    UPDATE = "update"
    DELETE = "delete"
    FORCE_DELETE = "delete --force"


# operation -> statuses it is allowed from
ALLOWED: dict[Op, frozenset[Status]] = {
    Op.START: frozenset({Status.CREATED}),
    Op.KILL: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Op.PAUSE: frozenset({Status.RUNNING, Status.CREATED}),
    Op.RESUME: frozenset({Status.PAUSED}),
    Op.EXEC: frozenset({Status.CREATED, Status.RUNNING}),
    Op.UPDATE: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Op.DELETE: frozenset({Status.STOPPED}),
    Op.FORCE_DELETE: frozenset(Status),
}

# status transitions an operation causes (when it succeeds)
TRANSITIONS: dict[tuple[Status, Op], Status] = {
    (Status.CREATED, Op.START): Status.RUNNING,
    (Status.RUNNING, Op.PAUSE): Status.PAUSED,
    (Status.CREATED, Op.PAUSE): Status.PAUSED,
    (Status.PAUSED, Op.RESUME): Status.RUNNING,
}


def check(container_id: str, status: Status, op: Op) -> None:
    """Raise Conflict unless ``op`` is allowed from ``status``."""
    if status not in ALLOWED[op]:
        raise Conflict(f"cannot {op.value} container {container_id}: it is {status.value}")


def after(status: Status, op: Op) -> Status:
    return TRANSITIONS.get((status, op), status)
