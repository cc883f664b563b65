"""Go-like values: the errors and sentinels every stage shares, and Go's printing.

``go_str`` is fmt's ``%v``, ``go_float`` Go's shortest float (``%v`` or json.Marshal's),
``go_quote`` strconv.Quote and ``to_json`` a compact json.Marshal that keeps dict order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from enum import Enum
from typing import Any


class Fail(Exception):
    """A template error at an offset of the source (-1: none); made public by Template."""

    def __init__(self, msg: str, pos: int = -1) -> None:
        super().__init__(msg)
        self.msg, self.pos = msg, pos


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING: Any = _Sentinel("<no value>")  # a missing map key, like Go's invalid Value
NONE: Any = _Sentinel("<no argument>")  # no value piped in from a previous command


def record_fields(value: Any) -> dict[str, Any] | None:
    """The fields of a dataclass or named tuple; None for anything else."""
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is not None:
        return {f: getattr(value, f) for f in fields}
    return value._asdict() if isinstance(value, tuple) and hasattr(value, "_asdict") else None


def truth(value: Any) -> bool:
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float | complex):
        return bool(value)
    return len(value) > 0 if isinstance(value, Sized) else True


def sorted_keys(mapping: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(mapping)
    except TypeError:
        return list(mapping)


def go_type(value: Any) -> str:
    if value is None:
        return "<nil>"
    names = {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}"}
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    return names.get(type(value), type(value).__name__)


def go_str(value: Any) -> str:
    """``value`` printed like Go's fmt ``%v``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if value is MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if (record := record_fields(value)) is not None:  # a Go struct prints as {field field}
        return "{" + " ".join(map(go_str, record.values())) + "}"
    if isinstance(value, Mapping):
        pairs = (f"{go_str(k)}:{go_str(value[k])}" for k in sorted_keys(value))
        return "map[" + " ".join(pairs) + "]"
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + " ".join(map(go_str, value)) + "]"
    if isinstance(value, Enum):
        return go_str(value.value)
    return str(value)


def _digits(x: float) -> tuple[str, int]:
    """The shortest digits of ``abs(x) > 0`` and the point: abs(x) == 0.DIGITS * 10**point."""
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    raw = whole + frac
    digits = raw.lstrip("0")
    return digits.rstrip("0"), len(whole) + int(exp or 0) - (len(raw) - len(digits))


def go_float(x: float, for_json: bool = False) -> str:
    """Go's shortest float: ``%v`` (exponent below -4 or from 6 on) or json.Marshal's."""
    if x != x or x in (float("inf"), float("-inf")):
        return "null" if for_json else {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(x)]
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    digits, point = _digits(x)
    exp = point - 1
    if (1e-6 <= abs(x) < 1e21) if for_json else (-4 <= exp < 6):
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    tail = f"{abs(exp)}" if for_json and exp < 0 else f"{abs(exp):02d}"
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'-' if exp < 0 else '+'}{tail}"


def go_quote(text: str) -> str:
    """Go's strconv.Quote."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            width = 2 if code < 0x80 else 4 if code < 0x10000 else 8
            out.append("\\" + {2: "x", 4: "u", 8: "U"}[width] + f"{code:0{width}x}")
    out.append('"')
    return "".join(out)


def go_bytes(text: str) -> bytes:
    """The bytes a Go string would hold: a name from the command line that is not UTF-8
    comes as surrogate escapes (a stray surrogate from elsewhere as its own bytes)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def to_json(value: Any) -> str:
    """Compact JSON like Go's json.Marshal (no HTML escaping, dict order kept)."""
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value, for_json=True)
    if isinstance(value, str):
        import json  # only when needed: the CLI's import time matters

        # as Go's json.Marshal: bytes that are not UTF-8 (surrogate escapes) become U+FFFD
        text = json.dumps(go_bytes(value).decode("utf-8", "replace"), ensure_ascii=False)
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if (record := record_fields(value)) is not None:
        return to_json(record)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ",".join(map(to_json, value)) + "]"
    if isinstance(value, Enum):
        return to_json(value.value)
    return to_json(str(value))


def need_str(value: Any) -> str:
    if not isinstance(value, str):
        raise Fail(f"wrong type for value; expected string; got {go_type(value)}")
    return value


def need_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Fail(f"wrong type for value; expected int; got {go_type(value)}")
    return value
