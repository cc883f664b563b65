"""capsa.cli.template: docker's ``--format`` Go templates.

Expected outputs were checked against the docker 28 CLI (``docker context ls/inspect
--format``, which run Go's text/template with docker's functions and no daemon).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capsa.cli.template import Template, format_rows, render, table, tabwrite
from capsa.errors import InvalidArgument

CONTAINER = {
    "ID": "3f4e1b2c9a7d",
    "Names": "web",
    "Image": "busybox:latest",
    "State": {"Status": "running", "Running": True, "ExitCode": 0, "Pid": 4242},
    "Labels": {"com.example.tier": "front", "app": "shop"},
    "Ports": [],
    "Mounts": ["/data", "/logs"],
    "Nil": None,
    "Size": 1.5,
}


def r(template: str, data: Any = CONTAINER) -> str:
    return render(template, data)


def fails(template: str, data: Any = CONTAINER) -> str:
    with pytest.raises(InvalidArgument) as info:
        render(template, data)
    message = str(info.value)
    assert "\n" not in message and message.startswith("template: ")
    return message


# --- text, fields, values ------------------------------------------------------------


@given(st.text().filter(lambda s: "{{" not in s))
def test_text_without_actions_is_unchanged(text: str) -> None:
    assert Template(text, unescape=False).render(CONTAINER) == text


@given(st.text().filter(lambda s: "{{" not in s and "\\" not in s))
def test_text_without_actions_or_backslashes_is_unchanged(text: str) -> None:
    assert render(text, None) == text


@given(st.text())
def test_quoted_text_round_trips(text: str) -> None:
    from capsa.cli.template import _go_quote

    assert Template("{{" + _go_quote(text) + "}}", unescape=False).render(None) == text


def test_typed_backslash_t_and_n_become_tab_and_newline() -> None:
    assert r(r"{{.ID}}\t{{.Names}}\n") == "3f4e1b2c9a7d\tweb\n"
    assert Template(r"a\tb", unescape=False).render(None) == r"a\tb"


def test_fields_and_chains() -> None:
    assert (
        r("{{.ID}} {{.Names}} {{.State.Status}} {{.State.Pid}}") == "3f4e1b2c9a7d web running 4242"
    )
    assert r("{{.}}", "plain") == "plain"
    assert r("{{.State.Running}} {{.State.ExitCode}} {{.Size}}") == "true 0 1.5"


def test_missing_map_keys_render_no_value() -> None:
    assert r("{{.Nope}}|{{.State.Nope}}|{{.Nope.Deeper}}") == "<no value>|<no value>|<no value>"
    assert r("{{.Nil}}") == "<nil>"


def test_field_of_a_non_map_is_an_error() -> None:
    assert fails("{{.Names.First}}") == (
        "template: can't evaluate field First in type string at column 3"
    )
    assert "nil pointer evaluating X" in fails("{{.Nil.X}}")
    assert "can't evaluate field X in type []interface {}" in fails("{{.Mounts.X}}")


@dataclasses.dataclass
class Record:
    container_id: str
    names: list[str]
    state: dict[str, str]

    def label(self, key: str) -> str:
        return f"label:{key}"

    def _secret(self) -> str:
        return "no"


def test_objects_expose_public_attributes_and_methods() -> None:
    rec = Record("abc", ["a", "b"], {"Status": "exited"})
    assert r("{{.ContainerId}} {{.container_id}} {{.State.Status}}", rec) == "abc abc exited"
    assert r('{{.Label "tier"}} {{join .Names ","}}', rec) == "label:tier a,b"
    assert r("{{.}}", rec) == "{abc [a b] map[Status:exited]}"
    assert "can't evaluate field _secret" in fails("{{._secret}}", rec)
    assert "can't evaluate field Nope in type Record" in fails("{{.Nope}}", rec)
    assert "is not a method but has arguments" in fails('{{.State "x"}}')


class Port(NamedTuple):
    private: int
    kind: str


class Status(enum.Enum):
    RUNNING = "running"


class Exploding:
    @property
    def Boom(self) -> str:
        raise RuntimeError("kaput")


def test_named_tuples_enums_and_failing_properties() -> None:
    port = Port(80, "tcp")
    assert (
        r("{{.Private}}/{{.Kind}} {{.}} {{json .}}", port)
        == '80/tcp {80 tcp} {"private":80,"kind":"tcp"}'
    )
    assert r('{{.State}} {{eq .State "running"}}', {"State": Status.RUNNING}) == ("running true")
    assert r("{{.S.State.Status}}", {"S": Record("x", [], {"Status": "up"})}) == "up"
    assert (
        fails("{{.Boom}}", Exploding()) == "template: can't evaluate field Boom: kaput at column 3"
    )


def test_no_access_to_python_internals() -> None:
    for template in ("{{.Names.upper}}", "{{.Mounts.append}}", "{{.Size.real}}"):
        assert "can't evaluate field" in fails(template, CONTAINER)
    assert r("{{.__class__}}", CONTAINER) == "<no value>"  # only keys of a map
    assert "can't evaluate field __class__" in fails("{{.__class__}}", Record("x", [], {}))


def test_go_printing_of_values() -> None:
    data = {"L": [1, "a", None, True], "M": {"b": 2, "a": [1]}, "F": [1e6, 0.00001, 100000.0]}
    assert r("{{.L}} {{.M}}", data) == "[1 a <nil> true] map[a:[1] b:2]"
    assert r("{{.F}} {{1.0}} {{123456789.0}} {{0.0001}} {{-2.5}}", data) == (
        "[1e+06 1e-05 100000] 1 1.23456789e+08 0.0001 -2.5"
    )


def test_literals() -> None:
    assert r(r'{{"a\tb\n"}}{{`raw\q`}}', None) == "a\tb\nraw\\q"
    assert r("{{0x1F}} {{1_000}} {{-3}} {{.5}} {{1e3}} {{'a'}} {{017}}", None) == (
        "31 1000 -3 0.5 1000 97 15"
    )
    assert r(r'{{"\u00e9\x41\101\"\\"}}', None) == 'éAA"\\'
    assert r("{{true}} {{false}} {{print nil}}", None) == "true false <nil>"


def test_comments_and_whitespace_trimming() -> None:
    assert r("a  {{- 1 -}}  b {{- /* c */ -}} c{{/* d */}}d", None) == "a1bcd"
    assert r("x\n  {{- .Names}}\n  {{.ID -}}\n y") == "xweb\n  3f4e1b2c9a7dy"
    assert r("{{-3}}", None) == "-3"


# --- functions -----------------------------------------------------------------------


def test_json() -> None:
    assert r("{{json .State}}") == '{"Status":"running","Running":true,"ExitCode":0,"Pid":4242}'
    assert r("{{json .Ports}} {{json .Nil}} {{json .Nope}} {{.Mounts | json}}") == (
        '[] null null ["/data","/logs"]'
    )
    assert r('{{json "<a&b> é\\n"}}', None) == '"<a&b> é\\n"'
    assert r("{{json 1.0}} {{json 1e21}} {{json 0.0000001}} {{json 0.5}}", None) == (
        "1 1e+21 1e-7 0.5"
    )
    assert r("{{json .}}", Record("x", [], {})) == '{"container_id":"x","names":[],"state":{}}'


def test_index_slice_len() -> None:
    assert r('{{index .Labels "app"}} {{index .Mounts 1}} {{index . "State" "Pid"}}') == (
        "shop /logs 4242"
    )
    assert r('{{index .Labels "missing"}}') == "<no value>"
    assert r('{{index "abc" 1}} {{slice "abcdef" 1 3}} {{slice .Mounts 1}}') == "98 bc [/logs]"
    assert r("{{len .Mounts}} {{len .Labels}} {{len .Names}}") == "2 2 3"
    assert fails("{{index .Mounts 5}}") == (
        "template: error calling index: index out of range: 5 at column 3"
    )
    assert "invalid slice index: 2 > 1" in fails('{{slice "abc" 2 1}}')
    assert "index of untyped nil" in fails("{{index .Nil 1}}")


def test_string_functions() -> None:
    assert r('{{join .Mounts ", "}}|{{split "a,b,c" ","}}|{{split "ab" ""}}') == (
        "/data, /logs|[a b c]|[a b]"
    )
    assert r('{{range split "" ","}}[{{.}}]{{end}}', None) == "[]"
    assert r('{{upper .Names}} {{lower "AbC"}} {{title "hello wORLD foo-bar x_y"}}') == (
        "WEB abc Hello WORLD Foo-Bar X_y"
    )
    assert r('{{pad "x" 2 1}}|{{pad "" 2 1}}|{{truncate "abcdef" 3}}', None) == "  x ||abc"
    assert "expected string; got int" in fails("{{upper 1}}")
    assert "expected []string; got string" in fails('{{join .Names ","}}')


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{printf "%s-%d" .Names 7}}', "web-7"),
        (
            '{{printf "%v|%q|%x|%X" .Mounts "a\\"b\\tc" "hi" 255}}',
            '[/data /logs]|"a\\"b\\tc"|6869|FF',
        ),
        ('{{printf "%5s|%-6s|%05d|%+d|%-5d|" "ab" "cd" 42 7 42}}', "   ab|cd    |00042|+7|42   |"),
        (
            '{{printf "%5.1f|%o|%c|%q|%t|%e|%g" 3.14159 8 65 65 true 1234.5678 0.000012}}',
            "  3.1|10|A|'A'|true|1.234568e+03|1.2e-05",
        ),
        (
            '{{printf "%.2s|%08.3f|%x|%d%%|%#x" "xyz" -3.14159 -255 5 255}}',
            "xy|-003.142|-ff|5%|0xff",
        ),
        ('{{printf "%d %s" "x"}}', "%!d(string=x) %!s(MISSING)"),
        ('{{printf "%s" 1 2}}', "%!s(int=1)%!(EXTRA int=2)"),
        ('{{printf "%d|%s|%v" 3.5 nil nil}}', "%!d(float64=3.5)|%!s(<nil>)|<nil>"),
        ('{{printf "%q" (split "a,b" ",")}}', '["a" "b"]'),
        ('{{print 1 2 "a" 3 "b" "c" nil true}}', "1 2a3bc<nil> true"),
        ('{{println 1 "a" 2}}', "1 a 2\n"),
        (
            '{{html "<a href=\'x\'>&"}} {{urlquery "a b&c=d"}}',
            "&lt;a href=&#39;x&#39;&gt;&amp; a+b%26c%3Dd",
        ),
    ],
)
def test_printf_and_print(template: str, expected: str) -> None:
    assert r(template) == expected


def test_comparisons() -> None:
    assert r('{{eq .Names "web"}} {{eq .Names "x" "web"}} {{ne 1 2}} {{eq .Nil nil}}') == (
        "true true true true"
    )
    assert r('{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge "b" "a"}} {{lt 1 2.5}}', None) == (
        "true true false true true"
    )
    assert r('{{and 1 0 2}} {{or 0 "" 3}} {{not 0}} {{and 1 2}} {{or 0 ""}}', None) == "0 3 true 2 "
    assert "incompatible types for comparison" in fails('{{eq 1 "a"}}')
    assert "invalid type for comparison" in fails("{{lt true false}}")


def test_and_or_short_circuit() -> None:
    assert r("{{or .Names .Names.Bad}} {{and .Nil .Names.Bad}}") == "web <nil>"


def test_wrong_number_of_args() -> None:
    assert (
        fails("{{eq}}")
        == "template: wrong number of args for eq: want at least 2 got 0 at column 3"
    )
    assert "wrong number of args for join: want 2 got 1" in fails('{{join ","}}')


# --- control structures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        ("", False),
        ("x", True),
        (0, False),
        (0.0, False),
        (3, True),
        (None, False),
        ([], False),
        ([0], True),
        ({}, False),
        ({"a": 1}, True),
        (False, False),
        (True, True),
    ],
)
def test_if_uses_go_truthiness(value: Any, truth: bool) -> None:
    assert r("{{if .V}}yes{{else}}no{{end}}", {"V": value}) == ("yes" if truth else "no")


def test_if_else_if_chain() -> None:
    t = Template('{{if eq .S "a"}}A{{else if eq .S "b"}}B{{else if .S}}other{{else}}none{{end}}')
    assert [t.render({"S": s}) for s in ("a", "b", "c", "")] == ["A", "B", "other", "none"]
    assert r("{{if .Missing}}x{{end}}") == ""


def test_range() -> None:
    assert r("{{range .Mounts}}[{{.}}]{{end}}") == "[/data][/logs]"
    assert r("{{range $i, $e := .Mounts}}{{$i}}={{$e}};{{end}}") == "0=/data;1=/logs;"
    assert r("{{range $m := .Mounts}}{{$m}} {{end}}") == "/data /logs "
    assert (
        r("{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}") == "app=shop,com.example.tier=front,"
    )
    assert r("{{range .Ports}}x{{else}}none{{end}} {{range .Nope}}x{{end}}") == "none "
    assert r("{{range 3}}{{.}}{{end}}", None) == "012"
    assert r("{{range .Mounts}}{{$.Names}}{{end}}") == "webweb"
    assert "range can't iterate over web" in fails("{{range .Names}}{{end}}")


def test_break_and_continue() -> None:
    t = '{{range $i, $e := split "a,b,c,d" ","}}{{if eq $i 1}}{{continue}}{{end}}'
    t += "{{if eq $i 3}}{{break}}{{end}}{{$e}}{{end}}"
    assert r(t, None) == "ac"
    assert "{{break}} outside {{range}}" in fails("{{break}}")


def test_with() -> None:
    assert r("{{with .State}}{{.Status}} {{$.Names}}{{end}}") == "running web"
    assert r("{{with .Ports}}x{{else}}empty{{end}}") == "empty"
    assert r("{{with .Nope}}a{{else with .Names}}b{{.}}{{end}}") == "bweb"
    assert r("{{with $s := .State.Status}}{{$s}}{{end}}") == "running"


def test_variables() -> None:
    assert r("{{$x := 1}}{{$x}}{{$x = 2}}{{$x}} {{$n := .Names | upper}}{{$n}}") == "12 WEB"
    assert r('{{$z := ""}}{{range .Mounts}}{{$z = .}}{{end}}{{$z}}') == "/logs"
    assert r("{{$.State.Status}} {{(index .Mounts 0)}} {{(.State).Pid}}") == "running /data 4242"
    assert fails("{{$x}}") == 'template: undefined variable "$x" at column 3'
    assert "undefined variable" in fails("{{if 1}}{{$y := 1}}{{end}}{{$y}}")


def test_pipelines() -> None:
    assert r('{{.Names | printf "%s!"}} {{"a" | printf "%s%s" "b"}}') == "web! ba"
    assert r('{{"x" | printf "%s-%s" "y" | upper}} {{.Names | len | printf "%d|%v" 3}}') == (
        "Y-X 3|3"
    )


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.Names | foo}}", 'function "foo" not defined at column 12'),
        ("ab{{.Names", "unclosed action at column 3"),
        ("{{(1}}", "unclosed left paren at column 4"),
        ("{{1)}}", "unexpected right paren at column 4"),
        ('{{"abc}}', "unterminated quoted string at column 3"),
        ("{{if}}x{{end}}", "missing value for if at column 1"),
        ("{{end}}", "unexpected {{end}} at column 1"),
        ("{{else}}", "unexpected {{else}} at column 1"),
        ("{{if 1}}x", "missing {{end}} for {{if}} at column 1"),
        ("{{}}", "missing value for command at column 1"),
        ("{{.X |}}", "missing value for command at column 3"),
        ("{{nil}}", "nil is not a command at column 3"),
        ("{{1 2}}", "can't give argument to non-function 1 at column 3"),
        ("{{.Names.X 2}}", "can't evaluate field X in type string at column 3"),
        ("{{%}}", 'unexpected "%" in command at column 3'),
        ("{{1abc}}", 'bad number syntax: "1a" at column 3'),
        ("{{$a, $b := 1}}", "too many declarations in command at column 3"),
        ('{{"\\q"}}', "invalid escape \\q in string at column 3"),
        ('{{define "x"}}{{end}}', "{{define}} is not supported at column 3"),
        ("{{/* open", "unclosed comment at column 1"),
        ("{{if 1}}{{else}}{{else}}{{end}}", "expected {{end}}, found {{else}} at column 17"),
        ("{{range 1}}{{else if 1}}{{end}}", 'unexpected "if" after {{else}} at column 19'),
    ],
)
def test_errors_name_what_and_where(template: str, message: str) -> None:
    assert fails(template) == "template: " + message


def test_error_positions_count_lines_and_typed_escapes() -> None:
    assert fails("a\nb {{.Names.X}}") == (
        "template: can't evaluate field X in type string at line 2, column 5"
    )
    assert fails(r"{{.ID}}\t{{foo}}").endswith("at column 12")  # as the user typed it


def test_parse_errors_come_from_the_constructor() -> None:
    with pytest.raises(InvalidArgument, match="unclosed action"):
        Template("{{.ID")


def test_a_template_renders_many_objects() -> None:
    t = Template("{{.ID}}:{{.State.Status}}")
    rows = [{"ID": str(i), "State": {"Status": s}} for i, s in enumerate(["up", "down"])]
    assert [t.render(row) for row in rows] == ["0:up", "1:down"]


# --- tables --------------------------------------------------------------------------

PS_HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Status": "STATUS"}
ROWS = [
    {"ID": "3f4e1b2c9a7d", "Names": "web", "Image": "busybox", "Status": "Up 2 minutes"},
    {"ID": "9a8b7c6d5e4f", "Names": "db-primary", "Image": "postgres:16", "Status": "Exited (0)"},
]


def test_table_matches_docker_ps() -> None:
    out = table(r"table {{.ID}}\t{{.Names}}", ROWS, PS_HEADERS)
    assert out == ("CONTAINER ID   NAMES\n3f4e1b2c9a7d   web\n9a8b7c6d5e4f   db-primary")


def test_table_columns_have_minimum_width_ten_and_padding_three() -> None:
    out = table("table {{.Names}}\t{{.Image}}\t{{.Status}}", ROWS, PS_HEADERS)
    assert out.split("\n") == [
        "NAMES        IMAGE         STATUS",
        "web          busybox       Up 2 minutes",
        "db-primary   postgres:16   Exited (0)",
    ]
    assert table("{{.Names}}\t{{.Names}}", [{"Names": "a"}]) == "NAMES     NAMES\na         a"


def test_table_headers_default_to_upper_case_words() -> None:
    rows = [{"CreatedAt": "now", "NetIO": "1kB", "State": {"Status": "up"}}]
    out = table(r"table {{.CreatedAt}}\t{{upper .NetIO}}\t{{.State.Status}}", rows, {})
    assert out.split("\n") == ["CREATED AT   NET IO    STATUS", "now          1KB       up"]
    out = table("table {{.State.Status}}", rows, {"State.Status": "STATE"})
    assert out == "STATE\nup"


def test_table_without_rows_is_the_header() -> None:
    assert table(r"table {{.ID}}\t{{.Names}}", [], PS_HEADERS) == "CONTAINER ID   NAMES"


def test_tabwrite_like_go() -> None:
    # A line with fewer cells ends the column block above it; the last cell is never padded.
    text = "a\tbb\tc\nlonger-cell\tx\nsolo\nq\tr"
    assert tabwrite(text) == ("a             bb        c\nlonger-cell   x\nsolo\nq         r")
    assert tabwrite("x\t\ty", minwidth=0, padding=1) == "x  y"


def test_format_rows_dispatch() -> None:
    assert format_rows("json", ROWS[:1]) == (
        '{"ID":"3f4e1b2c9a7d","Names":"web","Image":"busybox","Status":"Up 2 minutes"}'
    )
    assert format_rows("{{.Names}}", ROWS) == "web\ndb-primary"
    assert format_rows("table {{.Names}}  ", ROWS, PS_HEADERS) == "NAMES\nweb\ndb-primary"
    default = r"table {{.ID}}\t{{.Names}}"
    assert format_rows("", ROWS, PS_HEADERS, default=default) == table(default, ROWS, PS_HEADERS)
    assert format_rows("table", ROWS, PS_HEADERS, default=default) == table(
        default, ROWS, PS_HEADERS
    )


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_text_round_trips(x: float) -> None:
    from capsa.cli.template import _go_float

    assert float(_go_float(x)) == x
    assert float(_go_float(x, for_json=True)) == x


@given(
    st.lists(st.lists(st.text(alphabet="ab c", max_size=12), min_size=2, max_size=2), max_size=6)
)
def test_table_columns_line_up(rows: list[list[str]]) -> None:
    data = [{"A": a, "B": b} for a, b in rows]
    lines = table("table {{.A}}\t{{.B}}", data).split("\n")
    width = max([10] + [len(a) + 3 for a, _ in [("A", "B"), *rows]])
    assert lines[0] == "A".ljust(width) + "B"
    assert lines[1:] == [a.ljust(width) + b for a, b in rows]
