"""Registry answers -> typed errors.

A registry reports failures as ``{"errors": [{"code": ..., "message": ...}]}``
(Distribution spec). The codes and the HTTP status pick the kind; ``not_found`` is
the message the caller wants for a missing object ("manifest for X not found").
"""

from __future__ import annotations

import json

from capsa.errors import (
    CapsaError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)

_NOT_FOUND = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"})
_DENIED = frozenset({"UNAUTHORIZED", "DENIED"})


class Transient(Unavailable):
    """A failure worth retrying: dropped connection, short read, 5xx, 429."""


def parse_errors(body: bytes) -> list[tuple[str, str]]:
    """(code, message) pairs of a registry error body; [] when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    out = []
    for e in errors:
        if isinstance(e, dict):
            out.append((str(e.get("code") or ""), str(e.get("message") or "")))
    return out


def error_for(status: int, body: bytes, host: str, what: str, not_found: str) -> CapsaError:
    """The error a failed request (``what``: "pull of X", "upload of blob Y") raises."""
    errors = parse_errors(body)
    codes = {code for code, _ in errors}
    detail = "; ".join(f"{msg or code.lower()}" for code, msg in errors)
    if codes & _NOT_FOUND or (status == 404 and not codes):
        return NotFound(not_found)
    if codes & _DENIED or status in (401, 403):
        return PermissionDenied(f"{what}: access denied ({detail or 'unauthorized'})")
    if status == 429 or status >= 500:
        return Transient(
            f"registry {host} failed on {what}: status {status}"
            + (f" ({detail})" if detail else "")
        )
    return InvalidArgument(
        f"registry {host} refused {what}: status {status}" + (f" ({detail})" if detail else "")
    )


def unreachable(host: str, e: BaseException) -> Unavailable:
    reason = str(e) or type(e).__name__
    return Transient(f"cannot reach registry {host}: {reason}")
