"""JSON <-> dataclass conversion for OCI documents.

OCI documents use camelCase keys; our dataclasses use snake_case fields. A field's
JSON name is derived from its Python name (``cgroups_path`` -> ``cgroupsPath``) unless
the field carries ``metadata={"json": "blockIO"}``. Unknown keys are kept in
``extra`` when a dataclass declares that field, so nothing a newer spec adds is lost
on a round trip.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin

from capsa.errors import InvalidArgument

T = TypeVar("T")

_PLAN_CACHE: dict[type, list[tuple[str, str, Any]]] = {}


def json_name(field: dataclasses.Field[Any]) -> str:
    explicit = field.metadata.get("json")
    if explicit:
        return str(explicit)
    head, *rest = field.name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _plan(cls: type) -> list[tuple[str, str, Any]]:
    plan = _PLAN_CACHE.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = [
            (f.name, json_name(f), hints[f.name])
            for f in dataclasses.fields(cls)
            if f.name != "extra"
        ]
        _PLAN_CACHE[cls] = plan
    return plan


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _convert(tp: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    if _is_union(tp):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _convert(args[0], value, where)
        return value
    origin = get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            raise InvalidArgument(f"{where}: expected a list")
        (item,) = get_args(tp)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidArgument(f"{where}: expected an object")
        _, vt = get_args(tp)
        return {str(k): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InvalidArgument(f"{where}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{where}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgument(f"{where}: expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}: expected a string")
        return value
    return value


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from a decoded JSON object, checking types."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected an object")
    kwargs: dict[str, Any] = {}
    known: set[str] = set()
    for name, key, tp in _plan(cls):
        known.add(key)
        if key in data:
            kwargs[name] = _convert(tp, data[key], f"{where}.{key}")
    if "extra" in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> JSON-ready structure; ``None`` and empty extras are omitted."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for name, key, _ in _plan(type(obj)):
            value = getattr(obj, name)
            if value is None:
                continue
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
