"""Errors carry kinds; the CLI turns kinds into Docker's exit codes in one table."""

from __future__ import annotations

import pytest

from capsa import errors
from capsa.cli.errors import exit_code


@pytest.mark.parametrize(
    ("err", "run_like", "code"),
    [
        (errors.CommandNotFound("exec nosuch: no such file or directory"), True, 127),
        (errors.CommandNotRunnable("exec /etc/passwd: permission denied"), True, 126),
        (errors.NotFound("network nosuch not found"), True, 125),  # dockerd: 125
        (errors.PermissionDenied("operation not permitted"), True, 125),
        (errors.InvalidArgument("invalid restart policy"), True, 125),
        (errors.CommandNotFound("exec nosuch: no such file or directory"), False, 1),
        (errors.NotFound("No such container: x"), False, 1),
    ],
)
def test_kind_to_exit_code(err: errors.CapsaError, run_like: bool, code: int) -> None:
    assert exit_code(err, run_like) == code


def test_command_kinds_are_their_general_kinds() -> None:
    """A frontend without a table entry for them still sees what went wrong."""
    assert issubclass(errors.CommandNotFound, errors.NotFound)
    assert issubclass(errors.CommandNotRunnable, errors.PermissionDenied)


def test_errors_carry_no_exit_code() -> None:
    assert not hasattr(errors.CapsaError("x"), "exit_code")
