"""fastjson agrees with json: the same values, the same errors."""

from __future__ import annotations

import json

import pytest

from capsa import fastjson

DOCS = [
    '{"a": [1, 2.5, -3e10, true, false, null, "x\\u00e9\\n"], "b": {"c": {}}}',
    " [] ",
    '"s"',
    "12",
    "NaN",
    '{"k": Infinity, "m": -Infinity}',
    '  {"z":1,"a":2}\n',
]
BAD = ["", "  ", "{", "[1,]", '{"a":1} x', "abc", '{"a" 1}', "\x00"]
VALUES = [{"a": [1, 2.5, None, True, "é\n"], "b": {}}, [], "x", 1.5, {"z": 1, "a": 2}]


@pytest.mark.parametrize("doc", DOCS)
def test_loads_matches_json(doc: str) -> None:
    assert repr(fastjson.loads(doc)) == repr(json.loads(doc))
    assert repr(fastjson.loads(doc.encode())) == repr(json.loads(doc))


@pytest.mark.parametrize("doc", BAD)
def test_loads_errors_match_json(doc: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        fastjson.loads(doc)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(doc)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("value", VALUES)
def test_dumps_matches_json(value: object) -> None:
    assert fastjson.dumps(value) == json.dumps(value)
    compact = {"separators": (",", ":"), "sort_keys": True}
    assert fastjson.dumps(value, **compact) == json.dumps(value, **compact)  # type: ignore[arg-type]


def test_dumps_rejects_what_json_rejects() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"a": object()})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        fastjson.dumps(loop)
