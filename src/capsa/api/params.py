"""Reading a request: query parameters and JSON bodies, with Docker's conventions.

Every bad value raises ``InvalidArgument`` naming the parameter or field, which the
server answers with 400.
"""

from __future__ import annotations

import json

from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from aiohttp import web

    T = TypeVar("T")

_TRUE = {"1", "true", "True", "yes"}
_FALSE = {"0", "false", "False", "no", ""}


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's booleans in a query: ``1``/``true``; a present empty value is false."""
    value = request.query.get(name)
    if value is None:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidArgument(f"invalid value for {name}: {value!r}: not a boolean")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}: not an integer") from None


def query_str(request: web.Request, name: str, default: str = "") -> str:
    return request.query.get(name, default)


def query_list(request: web.Request, name: str) -> list[str]:
    """A parameter given several times (``?ps_args=aux``, ``?names=a&names=b``)."""
    return list(request.query.getall(name, []))


def query_filters(request: web.Request, name: str = "filters") -> dict[str, list[str]]:
    """Docker's ``filters`` parameter: JSON ``{"key": ["v", ...]}`` or the old
    ``{"key": {"v": true}}`` form, as ``{key: [values]}``."""
    text = request.query.get(name, "")
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"invalid filter: {name}: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"invalid filter: {name}: not a JSON object")
    out: dict[str, list[str]] = {}
    for key, values in doc.items():
        if isinstance(values, dict):
            out[key] = [str(v) for v, on in values.items() if on]
        elif isinstance(values, list):
            out[key] = [str(v) for v in values]
        elif isinstance(values, str):
            out[key] = [values]
        else:
            raise InvalidArgument(f"invalid filter: {key}: not a list of strings")
    return out


async def json_body(request: web.Request, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}`` unless ``required``."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise InvalidArgument("request body is empty: a JSON object is needed")
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON in request body: {e}") from None
    if doc is None and not required:
        return {}
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid request body: not a JSON object")
    return doc


def field(
    doc: dict[str, Any], name: str, kind: type[T] | tuple[type, ...], where: str = ""
) -> T | None:
    """``doc[name]`` if it is a ``kind`` (None when missing or null); a wrong type is a 400
    naming the field (``where``: the enclosing object, as in ``HostConfig.Memory``)."""
    value = doc.get(name)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds)
    if ok and isinstance(value, bool) and bool not in kinds:
        ok = False  # JSON true is not an integer
    if ok and int in kinds and float not in kinds and isinstance(value, float):
        ok = False
    if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        wanted = " or ".join(_json_type(k) for k in kinds)
        label = f"{where}.{name}" if where else name
        raise InvalidArgument(
            f"invalid type for field {label}: expected {wanted}, got {_json_type(type(value))}"
        )
    return value  # type: ignore[return-value]


def _json_type(kind: type) -> str:
    return {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(kind, kind.__name__)
