"""A parsed template: the lexer, parser and evaluator behind one class."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from capsa.cli.gotemplate.evaluator import Exec, Headers
from capsa.cli.gotemplate.lexer import lex
from capsa.cli.gotemplate.parser import Parser
from capsa.cli.gotemplate.values import Fail
from capsa.errors import InvalidArgument


class Template:
    """A parsed template; ``render`` it against any number of objects."""

    def __init__(self, text: str, *, unescape: bool = True) -> None:
        self._original = text
        self._shifts: list[int] = []
        self.source = self._unescape(text) if unescape else text
        try:
            self._nodes = Parser(lex(self.source)).parse()
        except Fail as e:
            raise self._error(e) from None

    def render(self, data: Any) -> str:
        """The template's output for ``data``; InvalidArgument when evaluation fails."""
        return self._run(data, data)

    def render_header(self, headers: Mapping[str, str] | None = None) -> str:
        """The template's output with every field replaced by its column header."""
        names = Headers(headers or {})
        return self._run(names, names)

    def _run(self, root: Any, dot: Any) -> str:
        run = Exec(root)
        try:
            run.walk(self._nodes, dot)
        except Fail as e:
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

    def _error(self, e: Fail) -> InvalidArgument:
        if e.pos < 0:
            return InvalidArgument(f"template: {e.msg}")
        pos = e.pos + sum(1 for s in self._shifts if s < e.pos)
        line = self._original.count("\n", 0, pos) + 1
        col = pos - (self._original.rfind("\n", 0, pos) + 1) + 1
        where = f"column {col}" if line == 1 else f"line {line}, column {col}"
        return InvalidArgument(f"template: {e.msg} at {where}")
