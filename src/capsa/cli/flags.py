"""Parsing of the flag values several command groups share (docker's syntax)."""

from __future__ import annotations

from capsa.errors import InvalidArgument


def key_values(items: tuple[str, ...], what: str) -> dict[str, str]:
    """``--label k=v`` / ``-o k=v`` (an option must have the ``=``)."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key or (what == "option" and not eq):
            raise InvalidArgument(f"invalid {what} {item!r}: expected key=value")
        out[key] = value
    return out


def filters(items: tuple[str, ...]) -> dict[str, list[str]]:
    """``--filter name=value`` repeated -> {name: [values]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        out.setdefault(key, []).append(value)
    return out
