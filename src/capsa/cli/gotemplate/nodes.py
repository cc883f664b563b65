"""The parse tree: operands, pipelines and the control nodes that hold them."""

from __future__ import annotations

from typing import Any, NamedTuple


class Field(NamedTuple):  # .A.B, read from dot
    names: tuple[str, ...]
    pos: int


class Var(NamedTuple):  # $x or $x.A.B
    name: str
    names: tuple[str, ...]
    pos: int


class Dot(NamedTuple):
    pos: int


class Lit(NamedTuple):
    value: Any
    text: str
    pos: int


class Func(NamedTuple):
    name: str
    pos: int


class Sub(NamedTuple):  # (pipeline) or (pipeline).A.B
    pipe: Pipe
    names: tuple[str, ...]
    pos: int


Arg = Field | Var | Dot | Lit | Func | Sub


class Cmd(NamedTuple):
    args: list[Arg]


class Pipe(NamedTuple):
    decl: list[str]
    assign: bool  # `$x = ...` rather than `$x := ...`
    cmds: list[Cmd]
    pos: int


class Output(NamedTuple):
    pipe: Pipe


class Branch(NamedTuple):  # if / with
    is_with: bool
    pipe: Pipe
    body: list[Node]
    other: list[Node]


class Range(NamedTuple):
    pipe: Pipe
    body: list[Node]
    other: list[Node]


class Jump(NamedTuple):
    is_break: bool


Node = str | Output | Branch | Range | Jump
