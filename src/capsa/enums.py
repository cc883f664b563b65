"""Enumerations that cost almost nothing to import: ``enum.Enum`` for start-up paths.

``import enum`` pulls in ``functools`` and ``collections`` and builds its own classes
through its metaclass: about 3.5 ms, a sixth of a cold ``capsa ps``. ``Enum`` here
gives members what capsa uses of the standard one: ``State.RUNNING``, ``.name``,
``.value``, ``State("running")`` (``ValueError`` for an unknown value), ``State["RUNNING"]``,
iteration and ``len`` in definition order, identity, hashing, ``repr``/``str`` and
pickling as ``enum`` has them. Type checkers see the standard ``enum.Enum`` (declare
``class State(Enum)`` with ``Enum`` imported as below), so members keep their types.

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from enum import Enum
    else:
        from capsa.enums import Enum
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


class EnumType(type):
    """Turns the public, non-callable attributes of a subclass's body into members."""

    _member_map_: dict[str, Any]
    _value2member_map_: dict[Any, Any]

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        cls = super().__new__(mcls, name, bases, dict(namespace))
        names: dict[str, Any] = {}
        values: dict[Any, Any] = {}
        for key, value in namespace.items():
            if key.startswith("_") or callable(value) or isinstance(value, _NOT_MEMBERS):
                continue
            if value in values:
                raise TypeError(f"{name}.{key}: the value {value!r} is taken (no aliases)")
            member: Any = object.__new__(cls)  # type: ignore[arg-type]
            object.__setattr__(member, "_name_", key)
            object.__setattr__(member, "_value_", value)
            type.__setattr__(cls, key, member)
            names[key] = values[value] = member
        type.__setattr__(cls, "_member_map_", names)
        type.__setattr__(cls, "_value2member_map_", values)
        return cls

    def __call__(cls, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls._value2member_map_[value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

    def __getitem__(cls, name: str) -> Any:
        return cls._member_map_[name]

    def __iter__(cls) -> Iterator[Any]:
        return iter(cls._member_map_.values())

    def __len__(cls) -> int:
        return len(cls._member_map_)

    def __contains__(cls, member: object) -> bool:
        return isinstance(member, cls)

    def __setattr__(cls, name: str, value: Any) -> None:
        if name in cls.__dict__.get("_member_map_", {}):
            raise AttributeError(f"cannot reassign member {name!r}")
        super().__setattr__(name, value)

    def __repr__(cls) -> str:
        return f"<enum {cls.__name__!r}>"


_NOT_MEMBERS = (staticmethod, classmethod, property)


class Enum(metaclass=EnumType):
    """Base of the enumerations (see the module's docstring)."""

    _name_: str
    _value_: Any

    @property
    def name(self) -> str:
        return self._name_

    @property
    def value(self) -> Any:
        return self._value_

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is read-only")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name_}: {self._value_!r}>"

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self._name_}"

    def __hash__(self) -> int:
        return hash(self._name_)

    def __reduce_ex__(self, protocol: object) -> tuple[Any, tuple[Any]]:
        return type(self), (self._value_,)

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: object) -> Any:
        return self
