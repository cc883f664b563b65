"""The function table a template may call: Go's builtins and docker's additions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from typing import Any

from capsa.cli.gotemplate.printf import printf
from capsa.cli.gotemplate.values import (
    MISSING,
    Fail,
    go_bytes,
    go_str,
    go_type,
    need_int,
    need_str,
    to_json,
    truth,
)


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is None:
            raise Fail("index of untyped nil")
        if isinstance(item, Mapping):
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise Fail(f"value has type {go_type(key)}; should be string")
            item = item.get(key, MISSING)
        elif isinstance(item, str | list | tuple):
            i = need_int(key)
            if not 0 <= i < len(item):
                raise Fail(f"index out of range: {i}")
            item = ord(item[i]) if isinstance(item, str) else item[i]
        else:
            raise Fail(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, str | list | tuple):
        raise Fail(f"can't slice item of type {go_type(item)}")
    if len(bounds) > 2:
        raise Fail("3-index slice is not supported")
    low, high = (list(map(need_int, bounds)) + [0, len(item)][len(bounds) :])[:2]
    if not 0 <= low <= len(item) or not 0 <= high <= len(item):
        raise Fail(f"index out of range: {high if 0 <= low <= len(item) else low}")
    if low > high:
        raise Fail(f"invalid slice index: {low} > {high}")
    return item[low:high]


def _len(value: Any) -> int:
    if not isinstance(value, Sized) or value is MISSING:
        raise Fail(f"len of type {go_type(value)}")
    return len(value)


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, list | tuple):
        raise Fail(f"wrong type for value; expected []string; got {go_type(items)}")
    return need_str(sep).join(map(go_str, items))


def _split(text: Any, sep: Any) -> list[str]:
    text, sep = need_str(text), need_str(sep)
    return text.split(sep) if sep else list(text)


def _title(text: Any) -> str:
    """Go's strings.Title: upper-case each letter that follows a separator."""
    out, prev = [], " "
    for ch in need_str(text):
        sep = not (prev.isalnum() or prev == "_") and (prev.isascii() or prev.isspace())
        out.append(ch.upper() if sep else ch)
        prev = ch
    return "".join(out)


_MAX_PAD = 1_000_000


def _pad(text: Any, prefix: Any, suffix: Any) -> str:
    text = need_str(text)
    before, after = need_int(prefix), need_int(suffix)
    for count in (before, after):
        if not 0 <= count <= _MAX_PAD:
            raise Fail(f"pad count {count} out of range (0 to {_MAX_PAD})")
    return " " * before + text + " " * after if text else text


def _truncate(text: Any, length: Any) -> str:
    return need_str(text)[: need_int(length)]


def _sprint(*args: Any) -> str:
    """Go's fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(arg))
    return "".join(out)


def _compare_kind(value: Any) -> str:
    if value is None or value is MISSING:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else ""


def _eq(first: Any, *others: Any) -> bool:
    for other in others:
        kinds = {_compare_kind(first), _compare_kind(other)}
        if "nil" in kinds:
            if kinds == {"nil"}:
                return True
        elif len(kinds) > 1 and "" not in kinds:
            raise Fail("incompatible types for comparison")
        elif first == other:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _compare_kind(a), _compare_kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise Fail("invalid type for comparison")
    if ka != kb:
        raise Fail("incompatible types for comparison")
    return bool(a < b)


def _html(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(*args)
    table = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(table.get(ch, ch) for ch in text)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(*args)
    return quote_plus(go_bytes(text))  # bytes that are not UTF-8 as %FF


FUNCS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name: (function, least args, most args or -1); "and"/"or" are evaluated lazily
    "eq": (_eq, 2, -1),
    "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_lt, 2, 2),
    "le": (lambda a, b: _lt(a, b) or _eq(a, b), 2, 2),
    "gt": (lambda a, b: not (_lt(a, b) or _eq(a, b)), 2, 2),
    "ge": (lambda a, b: not _lt(a, b), 2, 2),
    "not": (lambda a: not truth(a), 1, 1),
    "index": (_index, 1, -1),
    "slice": (_slice, 1, 3),
    "len": (_len, 1, 1),
    "print": (_sprint, 0, -1),
    "printf": (printf, 1, -1),
    "println": (lambda *a: " ".join(map(go_str, a)) + "\n", 0, -1),
    "html": (_html, 0, -1),
    "urlquery": (_urlquery, 0, -1),
    "json": (to_json, 1, 1),
    "split": (_split, 2, 2),
    "join": (_join, 2, 2),
    "title": (_title, 1, 1),
    "lower": (lambda s: need_str(s).lower(), 1, 1),
    "upper": (lambda s: need_str(s).upper(), 1, 1),
    "pad": (_pad, 3, 3),
    "truncate": (_truncate, 2, 2),
}
# docker's header functions: in a table's header row these return their first argument.
HEADER_PASSTHROUGH = frozenset(
    ("json", "split", "join", "title", "lower", "upper", "pad", "truncate", "index")
)
