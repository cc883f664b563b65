"""The template lexer: source text into literal text and ``{{ }}`` actions of tokens."""

from __future__ import annotations

import re
from typing import NamedTuple

from capsa.cli.gotemplate.values import Fail, go_quote

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
KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue"}
UNSUPPORTED = {"define", "template", "block"}


class Tok(NamedTuple):
    kind: str
    text: str
    pos: int
    spaced: bool  # whitespace before it: `.A .B` is two operands, `$x.B` one


class Action(NamedTuple):
    tokens: list[Tok]
    pos: int  # offset of its "{{"

    @property
    def word(self) -> str:
        first = self.tokens[0] if self.tokens else None
        return first.text if first and first.kind == "ident" and first.text in KEYWORDS else ""


def _space_at(src: str, i: int) -> bool:
    return i < len(src) and src[i] in _SPACE


def lex(src: str) -> list[str | Action]:
    """Split ``src`` into text and actions, applying ``{{-`` / ``-}}`` trimming."""
    items: list[str | Action] = []
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
        raise Fail("unclosed comment", start)
    closing = _close(src, end + 2)
    if closing is None:
        raise Fail("comment ends before closing delimiter", start)
    return closing


def _lex_action(src: str, pos: int, start: int) -> tuple[Action, int, bool]:
    tokens: list[Tok] = []
    spaced = True
    while True:
        closing = _close(src, pos)
        if closing is not None:
            return Action(tokens, start), *closing
        if _space_at(src, pos):
            spaced, pos = True, pos + 1
            continue
        m = re.compile(_TOKEN, re.VERBOSE | re.DOTALL).match(src, pos)  # re caches it
        if m is None or m.lastgroup is None:
            raise Fail(_bad_char(src, pos), pos if pos < len(src) else start)
        if m.lastgroup == "number" and re.match(r"[\w.]", src[m.end() : m.end() + 1]):
            raise Fail(f"bad number syntax: {go_quote(src[pos : m.end() + 1])}", pos)
        tokens.append(Tok(m.lastgroup, m.group(), pos, spaced))
        spaced, pos = False, m.end()


def _bad_char(src: str, pos: int) -> str:
    if pos >= len(src):
        return "unclosed action"
    char = src[pos]
    if char in "\"'`":
        return "unterminated quoted string"
    return f"unexpected {go_quote(char)} in command"
