"""Docker-style ``--format`` templates: a small, safe subset of Go's text/template.

``render("{{.ID}} {{json .Labels}}", row)`` renders one object; ``Template`` parses once
and renders many; ``table`` lays rows out in columns as ``docker ps --format 'table ...'``
does (Go's tabwriter with minimum width 10 and padding 3). Data are dicts and lists with
Docker's PascalCase keys, or objects whose public attributes are read (``.CreatedAt``
also finds ``created_at``). Nothing is evaluated as Python: a template reads fields and
calls the functions in ``_FUNCS``, nothing else.

Deliberate differences from Go: numbers compare across int and float, ``len`` counts
characters rather than bytes, quoted strings may hold a raw newline (docker's CLI turns
a typed ``\\n`` into one before parsing), and ``json`` keeps dict order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence, Sized
from enum import Enum
from typing import Any, NamedTuple

from capsa.errors import InvalidArgument

__all__ = ["Template", "format_rows", "render", "table", "tabwrite"]


def render(template: str, data: Any) -> str:
    """Render ``template`` once against ``data``."""
    return Template(template).render(data)


def table(template: str, rows: Sequence[Any], headers: Mapping[str, str] | None = None) -> str:
    """A header row and one row per item, aligned like ``docker ps --format 'table ...'``.

    The leading ``table`` keyword is optional. A header cell is ``headers`` looked up by
    the field path (``"State.Status"``), then by the last field name (``"ID"``), else the
    field name split into upper-case words (``CreatedAt`` -> ``CREATED AT``). No trailing
    newline.
    """
    tmpl = Template(_strip_table(template))
    lines = [tmpl.render_header(headers)] + [tmpl.render(row) for row in rows]
    return tabwrite("\n".join(lines))


def format_rows(
    fmt: str,
    rows: Sequence[Any],
    headers: Mapping[str, str] | None = None,
    *,
    default: str = "",
) -> str:
    """Docker's ``--format`` dispatch: ``json``, ``table ...`` or a plain per-row template.

    An empty format or a bare ``table`` uses ``default``. No trailing newline.
    """
    if fmt.strip(" ") in ("", "table"):
        fmt = default
    if fmt.strip(" ") == "json":
        fmt = "{{json .}}"
    if fmt.startswith("table"):
        return table(fmt, rows, headers)
    tmpl = Template(fmt.strip(" "))
    return "\n".join(tmpl.render(row) for row in rows)


class Template:
    """A parsed template; ``render`` it against any number of objects."""

    def __init__(self, text: str, *, unescape: bool = True) -> None:
        self._original = text
        self._shifts: list[int] = []
        self.source = self._unescape(text) if unescape else text
        try:
            self._nodes = _Parser(_lex(self.source)).parse()
        except _Fail as e:
            raise self._error(e) from None

    def render(self, data: Any) -> str:
        """The template's output for ``data``; InvalidArgument when evaluation fails."""
        return self._run(data, data)

    def render_header(self, headers: Mapping[str, str] | None = None) -> str:
        """The template's output with every field replaced by its column header."""
        names = _Headers(headers or {})
        return self._run(names, names)

    def _run(self, root: Any, dot: Any) -> str:
        run = _Exec(root)
        try:
            run.walk(self._nodes, dot)
        except _Fail as e:
            raise self._error(e) from None
        return "".join(run.out)

    def _unescape(self, text: str) -> str:
        """docker's CLI turns a typed ``\\t`` and ``\\n`` into a tab and a newline."""
        parts: list[str] = []
        last = 0
        for m in re.finditer(r"\\([tn])", text):
            parts.append(text[last : m.start()])
            self._shifts.append(sum(map(len, parts)))
            parts.append("\t" if m.group(1) == "t" else "\n")
            last = m.end()
        parts.append(text[last:])
        return "".join(parts)

    def _error(self, e: _Fail) -> InvalidArgument:
        if e.pos < 0:
            return InvalidArgument(f"template: {e.msg}")
        pos = e.pos + sum(1 for s in self._shifts if s < e.pos)
        line = self._original.count("\n", 0, pos) + 1
        col = pos - (self._original.rfind("\n", 0, pos) + 1) + 1
        where = f"column {col}" if line == 1 else f"line {line}, column {col}"
        return InvalidArgument(f"template: {e.msg} at {where}")


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells like Go's text/tabwriter (padchar ' ', no flags).

    A line's last cell (after its last tab) is not part of any column; a column block
    ends at the first line that has no cell in that column.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def emit(first: int, stop: int) -> None:
        for cells in lines[first:stop]:
            padded = [c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells)]
            out.append("".join(padded))

    def block(first: int, stop: int) -> None:
        column, this = len(widths), first
        while this < stop:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            emit(first, this)
            first, width = this, minwidth
            while this < stop and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            block(first, this)
            widths.pop()
            first = this
        emit(first, stop)

    block(0, len(lines))
    return "\n".join(out)


def _strip_table(fmt: str) -> str:
    return (fmt[len("table") :] if fmt.startswith("table") else fmt).strip(" ")


# --- errors and sentinels ------------------------------------------------------------


class _Fail(Exception):
    """A template error at an offset of the source (-1: none); made public by Template."""

    def __init__(self, msg: str, pos: int = -1) -> None:
        super().__init__(msg)
        self.msg, self.pos = msg, pos


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_MISSING: Any = _Sentinel("<no value>")  # a missing map key, like Go's invalid Value
_NONE: Any = _Sentinel("<no argument>")  # no value piped in from a previous command


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# --- lexer ---------------------------------------------------------------------------

_SPACE = " \t\r\n"
_TOKEN = r"""(?P<decl>:=)
    | (?P<number>[+-]?(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))
    | (?P<field>(?:\.[^\W\d]\w*)+)
    | (?P<var>\$\w*)
    | (?P<dot>\.)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\]|\\.)+')
    | (?P<ident>[^\W\d]\w*)
    | (?P<punct>[|(),=])"""
_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue"}
_UNSUPPORTED = {"define", "template", "block"}


class _Tok(NamedTuple):
    kind: str
    text: str
    pos: int
    spaced: bool  # whitespace before it: `.A .B` is two operands, `$x.B` one


class _Action(NamedTuple):
    tokens: list[_Tok]
    pos: int  # offset of its "{{"

    @property
    def word(self) -> str:
        first = self.tokens[0] if self.tokens else None
        return first.text if first and first.kind == "ident" and first.text in _KEYWORDS else ""


def _space_at(src: str, i: int) -> bool:
    return i < len(src) and src[i] in _SPACE


def _lex(src: str) -> list[str | _Action]:
    """Split ``src`` into text and actions, applying ``{{-`` / ``-}}`` trimming."""
    items: list[str | _Action] = []
    pos, trim = 0, False
    while True:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        if trim:
            text = text.lstrip(_SPACE)
        if start < 0:
            items.append(text)
            return items
        body = start + 2
        if src.startswith("-", body) and _space_at(src, body + 1):
            text, body = text.rstrip(_SPACE), body + 2
        items.append(text)
        if src.startswith("/*", body):
            pos, trim = _lex_comment(src, body, start)
            continue
        action, pos, trim = _lex_action(src, body, start)
        items.append(action)


def _close(src: str, pos: int) -> tuple[int, bool] | None:
    """Where an action closing at ``pos`` ends, and whether it trims; None: not closing."""
    j = pos
    while _space_at(src, j):
        j += 1
    if j > pos and src.startswith("-}}", j):
        return j + 3, True
    if src.startswith("}}", pos):
        return pos + 2, False
    return None


def _lex_comment(src: str, pos: int, start: int) -> tuple[int, bool]:
    end = src.find("*/", pos + 2)
    if end < 0:
        raise _Fail("unclosed comment", start)
    closing = _close(src, end + 2)
    if closing is None:
        raise _Fail("comment ends before closing delimiter", start)
    return closing


def _lex_action(src: str, pos: int, start: int) -> tuple[_Action, int, bool]:
    tokens: list[_Tok] = []
    spaced = True
    while True:
        closing = _close(src, pos)
        if closing is not None:
            return _Action(tokens, start), *closing
        if _space_at(src, pos):
            spaced, pos = True, pos + 1
            continue
        m = re.compile(_TOKEN, re.VERBOSE | re.DOTALL).match(src, pos)  # re caches it
        if m is None or m.lastgroup is None:
            raise _Fail(_bad_char(src, pos), pos if pos < len(src) else start)
        if m.lastgroup == "number" and re.match(r"[\w.]", src[m.end() : m.end() + 1]):
            raise _Fail(f"bad number syntax: {_go_quote(src[pos : m.end() + 1])}", pos)
        tokens.append(_Tok(m.lastgroup, m.group(), pos, spaced))
        spaced, pos = False, m.end()


def _bad_char(src: str, pos: int) -> str:
    if pos >= len(src):
        return "unclosed action"
    char = src[pos]
    if char in "\"'`":
        return "unterminated quoted string"
    return f"unexpected {_go_quote(char)} in command"


# --- parse tree ----------------------------------------------------------------------


class _Field(NamedTuple):  # .A.B, read from dot
    names: tuple[str, ...]
    pos: int


class _Var(NamedTuple):  # $x or $x.A.B
    name: str
    names: tuple[str, ...]
    pos: int


class _Dot(NamedTuple):
    pos: int


class _Lit(NamedTuple):
    value: Any
    text: str
    pos: int


class _Func(NamedTuple):
    name: str
    pos: int


class _Sub(NamedTuple):  # (pipeline) or (pipeline).A.B
    pipe: _Pipe
    names: tuple[str, ...]
    pos: int


_Arg = _Field | _Var | _Dot | _Lit | _Func | _Sub


class _Cmd(NamedTuple):
    args: list[_Arg]


class _Pipe(NamedTuple):
    decl: list[str]
    assign: bool  # `$x = ...` rather than `$x := ...`
    cmds: list[_Cmd]
    pos: int


class _Output(NamedTuple):
    pipe: _Pipe


class _Branch(NamedTuple):  # if / with
    is_with: bool
    pipe: _Pipe
    body: list[_Node]
    other: list[_Node]


class _Range(NamedTuple):
    pipe: _Pipe
    body: list[_Node]
    other: list[_Node]


class _Jump(NamedTuple):
    is_break: bool


_Node = str | _Output | _Branch | _Range | _Jump


class _Stream:
    def __init__(self, tokens: list[_Tok], pos: int) -> None:
        self.tokens, self.i, self.pos = tokens, 0, pos

    def peek(self, ahead: int = 0) -> _Tok | None:
        i = self.i + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def next(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok


def _is(tok: _Tok | None, *punct: str) -> bool:
    return tok is not None and tok.kind in ("punct", "decl") and tok.text in punct


class _Parser:
    def __init__(self, items: list[str | _Action]) -> None:
        self.items, self.i = items, 0
        self.vars: list[str] = ["$"]
        self.loops = 0

    def parse(self) -> list[_Node]:
        nodes, stop = self._list()
        if stop is not None:
            raise _Fail(f"unexpected {{{{{stop.word}}}}}", stop.pos)
        return nodes

    def _list(self) -> tuple[list[_Node], _Action | None]:
        """Nodes up to an ``{{end}}`` or ``{{else}}`` (returned) or the end of input."""
        nodes: list[_Node] = []
        while self.i < len(self.items):
            item = self.items[self.i]
            self.i += 1
            if isinstance(item, str):
                if item:
                    nodes.append(item)
            elif item.word in ("end", "else"):
                return nodes, item
            else:
                nodes.append(self._action(item))
        return nodes, None

    def _action(self, act: _Action) -> _Node:
        word = act.word
        if word in ("if", "with", "range"):
            return self._control(word, act, 1)
        if word in ("break", "continue"):
            if self.loops == 0 or len(act.tokens) > 1:
                raise _Fail(f"{{{{{word}}}}} outside {{{{range}}}}", act.pos)
            return _Jump(word == "break")
        first = act.tokens[0] if act.tokens else None
        if first is not None and first.kind == "ident" and first.text in _UNSUPPORTED:
            raise _Fail(f"{{{{{first.text}}}}} is not supported", first.pos)
        return _Output(self._pipeline(_Stream(act.tokens, act.pos), "command"))

    def _control(self, word: str, act: _Action, skip: int) -> _Node:
        mark = len(self.vars)
        stream = _Stream(act.tokens, act.pos)
        stream.i = skip
        pipe = self._pipeline(stream, word)
        inner = len(self.vars)
        self.loops += word == "range"
        body, stop = self._list()
        self.loops -= word == "range"
        del self.vars[inner:]
        if stop is None:
            raise _Fail(f"missing {{{{end}}}} for {{{{{word}}}}}", act.pos)
        other = self._else(word, stop) if stop.word == "else" else []
        if stop.word == "end":
            self._expect_end(stop)
        del self.vars[mark:]
        if word == "range":
            return _Range(pipe, body, other)
        return _Branch(word == "with", pipe, body, other)

    def _else(self, word: str, act: _Action) -> list[_Node]:
        if len(act.tokens) > 1:  # {{else if ...}} / {{else with ...}} share the {{end}}
            nxt = act.tokens[1]
            if nxt.text != word or word == "range":
                raise _Fail(f"unexpected {_go_quote(nxt.text)} after {{{{else}}}}", nxt.pos)
            return [self._control(word, act, 2)]
        body, stop = self._list()
        if stop is None:
            raise _Fail(f"missing {{{{end}}}} for {{{{{word}}}}}", act.pos)
        self._expect_end(stop)
        return body

    def _expect_end(self, act: _Action) -> None:
        if act.word != "end":
            raise _Fail(f"expected {{{{end}}}}, found {{{{{act.word}}}}}", act.pos)
        if len(act.tokens) > 1:
            extra = act.tokens[1]
            raise _Fail(f"unexpected {_go_quote(extra.text)} in {{{{end}}}}", extra.pos)

    def _pipeline(self, s: _Stream, ctx: str, nested: bool = False) -> _Pipe:
        first = s.peek()
        pos = first.pos if first else s.pos
        decl, assign = self._decl(s, ctx)
        cmds: list[_Cmd] = []
        while True:
            args: list[_Arg] = []
            while (tok := s.peek()) is not None and not _is(tok, "|", ")"):
                args.append(self._operand(s))
            if not args:
                raise _Fail(f"missing value for {ctx}", tok.pos if tok else pos)
            cmds.append(_Cmd(args))
            if not _is(s.peek(), "|"):
                break
            s.next()
        tok = s.peek()
        if nested and tok is None:
            raise _Fail("unclosed left paren", pos)
        if not nested and tok is not None:
            raise _Fail("unexpected right paren", tok.pos)
        if not assign:
            self.vars.extend(decl)
        return _Pipe(decl, assign, cmds, pos)

    def _decl(self, s: _Stream, ctx: str) -> tuple[list[str], bool]:
        toks = [s.peek(k) for k in range(4)]
        if toks[0] is None or toks[0].kind != "var":
            return [], False
        if _is(toks[1], ":=", "="):
            names, op = [toks[0].text], toks[1]
        elif _is(toks[1], ",") and toks[2] and toks[2].kind == "var" and _is(toks[3], ":=", "="):
            if ctx != "range":
                raise _Fail(f"too many declarations in {ctx}", toks[0].pos)
            names, op = [toks[0].text, toks[2].text], toks[3]
        else:
            return [], False
        if op is None:  # unreachable: _is() checked it; this narrows the type
            return [], False
        s.i += 2 * len(names)
        for name in names if op.text == "=" else []:
            if name not in self.vars:
                raise _Fail(f"undefined variable {_go_quote(name)}", op.pos)
        return names, op.text == "="

    def _operand(self, s: _Stream) -> _Arg:
        tok = s.next()
        node = self._term(tok, s)
        nxt = s.peek()
        if nxt is not None and nxt.kind == "field" and not nxt.spaced:
            if not isinstance(node, _Var | _Sub):
                raise _Fail(f"unexpected {_go_quote(nxt.text)} in operand", nxt.pos)
            return node._replace(names=tuple(s.next().text[1:].split(".")))
        return node

    def _term(self, tok: _Tok, s: _Stream) -> _Arg:
        kind, text, pos = tok.kind, tok.text, tok.pos
        if kind == "field":
            return _Field(tuple(text[1:].split(".")), pos)
        if kind == "dot":
            return _Dot(pos)
        if kind == "var":
            if text not in self.vars:
                raise _Fail(f"undefined variable {_go_quote(text)}", pos)
            return _Var(text, (), pos)
        if _is(tok, "("):
            pipe = self._pipeline(s, "parenthesized pipeline", nested=True)
            s.next()
            return _Sub(pipe, (), pos)
        if kind == "ident":
            return self._ident(tok)
        if kind in ("string", "raw", "char", "number"):
            return _Lit(_literal(kind, text, pos), text, pos)
        raise _Fail(f"unexpected {_go_quote(text)} in operand", pos)

    def _ident(self, tok: _Tok) -> _Arg:
        consts = {"true": True, "false": False, "nil": None}
        if tok.text in consts:
            return _Lit(consts[tok.text], tok.text, tok.pos)
        if tok.text in _KEYWORDS or tok.text in _UNSUPPORTED:
            raise _Fail(f"unexpected {{{{{tok.text}}}}} in operand", tok.pos)
        if tok.text not in _FUNCS and tok.text not in ("and", "or"):
            raise _Fail(f"function {_go_quote(tok.text)} not defined", tok.pos)
        return _Func(tok.text, tok.pos)


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = (
    r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})"
    r"|U([0-9a-fA-F]{8})|(.?))"
)


def _unquote(body: str, pos: int) -> str:
    def one(m: re.Match[str]) -> str:
        named, *codes, bad = m.groups()
        if bad is not None:
            raise _Fail(f"invalid escape \\{bad} in string", pos)
        if named:
            return _ESCAPES.get(named, named)
        base = (16, 8, 16, 16)
        return next(chr(int(c, b)) for c, b in zip(codes, base, strict=True) if c)

    return re.sub(_ESCAPE, one, body, flags=re.DOTALL)


def _literal(kind: str, text: str, pos: int) -> Any:
    if kind == "raw":
        return text[1:-1]
    if kind == "string":
        return _unquote(text[1:-1], pos)
    if kind == "char":
        char = _unquote(text[1:-1], pos)
        if len(char) != 1:
            raise _Fail(f"malformed character constant: {text}", pos)
        return ord(char)
    digits = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xXoObB].*", digits):
            return int(digits, 0)
        if re.fullmatch(r"[+-]?0\d+", digits):
            return int(digits, 8)
        return float(digits) if re.search(r"[.eE]", digits) else int(digits)
    except ValueError:
        raise _Fail(f"bad number syntax: {_go_quote(text)}", pos) from None


# --- evaluation ----------------------------------------------------------------------


class _Headers:
    """The dot of a table's header row: every field path reads as its column header."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def lookup(self, names: tuple[str, ...]) -> str:
        for key in (".".join(names), names[-1]):
            if key in self.names:
                return self.names[key]
        return " ".join(_words(names[-1])).upper()


class _Exec:
    def __init__(self, root: Any) -> None:
        self.vars: list[list[Any]] = [["$", root]]
        self.out: list[str] = []
        self.header = isinstance(root, _Headers)

    def walk(self, nodes: list[_Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif isinstance(node, _Output):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(_go_str(value))
            elif isinstance(node, _Branch):
                self.branch(node, dot)
            elif isinstance(node, _Range):
                self.range(node, dot)
            else:
                raise _Break() if node.is_break else _Continue()

    def branch(self, node: _Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            value = self.pipe(node.pipe, dot)
            if _truth(value):
                self.walk(node.body, value if node.is_with else dot)
            else:
                self.walk(node.other, dot)
        finally:
            del self.vars[mark:]

    def range(self, node: _Range, dot: Any) -> None:
        pipe = node.pipe
        items = _iterate(self.pipe(pipe, dot, declare=False), pipe.pos)
        if not items:
            self.walk(node.other, dot)
        for key, elem in items:
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
        raise _Fail(f"undefined variable {_go_quote(name)}", pos)

    def pipe(self, pipe: _Pipe, dot: Any, declare: bool = True) -> Any:
        value = _NONE
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        for name in pipe.decl if declare else []:
            self.assign(name, value, pipe.assign)
        return value

    def command(self, cmd: _Cmd, dot: Any, final: Any) -> Any:
        first, rest = cmd.args[0], cmd.args[1:]
        if isinstance(first, _Func):
            return self.call(first, rest, dot, final)
        base, names = self.term(first, dot), getattr(first, "names", ())
        if names:
            argv = [self.arg(a, dot) for a in rest] + ([] if final is _NONE else [final])
            return self.chain(base, names, argv, first.pos)
        if isinstance(first, _Lit) and first.text == "nil":
            raise _Fail("nil is not a command", first.pos)
        if rest or final is not _NONE:
            text = first.text if isinstance(first, _Lit) else _go_str(base)
            raise _Fail(f"can't give argument to non-function {text}", first.pos)
        return base

    def term(self, node: _Arg, dot: Any) -> Any:
        """An operand's value before its field chain."""
        if isinstance(node, _Field | _Dot):
            return dot
        if isinstance(node, _Var):
            return self.variable(node.name, node.pos)
        if isinstance(node, _Sub):
            return self.pipe(node.pipe, dot)
        if isinstance(node, _Lit):
            return node.value
        return self.call(node, [], dot, _NONE)

    def arg(self, node: _Arg, dot: Any) -> Any:
        base, names = self.term(node, dot), getattr(node, "names", ())
        return self.chain(base, names, [], node.pos) if names else base

    def chain(self, obj: Any, names: tuple[str, ...], argv: list[Any], pos: int) -> Any:
        if isinstance(obj, _Headers):
            return obj.lookup(names)
        for name in names[:-1]:
            obj = _field(obj, name, [], pos)
        return _field(obj, names[-1], argv, pos)

    def call(self, fn: _Func, args: list[_Arg], dot: Any, final: Any) -> Any:
        if fn.name in ("and", "or"):
            return self.logic(fn, args, dot, final)
        func, low, high = _FUNCS[fn.name]
        argv = [self.arg(a, dot) for a in args] + ([] if final is _NONE else [final])
        argv = [None if a is _MISSING else a for a in argv]  # Go passes a zero value
        if len(argv) < low or (high >= 0 and len(argv) > high):
            want = f"at least {low}" if high < 0 else str(low) if low == high else f"{low}-{high}"
            raise _Fail(f"wrong number of args for {fn.name}: want {want} got {len(argv)}", fn.pos)
        if self.header and fn.name in _HEADER_PASSTHROUGH:
            return argv[0]
        try:
            return func(*argv)
        except _Fail as e:
            raise _Fail(f"error calling {fn.name}: {e.msg}", fn.pos) from None

    def logic(self, fn: _Func, args: list[_Arg], dot: Any, final: Any) -> Any:
        """``and`` / ``or``: the first falsy / truthy argument (or the last), lazily."""
        if not args and final is _NONE:
            raise _Fail(f"wrong number of args for {fn.name}: want at least 1 got 0", fn.pos)
        value = None
        for node in [*args, None]:
            if node is None and final is _NONE:
                break
            value = final if node is None else self.arg(node, dot)
            if _truth(value) != (fn.name == "and"):
                break
        return value


def _field(obj: Any, name: str, argv: list[Any], pos: int) -> Any:
    """``obj.name``: a map key (missing -> <no value>) or a public attribute or method."""
    if obj is _MISSING:
        return _MISSING
    if isinstance(obj, Mapping):
        if argv:
            raise _Fail(f"{name} is not a method but has arguments", pos)
        value = obj.get(name, _MISSING)
        return value.value if isinstance(value, Enum) else value
    if obj is None:
        raise _Fail(f"nil pointer evaluating {name}", pos)
    value = _attribute(obj, name, pos)
    if value is _MISSING:
        raise _Fail(f"can't evaluate field {name} in type {_go_type(obj)}", pos)
    if callable(value) and not isinstance(value, type):
        try:
            return value(*argv)
        except Exception as e:
            raise _Fail(f"error calling {name}: {e}", pos) from None
    if argv:
        raise _Fail(f"{name} has arguments but cannot be invoked as function", pos)
    return value


def _attribute(obj: Any, name: str, pos: int) -> Any:
    """A public attribute of a record (``CreatedAt`` also finds ``created_at``)."""
    if name.startswith("_") or (_record(obj) is None and isinstance(obj, _BASIC)):
        return _MISSING
    try:
        value = getattr(obj, name, _MISSING)
        if value is _MISSING:
            value = getattr(obj, "_".join(_words(name)).lower(), _MISSING)
    except Exception as e:
        raise _Fail(f"can't evaluate field {name}: {e}", pos) from None
    return value.value if isinstance(value, Enum) else value


def _record(value: Any) -> dict[str, Any] | None:
    """The fields of a dataclass or named tuple; None for anything else."""
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is not None:
        return {f: getattr(value, f) for f in fields}
    return value._asdict() if isinstance(value, tuple) and hasattr(value, "_asdict") else None


_BASIC = (str, bytes, int, float, complex, list, tuple, set, frozenset)


def _iterate(value: Any, pos: int) -> list[tuple[Any, Any]]:
    if value is None or value is _MISSING:
        return []
    if isinstance(value, Mapping):
        return [(k, value[k]) for k in _sorted_keys(value)]
    if isinstance(value, list | tuple):
        return list(enumerate(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return [(i, i) for i in range(value)]
    raise _Fail(f"range can't iterate over {_go_str(value)}", pos)


def _words(name: str) -> list[str]:
    """``CreatedAt`` -> ["Created", "At"], ``NetIO`` -> ["Net", "IO"]."""
    return re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+|[^A-Za-z0-9_]+", name) or [name]


# --- Go-like values ------------------------------------------------------------------


def _truth(value: Any) -> bool:
    if value is None or value is _MISSING:
        return False
    if isinstance(value, bool | int | float | complex):
        return bool(value)
    return len(value) > 0 if isinstance(value, Sized) else True


def _sorted_keys(mapping: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(mapping)
    except TypeError:
        return list(mapping)


def _go_type(value: Any) -> str:
    if value is None:
        return "<nil>"
    names = {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}"}
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    return names.get(type(value), type(value).__name__)


def _go_str(value: Any) -> str:
    """``value`` printed like Go's fmt ``%v``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if value is _MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if (record := _record(value)) is not None:  # a Go struct prints as {field field}
        return "{" + " ".join(map(_go_str, record.values())) + "}"
    if isinstance(value, Mapping):
        pairs = (f"{_go_str(k)}:{_go_str(value[k])}" for k in _sorted_keys(value))
        return "map[" + " ".join(pairs) + "]"
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + " ".join(map(_go_str, value)) + "]"
    if isinstance(value, Enum):
        return _go_str(value.value)
    return str(value)


def _digits(x: float) -> tuple[str, int]:
    """The shortest digits of ``abs(x) > 0`` and the point: abs(x) == 0.DIGITS * 10**point."""
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    raw = whole + frac
    digits = raw.lstrip("0")
    return digits.rstrip("0"), len(whole) + int(exp or 0) - (len(raw) - len(digits))


def _go_float(x: float, for_json: bool = False) -> str:
    """Go's shortest float: ``%v`` (exponent below -4 or from 6 on) or json.Marshal's."""
    if x != x or x in (float("inf"), float("-inf")):
        return "null" if for_json else {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(x)]
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    digits, point = _digits(x)
    exp = point - 1
    if (1e-6 <= abs(x) < 1e21) if for_json else (-4 <= exp < 6):
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    tail = f"{abs(exp)}" if for_json and exp < 0 else f"{abs(exp):02d}"
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'-' if exp < 0 else '+'}{tail}"


def _go_quote(text: str) -> str:
    """Go's strconv.Quote."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            width = 2 if code < 0x80 else 4 if code < 0x10000 else 8
            out.append("\\" + {2: "x", 4: "u", 8: "U"}[width] + f"{code:0{width}x}")
    out.append('"')
    return "".join(out)


def _to_json(value: Any) -> str:
    """Compact JSON like Go's json.Marshal (no HTML escaping, dict order kept)."""
    if value is None or value is _MISSING:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value, for_json=True)
    if isinstance(value, str):
        import json  # only when needed: the CLI's import time matters

        text = json.dumps(value, ensure_ascii=False)
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_to_json(str(k))}:{_to_json(v)}" for k, v in value.items()) + "}"
    if (record := _record(value)) is not None:
        return _to_json(record)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ",".join(map(_to_json, value)) + "]"
    if isinstance(value, Enum):
        return _to_json(value.value)
    return _to_json(str(value))


# --- functions -----------------------------------------------------------------------


def _need_str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Fail(f"wrong type for value; expected string; got {_go_type(value)}")
    return value


def _need_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Fail(f"wrong type for value; expected int; got {_go_type(value)}")
    return value


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is None:
            raise _Fail("index of untyped nil")
        if isinstance(item, Mapping):
            item = item.get(key, _MISSING)
        elif isinstance(item, str | list | tuple):
            i = _need_int(key)
            if not 0 <= i < len(item):
                raise _Fail(f"index out of range: {i}")
            item = ord(item[i]) if isinstance(item, str) else item[i]
        else:
            raise _Fail(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, str | list | tuple):
        raise _Fail(f"can't slice item of type {_go_type(item)}")
    if len(bounds) > 2:
        raise _Fail("3-index slice is not supported")
    low, high = (list(map(_need_int, bounds)) + [0, len(item)][len(bounds) :])[:2]
    if not 0 <= low <= len(item) or not 0 <= high <= len(item):
        raise _Fail(f"index out of range: {high if 0 <= low <= len(item) else low}")
    if low > high:
        raise _Fail(f"invalid slice index: {low} > {high}")
    return item[low:high]


def _len(value: Any) -> int:
    if not isinstance(value, Sized) or value is _MISSING:
        raise _Fail(f"len of type {_go_type(value)}")
    return len(value)


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, list | tuple):
        raise _Fail(f"wrong type for value; expected []string; got {_go_type(items)}")
    return _need_str(sep).join(map(_go_str, items))


def _split(text: Any, sep: Any) -> list[str]:
    text, sep = _need_str(text), _need_str(sep)
    return text.split(sep) if sep else list(text)


def _title(text: Any) -> str:
    """Go's strings.Title: upper-case each letter that follows a separator."""
    out, prev = [], " "
    for ch in _need_str(text):
        sep = not (prev.isalnum() or prev == "_") and (prev.isascii() or prev.isspace())
        out.append(ch.upper() if sep else ch)
        prev = ch
    return "".join(out)


def _pad(text: Any, prefix: Any, suffix: Any) -> str:
    text = _need_str(text)
    return " " * _need_int(prefix) + text + " " * _need_int(suffix) if text else text


def _truncate(text: Any, length: Any) -> str:
    return _need_str(text)[: _need_int(length)]


def _sprint(*args: Any) -> str:
    """Go's fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_go_str(arg))
    return "".join(out)


def _compare_kind(value: Any) -> str:
    if value is None or value is _MISSING:
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
            raise _Fail("incompatible types for comparison")
        elif first == other:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _compare_kind(a), _compare_kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise _Fail("invalid type for comparison")
    if ka != kb:
        raise _Fail("incompatible types for comparison")
    return bool(a < b)


def _html(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(*args)
    table = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(table.get(ch, ch) for ch in text)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(*args)
    return quote_plus(text)


_VERB = r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)"


def _printf(fmt: Any, *args: Any) -> str:
    """Go's fmt.Sprintf for the common verbs; mistakes are shown inline as Go does."""
    out, used, last = [], 0, 0
    for m in re.finditer(_VERB, _need_str(fmt), re.DOTALL):
        out.append(fmt[last : m.start()])
        last = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
        elif not verb:
            out.append("%!(NOVERB)")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            text = _format_verb(verb, flags, None if prec is None else int(prec or 0), args[used])
            out.append(_justify(text, flags, int(width or 0)))
            used += 1
    out.append(fmt[last:])
    if used < len(args):
        out.append("%!(EXTRA " + ", ".join(_bad_arg(a) for a in args[used:]) + ")")
    return "".join(out)


def _bad_arg(arg: Any) -> str:
    return "<nil>" if arg is None else f"{_go_type(arg)}={_go_str(arg)}"


def _justify(text: str, flags: str, width: int) -> str:
    if len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags:
        sign = text[0] if text[:1] in ("+", "-") else ""
        return sign + text[len(sign) :].rjust(width - len(sign), "0")
    return text.rjust(width)


def _format_verb(verb: str, flags: str, prec: int | None, arg: Any) -> str:
    sign = "+" if "+" in flags else " " if " " in flags else ""
    alt = "#" if "#" in flags else ""
    if verb == "v":
        return _go_quote(arg) if alt and isinstance(arg, str) else _go_str(arg)
    if verb == "t" and isinstance(arg, bool):
        return _go_str(arg)
    if isinstance(arg, str) and verb in "sqxX":
        text = arg[:prec] if prec is not None else arg
        if verb in "xX":
            return format(int.from_bytes(text.encode(), "big"), verb) if text else ""
        return _go_quote(text) if verb == "q" else text
    if verb in "sq" and isinstance(arg, list | tuple):
        return "[" + " ".join(_format_verb(verb, "", prec, a) for a in arg) + "]"
    if verb == "s" and (isinstance(arg, Mapping) or _record(arg) is not None):
        return _go_str(arg)
    if isinstance(arg, int) and not isinstance(arg, bool):
        if verb in "dxXob":
            return format(arg, sign + alt + ("d" if verb == "d" else verb))
        if verb in "cq" and 0 <= arg <= 0x10FFFF:
            return chr(arg) if verb == "c" else "'" + _go_quote(chr(arg))[1:-1] + "'"
    if isinstance(arg, int | float) and not isinstance(arg, bool) and verb in "eEfFgG":
        if verb in "gG" and prec is None:
            text = _go_float(float(arg))
            return (sign if arg >= 0 else "") + (text.upper() if verb == "G" else text)
        return format(float(arg), f"{sign}{alt}.{6 if prec is None else prec}{verb}")
    return f"%!{verb}({_bad_arg(arg)})"


_FUNCS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name: (function, least args, most args or -1); "and"/"or" are evaluated lazily
    "eq": (_eq, 2, -1),
    "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_lt, 2, 2),
    "le": (lambda a, b: _lt(a, b) or _eq(a, b), 2, 2),
    "gt": (lambda a, b: not (_lt(a, b) or _eq(a, b)), 2, 2),
    "ge": (lambda a, b: not _lt(a, b), 2, 2),
    "not": (lambda a: not _truth(a), 1, 1),
    "index": (_index, 1, -1),
    "slice": (_slice, 1, 3),
    "len": (_len, 1, 1),
    "print": (_sprint, 0, -1),
    "printf": (_printf, 1, -1),
    "println": (lambda *a: " ".join(map(_go_str, a)) + "\n", 0, -1),
    "html": (_html, 0, -1),
    "urlquery": (_urlquery, 0, -1),
    "json": (_to_json, 1, 1),
    "split": (_split, 2, 2),
    "join": (_join, 2, 2),
    "title": (_title, 1, 1),
    "lower": (lambda s: _need_str(s).lower(), 1, 1),
    "upper": (lambda s: _need_str(s).upper(), 1, 1),
    "pad": (_pad, 3, 3),
    "truncate": (_truncate, 2, 2),
}
# docker's header functions: in a table's header row these return their first argument.
_HEADER_PASSTHROUGH = frozenset(
    ("json", "split", "join", "title", "lower", "upper", "pad", "truncate", "index")
)
