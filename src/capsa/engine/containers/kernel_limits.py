"""What the kernel would refuse of a container's process, refused before it is made.

``execve`` fails with E2BIG on a string of 128 KiB or more, or when all of them pass a
quarter of the stack limit; ``sethostname`` takes at most 64 bytes. Found at create,
these are one line naming the culprit instead of a container that cannot start.
"""

from __future__ import annotations

from capsa.errors import InvalidArgument


def shown(text: str) -> str:
    """``text`` for a message, bytes that are not UTF-8 (surrogate escapes from the
    command line) as ``\\xff``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_uts_name(what: str, value: str) -> None:
    """A hostname or domain name the kernel takes (at most 64 bytes) and that can be
    stored and shown (UTF-8)."""
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise InvalidArgument(f"invalid {what} '{shown(value)}': not valid UTF-8") from None
    if size > 64:
        raise InvalidArgument(f"invalid {what} '{value}': longer than 64 bytes")


# the kernel's execve limits: one string (with its NUL), and all of them together at
# most a quarter of the stack limit, capped at 3/4 of 8 MiB, never below 128 KiB
MAX_ARG_STRLEN = 32 * 4096
_ARG_MAX_CAP = 6 * 1024 * 1024
_ARG_MAX_FLOOR = 32 * 4096


def exec_limit(ulimits: list[str]) -> int:
    """How many bytes of strings and pointers the container's execve may take, with the
    stack limit it will have (``--ulimit stack=``, else the one it inherits)."""
    import resource

    stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
    for item in ulimits:
        name, _, value = item.partition("=")
        soft = value.partition(":")[0]
        if name == "stack" and soft.isascii() and soft.isdigit():
            stack = int(soft)
    limit = _ARG_MAX_CAP if stack < 0 else min(_ARG_MAX_CAP, stack // 4)
    return max(limit, _ARG_MAX_FLOOR)


def check_exec_strings(args: list[str], env: list[str], limit: int) -> None:
    """Refuse a command line or environment that execve would refuse (E2BIG, a NUL),
    naming what is too long, before a container is made for it."""
    total = (max(len(args), 1) + len(env)) * 8  # the pointer arrays
    named = [
        *((f"argument {i} of the command", a) for i, a in enumerate(args)),
        *((f"environment variable '{shown(e.partition('=')[0])}'", e) for e in env),
    ]
    for name, text in named:
        size = _exec_string_size(name, text)
        if size >= MAX_ARG_STRLEN:
            raise InvalidArgument(
                f"{name} is too long: {size} bytes, the kernel takes at most "
                f"{MAX_ARG_STRLEN - 1} (argument list too long)"
            )
        total += size + 1
    if args:
        total += _exec_string_size("the command", args[0]) + 1  # its file name, once more
    if total > limit:
        raise InvalidArgument(
            f"the command line and environment are too long: {total} bytes, the kernel "
            f"takes at most {limit} with this stack limit (argument list too long)"
        )


def _exec_string_size(name: str, text: str) -> int:
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        raise InvalidArgument(f"invalid {name}: not valid text") from None
    if b"\0" in data:
        raise InvalidArgument(f"invalid {name}: it contains a NUL byte")
    return len(data)
