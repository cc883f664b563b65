"""Error kinds -> HTTP statuses, translated once, here (the CLI's table is
``capsa.cli.errors``)."""

from __future__ import annotations

from capsa import errors

# Most specific first: a subclass must come before its base.
STATUSES: tuple[tuple[type[errors.CapsaError], int], ...] = (
    # dockerd: a program the runtime cannot run is the caller's mistake (400)
    (errors.CommandNotFound, 400),
    (errors.CommandNotRunnable, 400),
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.Conflict, 409),
    (errors.InvalidArgument, 400),
    (errors.FailedPrecondition, 409),
    (errors.PermissionDenied, 403),
    (errors.Unavailable, 500),
    (errors.Internal, 500),
)


def status_of(err: errors.CapsaError) -> int:
    for kind, status in STATUSES:
        if isinstance(err, kind):
            return status
    return 500


# an exec that could not start: the exit code its inspect shows (the docker CLI's)
EXEC_EXIT_CODES: tuple[tuple[type[errors.CapsaError], int], ...] = (
    (errors.CommandNotFound, 127),
    (errors.CommandNotRunnable, 126),
)


def exec_exit_code(err: errors.CapsaError) -> int:
    for kind, code in EXEC_EXIT_CODES:
        if isinstance(err, kind):
            return code
    return 126
