"""The template parser: lexed actions into a tree of nodes, checking variables and names."""

from __future__ import annotations

import re
from typing import Any

from capsa.cli.gotemplate.funcs import FUNCS
from capsa.cli.gotemplate.lexer import KEYWORDS, UNSUPPORTED, Action, Tok
from capsa.cli.gotemplate.nodes import (
    Arg,
    Branch,
    Cmd,
    Dot,
    Field,
    Func,
    Jump,
    Lit,
    Node,
    Output,
    Pipe,
    Range,
    Sub,
    Var,
)
from capsa.cli.gotemplate.values import Fail, go_quote


class _Stream:
    def __init__(self, tokens: list[Tok], pos: int) -> None:
        self.tokens, self.i, self.pos = tokens, 0, pos

    def peek(self, ahead: int = 0) -> Tok | None:
        i = self.i + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def next(self) -> Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok


def _is(tok: Tok | None, *punct: str) -> bool:
    return tok is not None and tok.kind in ("punct", "decl") and tok.text in punct


class Parser:
    def __init__(self, items: list[str | Action]) -> None:
        self.items, self.i = items, 0
        self.vars: list[str] = ["$"]
        self.loops = 0

    def parse(self) -> list[Node]:
        nodes, stop = self._list()
        if stop is not None:
            raise Fail(f"unexpected {{{{{stop.word}}}}}", stop.pos)
        return nodes

    def _list(self) -> tuple[list[Node], Action | None]:
        """Nodes up to an ``{{end}}`` or ``{{else}}`` (returned) or the end of input."""
        nodes: list[Node] = []
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

    def _action(self, act: Action) -> Node:
        word = act.word
        if word in ("if", "with", "range"):
            return self._control(word, act, 1)
        if word in ("break", "continue"):
            if self.loops == 0 or len(act.tokens) > 1:
                raise Fail(f"{{{{{word}}}}} outside {{{{range}}}}", act.pos)
            return Jump(word == "break")
        first = act.tokens[0] if act.tokens else None
        if first is not None and first.kind == "ident" and first.text in UNSUPPORTED:
            raise Fail(f"{{{{{first.text}}}}} is not supported", first.pos)
        return Output(self._pipeline(_Stream(act.tokens, act.pos), "command"))

    def _control(self, word: str, act: Action, skip: int) -> Node:
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
            raise Fail(f"missing {{{{end}}}} for {{{{{word}}}}}", act.pos)
        other = self._else(word, stop) if stop.word == "else" else []
        if stop.word == "end":
            self._expect_end(stop)
        del self.vars[mark:]
        if word == "range":
            return Range(pipe, body, other)
        return Branch(word == "with", pipe, body, other)

    def _else(self, word: str, act: Action) -> list[Node]:
        if len(act.tokens) > 1:  # {{else if ...}} / {{else with ...}} share the {{end}}
            nxt = act.tokens[1]
            if nxt.text != word or word == "range":
                raise Fail(f"unexpected {go_quote(nxt.text)} after {{{{else}}}}", nxt.pos)
            return [self._control(word, act, 2)]
        body, stop = self._list()
        if stop is None:
            raise Fail(f"missing {{{{end}}}} for {{{{{word}}}}}", act.pos)
        self._expect_end(stop)
        return body

    def _expect_end(self, act: Action) -> None:
        if act.word != "end":
            raise Fail(f"expected {{{{end}}}}, found {{{{{act.word}}}}}", act.pos)
        if len(act.tokens) > 1:
            extra = act.tokens[1]
            raise Fail(f"unexpected {go_quote(extra.text)} in {{{{end}}}}", extra.pos)

    def _pipeline(self, s: _Stream, ctx: str, nested: bool = False) -> Pipe:
        first = s.peek()
        pos = first.pos if first else s.pos
        decl, assign = self._decl(s, ctx)
        cmds: list[Cmd] = []
        while True:
            args: list[Arg] = []
            while (tok := s.peek()) is not None and not _is(tok, "|", ")"):
                args.append(self._operand(s))
            if not args:
                raise Fail(f"missing value for {ctx}", tok.pos if tok else pos)
            cmds.append(Cmd(args))
            if not _is(s.peek(), "|"):
                break
            s.next()
        tok = s.peek()
        if nested and tok is None:
            raise Fail("unclosed left paren", pos)
        if not nested and tok is not None:
            raise Fail("unexpected right paren", tok.pos)
        if not assign:
            self.vars.extend(decl)
        return Pipe(decl, assign, cmds, pos)

    def _decl(self, s: _Stream, ctx: str) -> tuple[list[str], bool]:
        toks = [s.peek(k) for k in range(4)]
        if toks[0] is None or toks[0].kind != "var":
            return [], False
        if _is(toks[1], ":=", "="):
            names, op = [toks[0].text], toks[1]
        elif _is(toks[1], ",") and toks[2] and toks[2].kind == "var" and _is(toks[3], ":=", "="):
            if ctx != "range":
                raise Fail(f"too many declarations in {ctx}", toks[0].pos)
            names, op = [toks[0].text, toks[2].text], toks[3]
        else:
            return [], False
        if op is None:  # unreachable: _is() checked it; this narrows the type
            return [], False
        s.i += 2 * len(names)
        for name in names if op.text == "=" else []:
            if name not in self.vars:
                raise Fail(f"undefined variable {go_quote(name)}", op.pos)
        return names, op.text == "="

    def _operand(self, s: _Stream) -> Arg:
        tok = s.next()
        node = self._term(tok, s)
        nxt = s.peek()
        if nxt is not None and nxt.kind == "field" and not nxt.spaced:
            if not isinstance(node, Var | Sub):
                raise Fail(f"unexpected {go_quote(nxt.text)} in operand", nxt.pos)
            return node._replace(names=tuple(s.next().text[1:].split(".")))
        return node

    def _term(self, tok: Tok, s: _Stream) -> Arg:
        kind, text, pos = tok.kind, tok.text, tok.pos
        if kind == "field":
            return Field(tuple(text[1:].split(".")), pos)
        if kind == "dot":
            return Dot(pos)
        if kind == "var":
            if text not in self.vars:
                raise Fail(f"undefined variable {go_quote(text)}", pos)
            return Var(text, (), pos)
        if _is(tok, "("):
            pipe = self._pipeline(s, "parenthesized pipeline", nested=True)
            s.next()
            return Sub(pipe, (), pos)
        if kind == "ident":
            return self._ident(tok)
        if kind in ("string", "raw", "char", "number"):
            return Lit(_literal(kind, text, pos), text, pos)
        raise Fail(f"unexpected {go_quote(text)} in operand", pos)

    def _ident(self, tok: Tok) -> Arg:
        consts = {"true": True, "false": False, "nil": None}
        if tok.text in consts:
            return Lit(consts[tok.text], tok.text, tok.pos)
        if tok.text in KEYWORDS or tok.text in UNSUPPORTED:
            raise Fail(f"unexpected {{{{{tok.text}}}}} in operand", tok.pos)
        if tok.text not in FUNCS and tok.text not in ("and", "or"):
            raise Fail(f"function {go_quote(tok.text)} not defined", tok.pos)
        return Func(tok.text, tok.pos)


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = (
    r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})"
    r"|U([0-9a-fA-F]{8})|(.?))"
)


def _unquote(body: str, pos: int) -> str:
    def one(m: re.Match[str]) -> str:
        named, *codes, bad = m.groups()
        if bad is not None:
            raise Fail(f"invalid escape \\{bad} in string", pos)
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
            raise Fail(f"malformed character constant: {text}", pos)
        return ord(char)
    digits = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xXoObB].*", digits):
            return int(digits, 0)
        if re.fullmatch(r"[+-]?0\d+", digits):
            return int(digits, 8)
        return float(digits) if re.search(r"[.eE]", digits) else int(digits)
    except ValueError:
        raise Fail(f"bad number syntax: {go_quote(text)}", pos) from None
