"""capsa.enums: members behave as the standard ``enum.Enum``'s in what capsa uses."""

from __future__ import annotations

import copy
import enum
import pickle
import subprocess
import sys

import pytest

from capsa import enums
from capsa.engine.containers.types import Action, State


class Std(enum.Enum):
    FIRST = "first"
    SECOND = "second"
    THIRD = 3


class Lite(enums.Enum):
    FIRST = "first"
    SECOND = "second"
    THIRD = 3


def _same(expr: str) -> None:
    std, lite = eval(expr, {"Std": Std}), eval(expr.replace("Std", "Lite"), {"Lite": Lite})
    if isinstance(std, str):
        std = std.replace("Std", "Lite")
    assert lite == std, expr


@pytest.mark.parametrize(
    "expr",
    [
        "Std.FIRST.name",
        "Std.FIRST.value",
        "Std.THIRD.value",
        "repr(Std.SECOND)",
        "str(Std.SECOND)",
        "f'{Std.SECOND}'",
        "[m.name for m in Std]",
        "[m.value for m in Std]",
        "len(Std)",
        "Std('first') is Std.FIRST",
        "Std(3) is Std.THIRD",
        "Std(Std.SECOND) is Std.SECOND",
        "Std['SECOND'] is Std.SECOND",
        "Std.FIRST == Std.FIRST",
        "Std.FIRST != Std.SECOND",
        "Std.FIRST == 'first'",
        "hash(Std.FIRST) == hash('FIRST')",
        "isinstance(Std.FIRST, Std)",
        "Std.FIRST in Std",
        "len(frozenset(Std))",
        "len({Std.FIRST: 1, Std.FIRST: 2})",
        "sorted(m.value for m in Std if isinstance(m.value, str))",
    ],
)
def test_members_behave_as_the_standard_enums(expr: str) -> None:
    _same(expr)


def test_an_unknown_value_or_name_fails_as_the_standard_enum_does() -> None:
    for bad in ("nope", 4, None, ["first"]):
        with pytest.raises(ValueError) as std:
            Std(bad)
        with pytest.raises(ValueError) as lite:
            Lite(bad)
        assert str(lite.value) == str(std.value).replace("Std", "Lite")
    with pytest.raises(KeyError):
        Lite["NOPE"]


def test_members_are_read_only_singletons() -> None:
    with pytest.raises(AttributeError):
        Lite.FIRST = Lite.SECOND  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Lite.FIRST._value_ = "other"
    assert pickle.loads(pickle.dumps(Lite.SECOND)) is Lite.SECOND
    assert copy.copy(Lite.FIRST) is Lite.FIRST
    assert copy.deepcopy({"a": [Lite.FIRST]})["a"][0] is Lite.FIRST


def test_a_value_taken_twice_is_refused() -> None:
    with pytest.raises(TypeError):

        class Twice(enums.Enum):
            A = "x"
            B = "x"


def test_the_container_states_and_actions_are_cheap_ones_with_every_value() -> None:
    assert issubclass(State, enums.Enum) and issubclass(Action, enums.Enum)
    for kind in (State, Action):
        for member in kind:
            assert kind(member.value) is member and kind[member.name] is member
    assert State("running") is State.RUNNING and Action("force remove") is Action.FORCE_REMOVE


def test_importing_it_imports_no_enum_module() -> None:
    code = "import sys, capsa.enums; print('enum' in sys.modules, 'functools' in sys.modules)"
    # -I -S: no site hooks; capsa from this test's path
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n{code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["False", "False"]
