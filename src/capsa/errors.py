"""Typed errors shared by every layer.

Each kind says *what* went wrong; frontends translate kinds once into exit codes
(CLI) or HTTP statuses (API). Messages are short, lower-case and name the object.
"""

from __future__ import annotations


class CapsaError(Exception):
    """Base of every error capsa raises on purpose."""

    def __init__(self, message: str, *, causes: list[BaseException] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # the exit status a frontend should use, when the failing step knows it
        # (127: the program was not found, 126: it could not be run)
        self.exit_code: int | None = None
        # Errors hit while cleaning up after this one: attached, never lost.
        self.causes: list[BaseException] = list(causes or [])

    def __str__(self) -> str:
        if not self.causes:
            return self.message
        extra = "; ".join(str(c) for c in self.causes)
        return f"{self.message} (cleanup: {extra})"


class NotFound(CapsaError):
    """The named object does not exist."""


class AlreadyExists(CapsaError):
    """An object with that name or id exists already."""


class Conflict(CapsaError):
    """The object is in a state that forbids the operation."""


class InvalidArgument(CapsaError):
    """Bad input from the user: config, flags, files."""


class FailedPrecondition(CapsaError):
    """The system is not in a state that allows the operation."""


class PermissionDenied(CapsaError):
    """The kernel or a policy refused the operation."""


class Unavailable(CapsaError):
    """A needed facility (kernel feature, binary, service) is missing."""


class Internal(CapsaError):
    """A bug or an unexpected kernel answer."""


def os_reason(e: OSError) -> str:
    """The kernel's reason for ``e``, lower-case, for one-line messages."""
    return (e.strerror or str(e)).lower()
