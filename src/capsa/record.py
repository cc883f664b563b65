"""Typed records: dataclass-like classes that cost almost nothing to define.

``capsa-runtime``'s start-up is benchmarked against runc, and ``dataclasses`` costs
there twice: importing it pulls in ``inspect`` (about 5 ms), and every decorated
class compiles its ``__init__``/``__repr__``/``__eq__`` with ``exec`` (about 0.3 ms a
class, 10 ms for the OCI spec alone). ``@record`` builds the same behaviour from
shared generic methods instead. Type checkers see records as
dataclasses (PEP 681 ``dataclass_transform``).

Fields are declared like dataclass fields; ``field(default_factory=..., json=...)``
adds a factory and the JSON key used by ``capsa.oci.codec``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_kwargs: object) -> object:
        return lambda fn: fn


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    __slots__ = ("default", "factory", "json", "name", "type")

    def __init__(
        self, default: Any = MISSING, factory: Any = MISSING, json: str | None = None
    ) -> None:
        self.name = ""
        self.type = ""
        self.default = default
        self.factory = factory
        self.json = json

    def make_default(self) -> Any:
        if self.factory is not MISSING:
            return self.factory()
        return self.default


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    json: str | None = None,
) -> Any:
    return Field(default, default_factory, json)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    record_fields = self.__record_fields__
    if len(args) > len(record_fields):
        raise TypeError(f"{type(self).__name__}() takes {len(record_fields)} arguments")
    for f, value in zip(record_fields, args, strict=False):
        if f.name in kwargs:
            raise TypeError(f"{type(self).__name__}() got {f.name!r} twice")
        kwargs[f.name] = value
    for f in record_fields:
        if f.name in kwargs:
            value = kwargs.pop(f.name)
        else:
            value = f.make_default()
            if value is MISSING:
                raise TypeError(f"{type(self).__name__}() missing argument {f.name!r}")
        object.__setattr__(self, f.name, value)
    if kwargs:
        raise TypeError(f"{type(self).__name__}() got unexpected arguments {sorted(kwargs)}")


def _repr(self: Any) -> str:
    inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__)
    return f"{type(self).__name__}({inner})"


def _eq(self: Any, other: Any) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return all(getattr(self, f.name) == getattr(other, f.name) for f in self.__record_fields__)


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, f.name) for f in self.__record_fields__))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")


@dataclass_transform(field_specifiers=(field,))
def record(cls: Any = None, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record of its annotated attributes (bases' fields first).

    ``@record(frozen=True)`` makes instances immutable and hashable.
    """
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)


def _make(cls: type[T], frozen: bool) -> type[T]:
    fields: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in getattr(base, "__record_fields__", ()):
            fields[f.name] = f
    for name, ann in cls.__dict__.get("__annotations__", {}).items():
        if isinstance(ann, str) and ann.startswith("ClassVar"):
            continue
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name, f.type = name, ann if isinstance(ann, str) else getattr(ann, "__name__", "")
        if isinstance(value, Field):
            if f.factory is MISSING and f.default is not MISSING:
                setattr(cls, name, f.default)
            else:
                delattr(cls, name)
        fields[name] = f
    cls.__record_fields__ = tuple(fields.values())  # type: ignore[attr-defined]
    cls.__init__ = _init  # type: ignore[method-assign]
    cls.__repr__ = _repr  # type: ignore[method-assign]
    cls.__eq__ = _eq  # type: ignore[method-assign]
    if frozen:
        cls.__setattr__ = _frozen_setattr  # type: ignore[method-assign]
        cls.__hash__ = _hash  # type: ignore[method-assign]
    else:
        cls.__hash__ = None  # type: ignore[assignment]
    return cls


def fields(obj: Any) -> tuple[Field, ...]:
    result: tuple[Field, ...] = obj.__record_fields__
    return result


def is_record(obj: Any) -> bool:
    return hasattr(obj, "__record_fields__")


def asdict(obj: Any) -> dict[str, Any]:
    """Record tree -> plain dicts/lists (for JSON)."""
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def _plain(value: Any) -> Any:
    if is_record(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def replace(obj: T, **changes: Any) -> T:
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    values.update(changes)
    return type(obj)(**values)
