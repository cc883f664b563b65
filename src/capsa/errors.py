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
        # Errors hit while cleaning up after this one: attached, never lost.
        self.causes: list[BaseException] = list(causes or [])

    def __str__(self) -> str:
        if not self.causes:
            return self.message
        extra = "; ".join(str(c) for c in self.causes)
        return f"{self.message} (cleanup: {extra})"


class NotFound(CapsaError):
    """The named object does not exist (``no_such_*`` below word it as clients expect)."""


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


class CommandNotFound(NotFound):
    """The container's program does not exist (Docker's CLI exits 127)."""


class CommandNotRunnable(PermissionDenied):
    """The container's program exists but cannot be run (Docker's CLI exits 126)."""


class Unavailable(CapsaError):
    """A needed facility (kernel feature, binary, service) is missing."""


class Internal(CapsaError):
    """A bug or an unexpected kernel answer."""


def os_reason(e: OSError) -> str:
    """The kernel's reason for ``e``, lower-case, for one-line messages."""
    return (e.strerror or str(e)).lower()


def not_utf8(e: UnicodeEncodeError) -> InvalidArgument:
    """Bytes from the command line that are not UTF-8 (surrogate escapes) met what holds
    text only (the database, a JSON document): a name no object can have."""
    return InvalidArgument(f'invalid argument "{shown(e.object)}": not UTF-8')


def shown(text: str) -> str:
    """``text`` with the bytes that are not UTF-8 written ``\\xff``."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that came from no byte
        return text.encode("utf-8", "backslashreplace").decode()


# What a missing object is called, worded once, here. Scripts and client libraries match
# on Docker's wording (its capitalisation included), so these keep it rather than the
# lower-case style of the other messages.


def no_such_container(name: str) -> NotFound:
    return NotFound(f"No such container: {name}")


def no_such_image(name: str) -> NotFound:
    return NotFound(f"No such image: {name}")


def no_such_volume(name: str) -> NotFound:
    return NotFound(f"No such volume: {name}")


def no_such_network(name: str) -> NotFound:
    """Docker's daemon words a missing network so (its ``network inspect`` as below)."""
    return NotFound(f"network {name} not found")


def no_such_object(name: str, kind: str = "object") -> NotFound:
    """Docker's CLI for ``inspect`` of something missing: ``No such object: X`` (any kind),
    ``No such network: X`` (``network inspect``)."""
    return NotFound(f"No such {kind}: {name}")
