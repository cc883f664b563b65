"""Go's fmt.Sprintf for the common verbs, mistakes shown inline as Go shows them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from capsa.cli.gotemplate.values import (
    go_bytes,
    go_float,
    go_quote,
    go_str,
    go_type,
    need_str,
    record_fields,
)

_VERB = r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)"


def printf(fmt: Any, *args: Any) -> str:
    """Go's fmt.Sprintf for the common verbs; mistakes are shown inline as Go does."""
    out, used, last = [], 0, 0
    for m in re.finditer(_VERB, need_str(fmt), re.DOTALL):
        out.append(fmt[last : m.start()])
        last = m.end()
        flags, width, prec, verb = m.groups()
        if _too_large(width) or _too_large(prec):  # Go gives up on the rest of the format
            out.append("%!(NOVERB)")
            last = len(fmt)
            break
        if verb == "%":
            out.append("%")
        elif not verb:
            out.append("%!(NOVERB)")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            text = _format_verb(verb, flags, None if prec is None else int(prec or 0), args[used])
            out.append(_justify(text, flags, int(width or 0)))
            used += 1
    out.append(fmt[last:])
    if used < len(args):
        out.append("%!(EXTRA " + ", ".join(_bad_arg(a) for a in args[used:]) + ")")
    return "".join(out)


def _too_large(digits: str | None) -> bool:
    """A width or precision past Go's limit (1e6)."""
    return digits is not None and (len(digits) > 7 or int(digits or 0) > 1_000_000)


def _bad_arg(arg: Any) -> str:
    return "<nil>" if arg is None else f"{go_type(arg)}={go_str(arg)}"


def _justify(text: str, flags: str, width: int) -> str:
    if len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags:
        sign = text[0] if text[:1] in ("+", "-") else ""
        return sign + text[len(sign) :].rjust(width - len(sign), "0")
    return text.rjust(width)


def _format_verb(verb: str, flags: str, prec: int | None, arg: Any) -> str:
    sign = "+" if "+" in flags else " " if " " in flags else ""
    alt = "#" if "#" in flags else ""
    if verb == "v":
        return go_quote(arg) if alt and isinstance(arg, str) else go_str(arg)
    if verb == "t" and isinstance(arg, bool):
        return go_str(arg)
    if isinstance(arg, str) and verb in "sqxX":
        text = arg[:prec] if prec is not None else arg
        if verb in "xX":
            data = go_bytes(text)
            return format(int.from_bytes(data, "big"), verb) if text else ""
        return go_quote(text) if verb == "q" else text
    if verb in "sq" and isinstance(arg, list | tuple):
        return "[" + " ".join(_format_verb(verb, "", prec, a) for a in arg) + "]"
    if verb == "s" and (isinstance(arg, Mapping) or record_fields(arg) is not None):
        return go_str(arg)
    if isinstance(arg, int) and not isinstance(arg, bool):
        if verb in "dxXob":
            return format(arg, sign + alt + ("d" if verb == "d" else verb))
        if verb in "cq" and 0 <= arg <= 0x10FFFF:
            return chr(arg) if verb == "c" else "'" + go_quote(chr(arg))[1:-1] + "'"
    if isinstance(arg, int | float) and not isinstance(arg, bool) and verb in "eEfFgG":
        if verb in "gG" and prec is None:
            text = go_float(float(arg))
            return (sign if arg >= 0 else "") + (text.upper() if verb == "G" else text)
        return format(float(arg), f"{sign}{alt}.{6 if prec is None else prec}{verb}")
    return f"%!{verb}({_bad_arg(arg)})"
