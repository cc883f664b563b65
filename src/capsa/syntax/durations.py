"""Go durations (``--health-interval 1m30s``) and Docker's ``--since``/``--until`` times.

The monitor reads no text of these, so ``re`` is imported only where a time is not a
duration; the RFC 3339 reader is shared with the json-file log reader.
"""

from __future__ import annotations

import time

from capsa.errors import InvalidArgument

_NS = 1_000_000_000
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # micro sign
    "μs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
}
_MAX_NS = (1 << 63) - 1
_DIGITS = "0123456789"


def parse_duration(text: str) -> float:
    """A Go duration (``1m30s``, ``500ms``, ``1.5h``) in seconds."""
    return parse_duration_ns(text) / _NS


def parse_duration_ns(text: str) -> int:
    """A Go duration in nanoseconds, parsed as Go's ``time.ParseDuration`` does."""
    rest = text[1:] if text[:1] in ("-", "+") else text
    if rest == "0":
        return 0
    if not rest:
        raise InvalidArgument(f"invalid duration '{text}'")
    total = 0
    while rest:
        value, rest = _duration_term(rest, text)
        total += value
    if total > _MAX_NS:
        raise InvalidArgument(f"invalid duration '{text}'")
    return -total if text[0] == "-" else total


def _duration_term(rest: str, text: str) -> tuple[int, str]:
    """One ``[0-9]*(.[0-9]*)?unit`` term at the start of ``rest``: (ns, what follows)."""
    i = _span(rest, 0, _DIGITS)
    whole = rest[:i]
    frac = ""
    if rest[i : i + 1] == ".":
        j = _span(rest, i + 1, _DIGITS)
        frac, i = rest[i + 1 : j], j
    if not whole and not frac:
        raise InvalidArgument(f"invalid duration '{text}'")
    j = i
    while j < len(rest) and rest[j] not in "." + _DIGITS:
        j += 1
    unit = rest[i:j]
    if not unit:
        raise InvalidArgument(f"missing unit in duration '{text}'")
    if unit not in _UNITS:
        raise InvalidArgument(f"unknown unit '{unit}' in duration '{text}'")
    scale = _UNITS[unit]
    value = int(whole or 0) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
    if value > _MAX_NS:
        raise InvalidArgument(f"invalid duration '{text}'")
    return value, rest[j:]


def _span(text: str, start: int, chars: str) -> int:
    while start < len(text) and text[start] in chars:
        start += 1
    return start


# -- --since / --until -------------------------------------------------------------------

_TIME = (
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2})(?::(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?)?"
    r"([Zz]|[+-]\d{2}:\d{2})?"
)


def parse_time_arg(text: str, now: float | None = None) -> float:
    """Docker's ``--since``/``--until``: RFC 3339 (no zone: local time), a Unix
    timestamp ("1700000000.5") or a Go duration before ``now`` ("10m", "1h30m", "2s")."""
    value = text.strip()
    if value != "0":  # as dockerd's GetTimestamp: "0" is the epoch, not a duration
        try:
            ago = parse_duration_ns(value)
        except InvalidArgument:
            pass
        else:
            return (time.time() if now is None else now) - ago / _NS
    try:
        return rfc3339_ns(value) / 1e9
    except ValueError:
        pass
    import re

    if re.fullmatch(r"\d+(?:\.\d{1,9})?", value):
        return float(value)
    raise InvalidArgument(f"invalid time {text!r}: want RFC 3339, a unix timestamp or a duration")


def rfc3339_ns(text: str) -> int:
    """Epoch nanoseconds of an RFC 3339 time; without a zone it is local time.
    ValueError when ``text`` is not one."""
    import re

    m = re.fullmatch(_TIME, text)
    if m is None:
        raise ValueError(text)
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(text)
    nanos = int(m.group(7)[1:].ljust(9, "0")) if m.group(7) else 0
    zone = m.group(8)
    if zone is None:
        seconds = int(time.mktime((year, month, day, hour, minute, second, 0, 0, -1)))
    else:
        offset = 0 if zone in "Zz" else (int(zone[1:3]) * 60 + int(zone[4:6])) * 60
        seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60
        seconds += second - (offset if zone[0] == "+" else -offset)
    return seconds * 1_000_000_000 + nanos


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def human_duration(seconds: float) -> str:
    """go-units' ``HumanDuration``, as Docker words how long ago."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
