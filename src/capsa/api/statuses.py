"""Error kinds -> HTTP statuses, translated once, here (the CLI's table is
``capsa.cli.errors``)."""

from __future__ import annotations

from capsa import errors

# Most specific first: a subclass must come before its base.
STATUSES: tuple[tuple[type[errors.CapsaError], int], ...] = (
    (errors.CommandNotFound, 404),
    (errors.CommandNotRunnable, 500),
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
