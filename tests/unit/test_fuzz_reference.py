"""Fuzz: image references (capsa.oci.reference). Any text parses to a normalized
reference that parses back to itself, or is refused with InvalidArgument."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tests.helpers.fuzz import fuzz

from capsa.errors import InvalidArgument
from capsa.oci import reference

PIECES = st.sampled_from(
    [
        "busybox", "library", "a", "B", "0", "-", "_", "__", ".", "..", "/", "//", ":", "@",
        "sha256", "latest", "localhost", "docker.io", "index.docker.io", "127.0.0.1",
        ":5000", "[::1]", "[", "]", "x" * 130, "a" * 64, "0123456789abcdef" * 4,
        " ", "\n", "\t", "\x00", "é", "\u0663", "ǅ", "\udcff", "\uff21\uff22", "%", "*",
    ]
)  # fmt: skip
TEXTS = st.one_of(st.lists(PIECES, max_size=8).map("".join), st.text(max_size=40))


def _checked(text: str) -> reference.Reference | None:
    try:
        return reference.parse(text)
    except InvalidArgument:
        return None


@fuzz(1500)
@given(TEXTS)
@example("busybox\n@sha256:" + "a" * 64)
@example("a:\u0663")
@example("busybox:tag\n")
def test_parse_is_clean_and_idempotent(text: str) -> None:
    ref = _checked(text)
    reference.is_image_id(text)
    reference.is_short_id(text)
    if ref is None:
        return
    assert ref.name.isascii() and ref.name.isprintable(), ref
    assert reference.parse(ref.name) == ref
    assert reference.parse(ref.familiar, default_tag=False) == ref


@pytest.mark.parametrize(
    "text",
    ["busybox\n@sha256:" + "a" * 64, "a\n:tag", "a:\u0663", "a:tag\u00e9", "localhost/a\n:1"],
)
def test_what_the_fuzzer_found_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        reference.parse(text)
