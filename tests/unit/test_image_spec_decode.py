"""capsa.oci.image_spec reads documents and digests without ``json`` and ``re`` (listing
containers reads image configs on a cold start): the same results as ``json.loads`` and
the digest pattern, errors included."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capsa.errors import InvalidArgument
from capsa.oci.image_spec import decode_json, validate_digest

DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")


def _outcome(fn: Any, raw: Any) -> tuple[str, Any]:
    try:
        return "value", repr(fn(raw))  # repr: nan == nan
    except (ValueError, RecursionError) as e:
        return type(e).__name__, str(e)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"]


@settings(max_examples=300, deadline=None)
@given(_JSON, st.sampled_from(_ENCODINGS), st.sampled_from(["", " ", "\n\t", "x", "]"]))
def test_documents_in_any_encoding_decode_as_json_decodes_them(
    value: Any, encoding: str, tail: str
) -> None:
    text = json.dumps(value, ensure_ascii=False) + tail
    for raw in (text, text.encode(encoding, "surrogatepass")):
        assert _outcome(decode_json, raw) == _outcome(json.loads, raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
@example(b"\xef\xbb\xbf{}")
@example(b"\xed\xa0\x80")
@example(b'"\xed\xa0\x80"')
@example(b"{\x00")
@example(b"\x00{")
@example(b"[1,2")
@example(b"{} {}")
@example(b"[" * 100000)
@example(b"NaN")
@example(b"-Infinity")
def test_any_bytes_decode_or_fail_as_json_loads(raw: bytes) -> None:
    assert _outcome(decode_json, raw) == _outcome(json.loads, raw)


@pytest.mark.parametrize("text", ["\ufeff{}", "\ufeff", "", " {} ", '{"a": 1}x', "\ud800"])
def test_strings_decode_or_fail_as_json_loads(text: str) -> None:
    assert _outcome(decode_json, text) == _outcome(json.loads, text)


def _valid(digest: str) -> bool:
    try:
        validate_digest(digest)
    except InvalidArgument:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=140),
        st.builds(
            lambda algo, hexa, extra: algo + hexa + extra,
            st.sampled_from(["sha256:", "sha512:", "sha384:", "SHA256:", "sha256", ""]),
            st.text(alphabet="0123456789abcdefABCDEF:g\n", min_size=60, max_size=130),
            st.sampled_from(["", "\n", "0", " "]),
        ),
    )
)
@example("sha256:" + "a" * 64)
@example("sha512:" + "0" * 128)
@example("sha256:" + "a" * 63)
@example("sha256:" + "a" * 64 + "\n")
@example("sha256:" + "A" * 64)
@example("sha256:" + "٣" * 64)
def test_digests_are_checked_as_the_pattern_checks_them(digest: str) -> None:
    assert _valid(digest) == bool(DIGEST.fullmatch(digest))
