"""capsa-runtime's JSON: errors without a traceback, and output written as runc's Go does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from capsa import fastjson


@pytest.mark.parametrize("doc", ["{bad json", '{"a" 1}', '"open', '{"a": 1,}'])
def test_loads_gives_jsons_error_when_json_was_never_imported(doc: str) -> None:
    """The C scanner needs ``json.decoder`` in sys.modules to build most errors; without
    it the caller got ``SystemError`` (capsa-runtime's run path never imports json)."""
    code = (
        "import sys\n"
        f"sys.path[:0] = {sys.path!r}\n"
        "from capsa import fastjson\n"
        "assert 'json.decoder' not in sys.modules\n"
        "try:\n"
        "    fastjson.loads(sys.argv[1])\n"
        "except ValueError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, doc], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("JSONDecodeError "), out.stdout + out.stderr


def test_go_dumps_is_compact_with_gos_escapes() -> None:
    value = {
        "z": 1,
        "a": [1, -2],
        "e": {},
        "l": [],
        "n": None,
        "t": True,
        "s": "<&>\b\f\x01é\u2028",
    }
    assert fastjson.go_dumps(value) == (
        '{"z":1,"a":[1,-2],"e":{},"l":[],"n":null,"t":true,'
        '"s":"\\u003c\\u0026\\u003e\\u0008\\u000c\\u0001é\\u2028"}'
    )


def test_go_dumps_indents_as_marshal_indent() -> None:
    value = {"id": "c1", "pid": 0, "annotations": {"a": "b"}, "l": [1], "e": {}}
    assert fastjson.go_dumps(value, "  ") == (
        '{\n  "id": "c1",\n  "pid": 0,\n  "annotations": {\n    "a": "b"\n  },\n'
        '  "l": [\n    1\n  ],\n  "e": {}\n}'
    )
