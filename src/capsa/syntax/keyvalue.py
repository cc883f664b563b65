"""``key=value`` flags (``--label``, ``-o``, ``--sysctl``, ``--log-opt``), ``-e`` and
``--env-file``, ``--label-file``.

``-e NAME`` and an env file's bare ``NAME`` take the caller's value, if any: the
environment read is the frontend process's own (the CLI's user's).
"""

from __future__ import annotations

import os

from capsa.errors import InvalidArgument

EXPECTED = "invalid {what} {item!r}: expected key=value"
PLAIN = "invalid {what}: {item!r}"  # run/create's wording


def key_values(
    items: tuple[str, ...], what: str, *, require_eq: bool = False, wording: str = EXPECTED
) -> dict[str, str]:
    """``k=v`` repeated -> {k: v}; a bare ``k`` is ``k=""`` unless ``require_eq``. A bad
    item is refused with ``wording`` (``{what}`` and ``{item!r}`` filled in)."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key or (require_eq and not eq):
            raise InvalidArgument(wording.format(what=what, item=item))
        out[key] = value
    return out


def _read_lines(path: str, what: str) -> list[str]:
    """The lines of an env or label file that are not blank or comments (UTF-8 only, as
    Docker reads them)."""
    try:
        with open(path, "rb") as f:
            raw = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {(e.strerror or '').lower()}") from None
    lines = []
    for number, line in enumerate(raw, 1):
        try:
            lines.append(line.decode())
        except UnicodeDecodeError:
            raise InvalidArgument(
                f"{what} {path} contains invalid utf8 bytes at line {number}"
            ) from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def parse_env(env: tuple[str, ...], env_files: tuple[str, ...]) -> list[str]:
    """``--env-file`` lines, then ``-e`` items, as ``NAME=value`` strings."""
    out = []
    for path in env_files:
        for line in _read_lines(path, "env file"):
            key, eq, value = line.partition("=")
            if not key:
                raise InvalidArgument(f"invalid env file {path}: no variable name on line {line!r}")
            if not eq:
                value = os.environ.get(key, "")
                if key not in os.environ:
                    continue
            out.append(f"{key}={value}")
    for item in env:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item}")
        if not eq:  # `-e NAME` passes the caller's value, if any
            if key in os.environ:
                out.append(f"{key}={os.environ[key]}")
            continue
        out.append(item)
    return out


def parse_labels(label: tuple[str, ...], label_files: tuple[str, ...]) -> dict[str, str]:
    """``--label-file`` lines, then ``-l`` items (a later key wins)."""
    items = [ln for path in label_files for ln in _read_lines(path, "label file")]
    return key_values((*items, *label), "label", wording=PLAIN)
