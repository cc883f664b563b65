"""JSON <-> record conversion for OCI documents.

OCI documents use camelCase keys; our records use snake_case fields. A field's JSON
name is derived from its Python name (``cgroups_path`` -> ``cgroupsPath``) unless the
field says ``field(json="blockIO")``. Unknown keys are kept in ``extra`` when a record
declares that field, so nothing a newer spec adds is lost on a round trip.

Field types are read from the annotation strings (``list[Mount] | None``) once per
class, without ``typing.get_type_hints``, and turned into small converter functions.
"""

from __future__ import annotations

import sys

from capsa import record as rec
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")
    Converter = Callable[[Any, str], Any]

_PLANS: dict[type, _Plan] = {}


def json_name(f: rec.Field) -> str:
    if f.json:
        return f.json
    head, *rest = f.name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _scalar(kind: type, label: str) -> Converter:
    def convert(value: Any, where: str) -> Any:
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise InvalidArgument(f"{where}: expected {label}")
        return value

    return convert


_SCALARS: dict[str, Converter] = {
    "str": _scalar(str, "a string"),
    "int": _scalar(int, "an integer"),
    "bool": _scalar(bool, "true or false"),
    "float": _scalar(float, "a number"),
    "Any": lambda value, where: value,
    "object": lambda value, where: value,
}


def _converter(type_text: str, namespace: dict[str, Any]) -> Converter:
    options = [p for p in _split_top(type_text, "|") if p != "None"]
    if len(options) != 1:
        return _SCALARS["Any"]
    text = options[0]
    if text in _SCALARS:
        return _SCALARS[text]
    if text.startswith("list[") and text.endswith("]"):
        item = _converter(text[5:-1], namespace)

        def convert_list(value: Any, where: str) -> Any:
            if not isinstance(value, list):
                raise InvalidArgument(f"{where}: expected a list")
            try:
                return [item(v, where) for v in value]
            except InvalidArgument:  # again, to name the item (paths cost when built eagerly)
                return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

        return convert_list
    if text.startswith("dict[") and text.endswith("]"):
        _, value_text = _split_top(text[5:-1], ",")
        val = _converter(value_text, namespace)

        def convert_dict(value: Any, where: str) -> Any:
            if not isinstance(value, dict):
                raise InvalidArgument(f"{where}: expected an object")
            try:
                return {str(k): val(v, where) for k, v in value.items()}
            except InvalidArgument:
                return {str(k): val(v, f"{where}.{k}") for k, v in value.items()}

        return convert_dict
    target = namespace.get(text)
    if isinstance(target, type) and rec.is_record(target):
        return lambda value, where: from_dict(target, value, where)
    return _SCALARS["Any"]


class _Plan:
    """How to read one record class: (field, JSON key, converter) per field."""

    __slots__ = ("extra", "fields", "keys")

    def __init__(self, cls: type) -> None:
        namespace = vars(sys.modules[cls.__module__])
        self.fields = [
            (f.name, json_name(f), _converter(f.type, namespace))
            for f in rec.fields(cls)
            if f.name != "extra"
        ]
        self.keys = frozenset(key for _, key, _ in self.fields)
        self.extra = any(f.name == "extra" for f in rec.fields(cls))


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _Plan(cls)
    return plan


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build record ``cls`` from a decoded JSON object, checking types."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected an object")
    plan = _plan(cls)
    kwargs: dict[str, Any] = {}
    for name, key, convert in plan.fields:
        value = data.get(key)
        if value is not None:
            try:
                kwargs[name] = convert(value, where)
            except InvalidArgument:  # again, with the key in the path of the message
                kwargs[name] = convert(value, f"{where}.{key}")
    if plan.extra:
        kwargs["extra"] = {k: v for k, v in data.items() if k not in plan.keys}
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Record tree -> JSON-ready structure; ``None`` and empty extras are omitted."""
    if rec.is_record(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for name, key, _ in _plan(type(obj)).fields:
            value = getattr(obj, name)
            if value is not None:
                out[key] = to_dict(value)
        extra = getattr(obj, "extra", None)
        if extra:
            for k, v in extra.items():
                out.setdefault(k, v)
        return out
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
