"""The engine's typed values as JSON, both ways, for the capsa-native API (``/capsa/v1``).

Encoding walks the value: a record becomes an object of its fields (Python names),
an enum its value, a tuple a list, bytes base64 text, an error ``{"kind", "message"}``.
Decoding is driven by the type the receiver expects (a method's parameter or return
annotation, a record's field annotations), so the same classes come back: records,
enums, generic ``ItemReport[T]``, unions with ``None``, lists, tuples and dicts of them.

Annotation strings are evaluated in their module's namespace, then in the names the
engine's protocol declares (``capsa.engine.protocol.type_namespace``), since most
modules import their annotation types only for type checkers. No work at import time.
"""

from __future__ import annotations

import base64
import types
import typing

from capsa import errors, record
from capsa.errors import CapsaError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_HINTS: dict[object, dict[str, Any]] = {}


def encode(value: Any) -> Any:
    """A JSON-ready structure of ``value``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if is_enum(type(value)):
        return encode(value.value)
    if isinstance(value, CapsaError):
        return error_doc(value)
    if record.is_record(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in record.fields(value)}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot send a {type(value).__name__} over the API")


def is_enum(tp: Any) -> bool:
    """An enumeration: ``enum.Enum``'s or ``capsa.enums``' (they share these maps)."""
    return isinstance(tp, type) and hasattr(tp, "_value2member_map_")


def error_doc(err: BaseException) -> dict[str, str]:
    kind = type(err).__name__ if isinstance(err, CapsaError) else "Internal"
    return {"kind": kind, "message": str(err)}


def error_from(doc: Any, fallback: str = "error") -> CapsaError:
    """The ``capsa.errors`` kind a ``{"kind", "message"}`` document names."""
    if not isinstance(doc, dict):
        return errors.Internal(fallback)
    message = str(doc.get("message") or fallback)
    kind = getattr(errors, str(doc.get("kind") or ""), None)
    if not (isinstance(kind, type) and issubclass(kind, CapsaError)):
        kind = errors.Internal
    return kind(message)


def decode(tp: Any, data: Any, where: str = "value") -> Any:
    """``data`` (decoded JSON) as a value of type ``tp``."""
    if tp is typing.Any or tp is object:
        return data
    if tp is None or tp is type(None):
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _union(typing.get_args(tp), data, where)
    if origin is typing.Literal:
        return data
    if isinstance(tp, typing.TypeVar):
        return data
    if origin is None and isinstance(tp, type):
        return _plain(tp, data, where)
    args = typing.get_args(tp)
    if origin in (list, set, frozenset) or _is_abc(origin, "Sequence", "Iterable"):
        items = [decode(args[0] if args else typing.Any, v, where) for v in _list(data, where)]
        return set(items) if origin is set else items
    if origin is tuple:
        seq = _list(data, where)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v, where) for v in seq)
        return tuple(decode(t, v, where) for t, v in zip(args, seq, strict=False))
    if origin is dict or _is_abc(origin, "Mapping"):
        if not isinstance(data, dict):
            raise errors.InvalidArgument(f"{where}: expected an object")
        val = args[1] if len(args) == 2 else typing.Any
        return {k: decode(val, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(origin, type) and record.is_record(origin):
        params = getattr(origin, "__parameters__", ())
        return _record(origin, data, where, dict(zip(params, args, strict=False)))
    return data


def _is_abc(origin: Any, *names: str) -> bool:
    return getattr(origin, "__module__", "") == "collections.abc" and origin.__name__ in names


def _list(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise errors.InvalidArgument(f"{where}: expected a list")
    return data


def _union(options: tuple[Any, ...], data: Any, where: str) -> Any:
    if data is None:
        return None
    real = [t for t in options if t is not type(None)]
    if len(real) == 1:
        return decode(real[0], data, where)
    for t in real:  # the first that takes it
        try:
            return decode(t, data, where)
        except (errors.InvalidArgument, TypeError, ValueError):
            continue
    raise errors.InvalidArgument(f"{where}: unexpected value")


def _plain(tp: type, data: Any, where: str) -> Any:
    if is_enum(tp):
        try:
            return tp(data)
        except ValueError:
            raise errors.InvalidArgument(f"{where}: unknown value {data!r}") from None
    if issubclass(tp, BaseException):
        return error_from(data)
    if record.is_record(tp):
        return _record(tp, data, where, {})
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if tp is bytes:
        return base64.b64decode(str(data))
    if tp in (int, str, bool, float):
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise errors.InvalidArgument(f"{where}: expected {tp.__name__}")
        return data
    return data


def _record(cls: type, data: Any, where: str, bound: dict[Any, Any]) -> Any:
    if not isinstance(data, dict):
        raise errors.InvalidArgument(f"{where}: expected an object")
    hints = field_types(cls)
    kwargs = {}
    for f in record.fields(cls):
        if f.name in data:
            tp = _bind(hints.get(f.name, typing.Any), bound)
            kwargs[f.name] = decode(tp, data[f.name], f"{where}.{f.name}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise errors.InvalidArgument(f"{where}: {e}") from None


def _bind(tp: Any, bound: dict[Any, Any]) -> Any:
    """``tp`` with the type variables of a generic record replaced by their arguments."""
    if not bound:
        return tp
    if isinstance(tp, typing.TypeVar):
        return bound.get(tp, typing.Any)
    args = typing.get_args(tp)
    if not args:
        return tp
    new = tuple(_bind(a, bound) for a in args)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[new]  # noqa: UP007
    try:
        return tp.copy_with(new)
    except AttributeError:
        return origin[new] if origin is not None else tp


def field_types(cls: type) -> dict[str, Any]:
    """A record's field types, evaluated once."""
    got = _HINTS.get(cls)
    if got is None:
        import sys

        module = vars(sys.modules[cls.__module__])
        got = {f.name: evaluate(f.type, module) for f in record.fields(cls)}
        _HINTS[cls] = got
    return got


def hints(fn: Any) -> dict[str, Any]:
    """A function's parameter and return types (``return``), evaluated once."""
    got = _HINTS.get(fn)
    if got is None:
        import sys

        module = vars(sys.modules[fn.__module__])
        got = {k: evaluate(v, module) for k, v in fn.__annotations__.items()}
        _HINTS[fn] = got
    return got


def evaluate(text: Any, module: dict[str, Any]) -> Any:
    """An annotation string as a type (``Any`` when it names what we cannot see)."""
    if not isinstance(text, str):
        return text
    if not text:
        return typing.Any
    try:
        return eval(text, {}, _Names(module))  # annotations of our own modules
    except Exception:
        return typing.Any


if TYPE_CHECKING:
    _Dict = dict[str, Any]
else:
    _Dict = dict


class _Names(_Dict):
    """An annotation's module's names, then the protocol's (then the builtins)."""

    def __init__(self, module: dict[str, Any]) -> None:
        super().__init__()
        self.module = module

    def __missing__(self, name: str) -> Any:
        from capsa.engine.protocol import type_namespace

        if name in self.module:
            return self.module[name]
        names = type_namespace()
        if name in names:
            return names[name]
        raise KeyError(name)
