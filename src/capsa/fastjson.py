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
