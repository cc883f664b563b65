"""Fuzz: ``--format`` Go templates (capsa.cli.template). Any template text either fails
to parse or renders against a container-like object, with InvalidArgument as the only
error: no traceback, no runaway output."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tests.helpers.fuzz import fuzz

from capsa.cli.gotemplate import evaluator
from capsa.cli.template import Template, format_rows, table
from capsa.errors import InvalidArgument

DATA: dict[str, Any] = {
    "ID": "3f4e1b2c9a7d",
    "Names": "web",
    "Labels": {"app": "shop", "bad": "\udcff", "stray": "\ud800"},
    "State": {"Status": "running", "Running": True, "ExitCode": 0, "Pid": 4242},
    "Mounts": ["/data", "/logs"],
    "Ports": [],
    "Nil": None,
    "Size": 1.5,
    "Big": 2**70,
}
TOKENS = st.sampled_from(
    [
        "{{", "}}", "{{-", "-}}", " ", ".", ".ID", ".Labels", ".State.Pid", ".Mounts",
        ".Nil", ".Size", ".Big", ".Nope", "$", "$x", ":=", "=", "|", "(", ")", ",",
        "range", "if", "else", "end", "with", "define", "template", "block", "break",
        "continue", "nil", "true", "false", "and", "or", "not", "len", "index", "slice",
        "print", "printf", "println", "json", "join", "split", "title", "lower", "upper",
        "pad", "truncate", "table", "eq", "ne", "lt", "le", "gt", "ge", "html", "js",
        "urlquery", "call", '"%d"', '"%s"', '"%v"', '"%x"', '"%q"', '"%*d"', '"%-5.2f"',
        '"%!"', '"%', '"\\x"', '"\\u00e9"', "`raw`", "'a'", "'\\n'", "0", "1", "-1",
        "1e3", "0x1F", "99999999999999999999", "1.5", "\\t", "\\n", "/*", "*/", "\udcff",
        "é", "\x00",
    ]
)  # fmt: skip
FUNCS = st.sampled_from(
    [
        "len", "index", "slice", "print", "printf", "println", "json", "join", "split",
        "title", "lower", "upper", "pad", "truncate", "eq", "ne", "lt", "le", "gt", "ge",
        "and", "or", "not", "html", "js", "urlquery", "call", ".Labels", ".ID",
    ]
)  # fmt: skip
ARGS = st.one_of(
    st.sampled_from([".", ".ID", ".Labels", ".Labels.bad", ".Mounts", ".Nil", ".Size",
                     ".Big", ".State", ".State.Pid", "$", "nil", "true", "-1", "0", "2",
                     '","', '"%v %s %d"', '"%08.3f"', '"%-9x"', '"%q"', "1.5", "'x'"]),
    st.integers(-(2**65), 2**65).map(str),
    st.text(max_size=8).map(lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'),
)  # fmt: skip
ACTIONS = st.builds(
    lambda f, args, pipe: "{{" + " ".join([f, *args]) + (" | " + pipe if pipe else "") + "}}",
    FUNCS,
    st.lists(ARGS, max_size=3),
    st.one_of(st.none(), FUNCS),
)
BLOCKS = st.builds(
    lambda word, arg, body: "{{" + word + " " + arg + "}}" + body + "{{end}}",
    st.sampled_from(["range", "if", "with", "range $i, $v :="]),
    ARGS,
    st.lists(ACTIONS, max_size=2).map("".join),
)
TEMPLATES = st.one_of(
    st.lists(TOKENS, max_size=14).map("".join),
    st.lists(st.one_of(ACTIONS, BLOCKS), min_size=1, max_size=3).map("".join),
    st.text(max_size=30),
)


def _render(text: str) -> None:
    with mock.patch.object(evaluator, "MAX_STEPS", 20_000):  # the same limit, sooner
        _render_all(text)


def _render_all(text: str) -> None:
    try:
        tmpl = Template(text)
    except InvalidArgument:
        return
    for data in (DATA, None, [DATA], "text"):
        try:
            out = tmpl.render(data)
        except InvalidArgument:
            continue
        assert isinstance(out, str) and len(out) < 1_000_000


@fuzz(1500)
@given(TEMPLATES)
@example("{{pad .ID 99999999999999 0}}")
@example('{{printf "%999999999999d" 1}}')
@example("{{urlquery .Labels.bad}}")
@example("{{index . .}}")
@example("{{range 99999999999999}}{{end}}")
@example("{{$x := .ID}}{{range 100}}{{$x = print $x $x}}{{end}}")
@example('{{urlquery .Labels.stray}} {{json .Labels}} {{printf "%x" .Labels.stray}}')
@example('{{printf "%c" .Big}}')
def test_templates_parse_and_render_cleanly(text: str) -> None:
    _render(text)


@fuzz(300)
@given(TEMPLATES)
def test_table_and_format_rows_are_clean(text: str) -> None:
    for run in (lambda: table(text, [DATA]), lambda: format_rows(text, [DATA])):
        try:
            with mock.patch.object(evaluator, "MAX_STEPS", 20_000):
                run()
        except InvalidArgument:
            pass


def test_what_the_fuzzer_found_fails_cleanly() -> None:
    for text, message in (
        ("{{index . .}}", "should be string"),
        ("{{pad .ID 99999999999999 0}}", "out of range"),
        ("{{range 99999999999999}}{{end}}", "more than"),
        ("{{$x := .ID}}{{range 100}}{{$x = print $x $x}}{{end}}", "larger than"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            Template(text).render(DATA)
    assert Template('{{printf "%999999999999d" 1}}').render(DATA) == "%!(NOVERB)%!(EXTRA int=1)"
    assert Template("{{urlquery .Labels.bad}}").render(DATA) == "%FF"
    assert Template("{{json .Labels.bad}}").render(DATA) == '"\ufffd"'
