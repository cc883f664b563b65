"""Evaluation: walk a parsed template against data, reading fields and calling functions.

Data are dicts and lists with Docker's PascalCase keys, or objects whose public attributes
are read (``.CreatedAt`` also finds ``created_at``). Nothing is evaluated as Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from capsa.cli.gotemplate.funcs import FUNCS, HEADER_PASSTHROUGH
from capsa.cli.gotemplate.nodes import (
    Arg,
    Branch,
    Cmd,
    Dot,
    Field,
    Func,
    Lit,
    Node,
    Output,
    Pipe,
    Range,
    Sub,
    Var,
)
from capsa.cli.gotemplate.values import (
    MISSING,
    NONE,
    Fail,
    go_quote,
    go_str,
    go_type,
    record_fields,
    sorted_keys,
    truth,
)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Headers:
    """The dot of a table's header row: every field path reads as its column header."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def lookup(self, names: tuple[str, ...]) -> str:
        for key in (".".join(names), names[-1]):
            if key in self.names:
                return self.names[key]
        return " ".join(_words(names[-1])).upper()


# what one render may do: a template is the user's, but a typo in a range must end in an
# error, not in a process that fills memory or never returns (Go would do either)
MAX_STEPS = 1_000_000  # nodes walked and items ranged over
MAX_OUTPUT = 64 << 20  # characters written


class Exec:
    def __init__(self, root: Any) -> None:
        self.vars: list[list[Any]] = [["$", root]]
        self.out: list[str] = []
        self.header = isinstance(root, Headers)
        self.steps = 0
        self.size = 0

    def emit(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise Fail(f"the output is larger than {MAX_OUTPUT} characters")
        self.out.append(text)

    def walk(self, nodes: list[Node], dot: Any) -> None:
        self.steps += len(nodes)
        if self.steps > MAX_STEPS:
            raise Fail(f"evaluation takes more than {MAX_STEPS} steps")
        for node in nodes:
            if isinstance(node, str):
                self.emit(node)
            elif isinstance(node, Output):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.emit(go_str(value))
            elif isinstance(node, Branch):
                self.branch(node, dot)
            elif isinstance(node, Range):
                self.range(node, dot)
            else:
                raise _Break() if node.is_break else _Continue()

    def branch(self, node: Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            value = self.pipe(node.pipe, dot)
            if truth(value):
                self.walk(node.body, value if node.is_with else dot)
            else:
                self.walk(node.other, dot)
        finally:
            del self.vars[mark:]

    def range(self, node: Range, dot: Any) -> None:
        pipe = node.pipe
        empty, items = _iterate(self.pipe(pipe, dot, declare=False), pipe.pos)
        if empty:
            self.walk(node.other, dot)
        for key, elem in items:
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise Fail(f"evaluation takes more than {MAX_STEPS} steps", pipe.pos)
            mark = len(self.vars)
            values = [elem] if len(pipe.decl) == 1 else [key, elem]
            for name, value in zip(pipe.decl, values, strict=False):
                self.assign(name, value, pipe.assign)
            try:
                self.walk(node.body, elem)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[mark:]

    def assign(self, name: str, value: Any, existing: bool) -> None:
        if not existing:
            self.vars.append([name, value])
            return
        next(slot for slot in reversed(self.vars) if slot[0] == name)[1] = value

    def variable(self, name: str, pos: int) -> Any:
        for slot in reversed(self.vars):
            if slot[0] == name:
                return slot[1]
        raise Fail(f"undefined variable {go_quote(name)}", pos)

    def pipe(self, pipe: Pipe, dot: Any, declare: bool = True) -> Any:
        value = NONE
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        for name in pipe.decl if declare else []:
            self.assign(name, value, pipe.assign)
        return value

    def command(self, cmd: Cmd, dot: Any, final: Any) -> Any:
        first, rest = cmd.args[0], cmd.args[1:]
        if isinstance(first, Func):
            return self.call(first, rest, dot, final)
        base, names = self.term(first, dot), getattr(first, "names", ())
        if names:
            argv = [self.arg(a, dot) for a in rest] + ([] if final is NONE else [final])
            return self.chain(base, names, argv, first.pos)
        if isinstance(first, Lit) and first.text == "nil":
            raise Fail("nil is not a command", first.pos)
        if rest or final is not NONE:
            text = first.text if isinstance(first, Lit) else go_str(base)
            raise Fail(f"can't give argument to non-function {text}", first.pos)
        return base

    def term(self, node: Arg, dot: Any) -> Any:
        """An operand's value before its field chain."""
        if isinstance(node, Field | Dot):
            return dot
        if isinstance(node, Var):
            return self.variable(node.name, node.pos)
        if isinstance(node, Sub):
            return self.pipe(node.pipe, dot)
        if isinstance(node, Lit):
            return node.value
        return self.call(node, [], dot, NONE)

    def arg(self, node: Arg, dot: Any) -> Any:
        base, names = self.term(node, dot), getattr(node, "names", ())
        return self.chain(base, names, [], node.pos) if names else base

    def chain(self, obj: Any, names: tuple[str, ...], argv: list[Any], pos: int) -> Any:
        if isinstance(obj, Headers):
            return obj.lookup(names)
        for name in names[:-1]:
            obj = _field(obj, name, [], pos)
        return _field(obj, names[-1], argv, pos)

    def call(self, fn: Func, args: list[Arg], dot: Any, final: Any) -> Any:
        if fn.name in ("and", "or"):
            return self.logic(fn, args, dot, final)
        func, low, high = FUNCS[fn.name]
        argv = [self.arg(a, dot) for a in args] + ([] if final is NONE else [final])
        argv = [None if a is MISSING else a for a in argv]  # Go passes a zero value
        if len(argv) < low or (high >= 0 and len(argv) > high):
            want = f"at least {low}" if high < 0 else str(low) if low == high else f"{low}-{high}"
            raise Fail(f"wrong number of args for {fn.name}: want {want} got {len(argv)}", fn.pos)
        if self.header and fn.name in HEADER_PASSTHROUGH:
            return argv[0]
        try:
            value = func(*argv)
        except Fail as e:
            raise Fail(f"error calling {fn.name}: {e.msg}", fn.pos) from None
        if isinstance(value, str) and len(value) > MAX_OUTPUT:  # a string doubled in a loop
            raise Fail(f"{fn.name}: a result larger than {MAX_OUTPUT} characters", fn.pos)
        return value

    def logic(self, fn: Func, args: list[Arg], dot: Any, final: Any) -> Any:
        """``and`` / ``or``: the first falsy / truthy argument (or the last), lazily."""
        if not args and final is NONE:
            raise Fail(f"wrong number of args for {fn.name}: want at least 1 got 0", fn.pos)
        value = None
        for node in [*args, None]:
            if node is None and final is NONE:
                break
            value = final if node is None else self.arg(node, dot)
            if truth(value) != (fn.name == "and"):
                break
        return value


def _field(obj: Any, name: str, argv: list[Any], pos: int) -> Any:
    """``obj.name``: a map key (missing -> <no value>) or a public attribute or method."""
    if obj is MISSING:
        return MISSING
    if isinstance(obj, Mapping):
        if argv:
            # a mapping type may carry methods, as docker's ps rows have .Label "key"
            method = getattr(type(obj), name, None) if not name.startswith("_") else None
            if not callable(method):
                raise Fail(f"{name} is not a method but has arguments", pos)
            try:
                return method(obj, *argv)
            except Exception as e:
                raise Fail(f"error calling {name}: {e}", pos) from None
        value = obj.get(name, MISSING)
        return value.value if isinstance(value, Enum) else value
    if obj is None:
        raise Fail(f"nil pointer evaluating {name}", pos)
    value = _attribute(obj, name, pos)
    if value is MISSING:
        raise Fail(f"can't evaluate field {name} in type {go_type(obj)}", pos)
    if callable(value) and not isinstance(value, type):
        try:
            return value(*argv)
        except Exception as e:
            raise Fail(f"error calling {name}: {e}", pos) from None
    if argv:
        raise Fail(f"{name} has arguments but cannot be invoked as function", pos)
    return value


def _attribute(obj: Any, name: str, pos: int) -> Any:
    """A public attribute of a record (``CreatedAt`` also finds ``created_at``)."""
    if name.startswith("_") or (record_fields(obj) is None and isinstance(obj, _BASIC)):
        return MISSING
    try:
        value = getattr(obj, name, MISSING)
        if value is MISSING:
            value = getattr(obj, "_".join(_words(name)).lower(), MISSING)
    except Exception as e:
        raise Fail(f"can't evaluate field {name}: {e}", pos) from None
    return value.value if isinstance(value, Enum) else value


_BASIC = (str, bytes, int, float, complex, list, tuple, set, frozenset)


def _iterate(value: Any, pos: int) -> tuple[bool, Iterable[tuple[Any, Any]]]:
    """Whether ``value`` has no items, and its (key, item) pairs (an int: lazily)."""
    if value is None or value is MISSING:
        return True, ()
    if isinstance(value, Mapping):
        return not value, [(k, value[k]) for k in sorted_keys(value)]
    if isinstance(value, list | tuple):
        return not value, list(enumerate(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return value <= 0, ((i, i) for i in range(value))
    raise Fail(f"range can't iterate over {go_str(value)}", pos)


def _words(name: str) -> list[str]:
    """``CreatedAt`` -> ["Created", "At"], ``NetIO`` -> ["Net", "IO"]."""
    return re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+|[^A-Za-z0-9_]+", name) or [name]
