"""Docker's detach keys (``--detach-keys``, the API's ``detachKeys``): ``ctrl-p,ctrl-q``."""

from __future__ import annotations

from capsa.errors import InvalidArgument

DEFAULT = b"\x10\x11"  # ctrl-p ctrl-q


def parse_detach_keys(spec: str) -> bytes:
    """The bytes the keys send (empty ``spec``: the default)."""
    if not spec:
        return DEFAULT
    out = bytearray()
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6 and part[5].isalpha():
            out.append(ord(part[5].lower()) - ord("a") + 1)
        elif len(part) == 1:
            out.append(ord(part))
        else:
            raise InvalidArgument(f"invalid detach keys: {spec}")
    return bytes(out)
