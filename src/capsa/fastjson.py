"""JSON for start-up paths: the stdlib's C scanner and encoder without ``import json``.

``json`` imports ``re`` (and with it ``enum``, ``functools`` and ``collections``) and
compiles its patterns: about 7 ms, a third of the time runc needs for a whole
container run. ``capsa-runtime`` and the container init read and write JSON through
the C accelerator ``_json`` that ``json`` itself uses, so values and errors
(``json.JSONDecodeError``) are the same. Indented output is left to ``json``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"
_scan: Callable[[str, int], tuple[Any, int]] | None = None


_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _ScannerContext:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _scanner() -> Callable[[str, int], tuple[Any, int]]:
    global _scan
    if _scan is None:
        try:
            from _json import make_scanner
        except ImportError:  # an interpreter without the accelerator
            import json

            _scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
        else:
            # duck-typed: the scanner reads only the attributes _ScannerContext has
            _scan = make_scanner(_ScannerContext())  # type: ignore[arg-type]
    return _scan


def _error(message: str, doc: str, pos: int) -> Exception:
    from json import JSONDecodeError

    return JSONDecodeError(message, doc, pos)


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` for UTF-8 input."""
    text = data.decode() if isinstance(data, bytes | bytearray) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scanner()(text, start)
    except StopIteration as e:
        raise _error("Expecting value", text, e.value) from None
    except SystemError:
        # the C scanner builds most of its errors with ``json.decoder`` taken from
        # ``sys.modules``, and fails like this when nothing has imported it yet:
        # the error path pays for the import and gives json's own error
        import json

        return json.loads(text)
    rest = len(text) - len(text[end:].lstrip(_WHITESPACE))
    if rest != len(text):
        raise _error("Extra data", text, rest)
    return value


def _unserializable(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(
    value: Any, *, separators: tuple[str, str] = (", ", ": "), sort_keys: bool = False
) -> str:
    """``json.dumps`` without ``indent``."""
    try:
        from _json import encode_basestring_ascii, make_encoder
    except ImportError:
        import json

        return json.dumps(value, separators=separators, sort_keys=sort_keys)
    item_sep, key_sep = separators
    encode = make_encoder(
        {},  # markers: catches circular references, as json does
        _unserializable,
        encode_basestring_ascii,
        None,  # indent
        key_sep,
        item_sep,
        sort_keys,
        False,  # skipkeys
        True,  # allow_nan
    )
    return "".join(encode(value, 0))


# -- Go's encoding/json, for output that scripts compare with runc's -----------------

_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",  # Go escapes HTML's special characters by default
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_string(text: str) -> str:
    """A string as Go's ``encoding/json`` writes it: UTF-8 kept, ``<>&`` and control
    characters escaped (``\\u0008`` where Python writes ``\\b``)."""
    out = []
    for ch in text:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " " or "\ud800" <= ch <= "\udfff":
            out.append(f"\\u{ord(ch):04x}" if ch < " " else "\\ufffd")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def go_dumps(value: Any, indent: str = "") -> str:
    """``json.Marshal`` (compact) or, with ``indent``, ``json.MarshalIndent(v, "", indent)``
    of plain values; dict keys keep their order (give a Go struct's field order, or
    sort a Go map's keys before)."""
    out: list[str] = []
    _go_encode(value, out, indent, "\n" if indent else "")
    return "".join(out)


def _go_encode(value: Any, out: list[str], indent: str, newline: str) -> None:
    if isinstance(value, str):
        out.append(go_string(value))
    elif value is None or isinstance(value, bool):
        out.append("null" if value is None else ("true" if value else "false"))
    elif isinstance(value, int | float):
        out.append(str(int(value)) if isinstance(value, int) else _go_float(value))
    elif isinstance(value, dict):
        colon = ": " if indent else ":"
        items = [(go_string(str(k)) + colon, v) for k, v in value.items()]
        _go_container("{}", items, out, indent, newline)
    elif isinstance(value, list | tuple):
        _go_container("[]", [("", v) for v in value], out, indent, newline)
    else:
        _unserializable(value)


def _go_container(
    brackets: str, items: list[tuple[str, Any]], out: list[str], indent: str, newline: str
) -> None:
    if not items:
        out.append(brackets)
        return
    inner = newline + indent if indent else ""
    out.append(brackets[0])
    for i, (prefix, item) in enumerate(items):
        out.append(("," if i else "") + inner + prefix)
        _go_encode(item, out, indent, inner)
    out.append(newline + brackets[1])


def _go_float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"json: unsupported value: {value}")
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text
